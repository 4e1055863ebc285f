import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { connect } from '@nats-io/transport-node';
import { take, toArray, firstValueFrom, lastValueFrom } from 'rxjs';
import { ErrorCode, IpcError, Node, type NodeSocket } from '../../src';
import { natsTransport } from '../../src/nats';
import { NatsLink } from '../../src/nats/NatsLink';
import { spawnNode } from '../helpers/child';
import { closeAll, delay, until } from '../helpers/net';
import { describeNats, startNatsCluster, startNatsServer, type NatsCluster, type NatsServer } from '../helpers/natsServer';
import { natsNode, serving } from '../helpers/natsNodes';

/** A node over NATS (closed after each test by closeAll). */
const instanceOf = (reply: unknown) => (reply as { instance: string }).instance;

describeNats('the NATS transport', () => {
  afterEach(closeAll);

  describe('one server', () => {
    let server: NatsServer;
    beforeAll(async () => (server = await startNatsServer({ maxPayload: 1024 * 1024 })));

    it('serves and connects by name: request/reply, connection events with the client name, instance ids', async () => {
      const worker = natsNode('worker', server.url);
      const connections: string[] = [];
      worker.on('connection', (name) => connections.push(name));
      worker.on('message', (m) => m.reply({ doubled: (m.data as number) * 2 }));
      worker.serve('worker');
      const [address] = (await once(worker, 'listening')) as [string];
      expect(address).toBe('nats:ipc.discover.worker');
      const api = natsNode('api', server.url);
      const socket = await api.connectTo('worker');
      expect(socket.instance).toBe(worker.instance);
      expect(await api.sendTo('worker', 21)).toEqual({ doubled: 42 });
      await until(() => connections.length === 1);
      expect(connections).toEqual(['api']);
      expect(worker.get('api')!.instance).toBe(api.instance);
      // and back: the service asks its client
      api.on('message', (m) => m.reply('pong'));
      expect(await worker.sendTo('api', 'ping')).toBe('pong');
    });

    it('echoes 3 MiB and 16 MiB byte for byte across a 1 MiB max_payload, and refuses 64 MiB + 1 before sending', async () => {
      const echo = await serving('echo', server.url, { maxFrameSize: 64 * 1024 * 1024 });
      echo.on('message', (m) => m.reply(m.data));
      const api = natsNode('api', server.url, { maxFrameSize: 64 * 1024 * 1024, requestTimeout: 60_000 });
      await api.connectTo('echo');
      for (const size of [3 * 1024 * 1024, 16 * 1024 * 1024]) {
        const bytes = Buffer.alloc(size);
        for (let i = 0; i < size; i += 4096) bytes[i] = i % 251;
        const back = (await api.sendTo('echo', bytes)) as Buffer;
        expect(back.length).toBe(size);
        expect(back.equals(bytes)).toBe(true);
      }
      await expect(api.sendTo('echo', Buffer.alloc(64 * 1024 * 1024 + 1))).rejects.toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE });
      expect(await api.sendTo('echo', 'still up')).toBe('still up');
    }, 60_000);

    it('take(10) of a 1,000,000-item generator ends it within 200 ms, having yielded at most 10 + window', async () => {
      const service = await serving('numbers', server.url);
      let yielded = 0;
      let finished: number | null = null;
      service.on('message', (m) =>
        m.stream(
          (function* () {
            try {
              for (let i = 0; i < 1_000_000; i++) {
                yielded++;
                yield i;
              }
            } finally {
              finished = performance.now();
            }
          })(),
        ),
      );
      const api = natsNode('api', server.url);
      await api.connectTo('numbers');
      const values = await firstValueFrom(api.request$<number>('numbers', 'go', { window: 16 }).pipe(take(10), toArray()));
      const taken = performance.now();
      expect(values).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      await until(() => finished !== null, 2000, 'the generator to finish');
      expect(finished! - taken).toBeLessThan(200);
      expect(yielded).toBeLessThanOrEqual(10 + 16);
    });

    it('refuses a wrong auth.secret with ERR_IPC_AUTH', async () => {
      await serving('vault', server.url, { auth: { secret: 'right' } });
      const api = natsNode('api', server.url, { auth: { secret: 'wrong' } });
      await expect(api.connectTo('vault')).rejects.toMatchObject({ code: ErrorCode.AUTH });
    });

    it('ends the link with ERR_IPC_PEER_DISCONNECTED at a gap in the numbered messages (a lost NATS message)', async () => {
      const sink = await serving('sink', server.url);
      const received: number[] = [];
      sink.on('message', (m) => received.push(m.data as number));
      const api = natsNode('api', server.url);
      const socket = await api.connectTo('sink');
      for (let i = 0; i < 5; i++) await api.sendTo('sink', i, { receptive: false });
      await until(() => received.length === 5);
      const lost = once(sink, 'socketClose');
      // The test hook: the next NATS message of the client's link is left out, as NATS may do.
      (socket.connection!.socket as NatsLink).skipNext = 1;
      await api.sendTo('sink', 5, { receptive: false });
      await api.sendTo('sink', 6, { receptive: false });
      await lost;
      expect(received).toEqual([0, 1, 2, 3, 4]);
    });

    it('a link reports backpressure: a large write returns false, then drain once the server took it; bytes arrive in order', async () => {
      const nc = await connect({ servers: server.url, noAsyncTraces: true });
      const ended: string[] = [];
      const a = new NatsLink(nc, 'spec.link.a', () => ended.push('a'));
      const b = new NatsLink(nc, 'spec.link.b', () => ended.push('b'));
      a.to = 'spec.link.b';
      b.to = 'spec.link.a';
      const chunks: Buffer[] = [];
      b.on('data', (chunk: Buffer) => chunks.push(chunk));
      a.resume();
      await nc.flush();
      const bytes = Buffer.alloc(12 * 1024 * 1024); // over the 8 MiB a link lets the server leave unconfirmed
      for (let i = 0; i < bytes.length; i += 997) bytes[i] = i % 256;
      expect(a.write(bytes)).toBe(false);
      await once(a, 'drain');
      a.end();
      await once(b, 'end');
      expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
      b.destroy();
      await until(() => ended.length === 2);
      await nc.close();
    });

    it('hostile messages on its subjects: a bad link request is reported and ignored, a forged link message ends only that link', async () => {
      const worker = await serving('worker', server.url);
      worker.on('message', (m) => m.reply('ok'));
      const api = natsNode('api', server.url, { maxRetries: Infinity, retryTime: 20 });
      let linked = 0;
      api.on('connect', () => linked++);
      const socket = await api.connectTo('worker');
      const nc = await connect({ servers: server.url });
      nc.publish(`ipc.open.${worker.instance}`, Buffer.from('{not json'), { reply: 'spec.nobody' });
      nc.publish(`ipc.open.${worker.instance}`, Buffer.from(JSON.stringify({ subject: 'elsewhere.x' })), { reply: 'spec.nobody' });
      await until(() => worker.errors.length >= 2, 2000, 'two error events');
      expect(worker.errors.map((e) => (e as IpcError).code)).toEqual([ErrorCode.PROTOCOL, ErrorCode.PROTOCOL]);
      expect(await api.sendTo('worker', 'still')).toBe('ok');
      // A forged message on the client's link subject: a sequence that does not follow ends that link.
      const link = socket.connection!.socket as NatsLink;
      nc.publish(link.from, Buffer.from([0, 0, 0, 0, 99, 1, 2, 3]));
      await nc.flush();
      await until(() => linked === 2, 5000, 'the client to link again');
      expect(await api.sendTo('worker', 'again')).toBe('ok');
      await nc.close();
    });

    it('validates names as subject tokens, and says what is wrong', async () => {
      for (const bad of ['a.b', 'a*', '>', 'with space', 'nbsp\u00a0']) {
        const n = natsNode(bad, server.url);
        expect(() => n.serve(bad)).toThrow(/NATS subject token/);
        await expect(n.connectTo(bad)).rejects.toThrow(/NATS subject token/);
      }
      // No node name has control characters, whatever the transport.
      expect(() => natsNode('tab\t', server.url)).toThrow(/free of control characters/);
      const n = natsNode('ok', server.url);
      expect(() => n.serve('other')).toThrow(/its own name/);
      await expect(n.connectTo('x', 4222)).rejects.toThrow(/takes only the name/);
      expect(() => natsTransport({ servers: server.url, prefix: 'a.*' })).toThrow(/prefix/);
      expect(() => natsTransport({ servers: server.url, maxInstances: 0 })).toThrow(/maxInstances/);
      expect(() => natsTransport(null as never)).toThrow(TypeError);
      // Connection options beside a given connection would be ignored: refused, naming them.
      const nc = await connect({ servers: server.url });
      expect(() => natsTransport({ connection: nc, servers: 'nats://elsewhere:4222', user: 'u' } as never)).toThrow(/servers, user cannot go with options\.connection/);
      expect(() => natsTransport({ connection: nc, prefix: 'p', openTimeout: 100 })).not.toThrow();
      await nc.close();
    });

    it('an instance that drains (close({ drain })) gets no new requests: the client sends them all to the others, none fails', async () => {
      const instances = await Promise.all([serving('worker', server.url), serving('worker', server.url)]);
      let release: (() => void) | null = null;
      instances[0].on('message', (m) => (m.data === 'slow' ? void new Promise<void>((r) => (release = r)).then(() => m.reply('slow done')) : m.reply(0)));
      instances[1].on('message', (m) => m.reply(1));
      const api = natsNode('api', server.url);
      let linked = 0;
      api.on('connect', () => linked++);
      await api.connectTo('worker');
      await until(() => linked === 2, 5000, 'links to both instances');
      // A request in flight on instance 0 (while the other has none, the least pending gets the next: send until it lands).
      let held: Promise<unknown> | null = null;
      for (let i = 0; i < 10 && release === null; i++) {
        const reply = api.sendTo('worker', 'slow');
        await delay(20);
        if (release !== null) held = reply;
        else await reply;
      }
      expect(held).not.toBeNull();
      const closing = instances[0].close({ drain: 10_000 });
      const links = () => (api as unknown as { sockets(): NodeSocket[] }).sockets();
      await until(() => links().some((s) => s.connection?.goingAway), 5000, 'the GOAWAY');
      const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => api.sendTo('worker', i)));
      expect(replies).toEqual(Array(50).fill(1));
      release!();
      await expect(held).resolves.toBe('slow done');
      await closing;
    });

    it('rejects connectTo with ERR_IPC_CONNECT when no instance answers within maxRetries searches', async () => {
      const api = natsNode('api', server.url, { maxRetries: 2, retryTime: 20 });
      await expect(api.connectTo('nobody')).rejects.toMatchObject({ code: ErrorCode.CONNECT });
    });

    it('leaves no subscription on the server and nothing running after close()', async () => {
      // The server may still be dropping the connections of the previous test (closed, not yet processed there).
      for (let waited = 0; (await server.connz()).num_connections > 0 && waited < 5000; waited += 50) await delay(50);
      const before = (await server.subsz()).num_subscriptions;
      const worker = await serving('worker', server.url);
      worker.on('message', (m) => m.reply(m.data));
      const api = natsNode('api', server.url);
      await api.connectTo('worker');
      expect(await api.sendTo('worker', 1)).toBe(1);
      expect((await server.subsz()).num_subscriptions).toBeGreaterThan(before);
      await Promise.all([api.close(), worker.close()]);
      for (let waited = 0; (await server.subsz()).num_subscriptions !== before && waited < 5000; waited += 50) await delay(50);
      expect((await server.subsz()).num_subscriptions).toBe(before);
      expect((await server.connz()).num_connections).toBe(0);
    });
  });

  describe('a 3-server cluster', () => {
    let cluster: NatsCluster;
    beforeAll(async () => (cluster = await startNatsCluster(3)));

    it('reaches a service on server C from a client on server A: replies, a 10,000-item stream in order, broadcast', async () => {
      const [a, , c] = cluster.urls;
      const service = await serving('service', c);
      service.on('message', (m) => {
        if (m.data === 'stream') m.stream((function* () { for (let i = 0; i < 10_000; i++) yield i; })()); // prettier-ignore
        else m.reply(`re:${String(m.data)}`);
      });
      const api = natsNode('api', a);
      api.on('message', (m) => m.reply(`api got ${String(m.data)}`));
      await api.connectTo('service');
      expect(await api.sendTo('service', 'hello')).toBe('re:hello');
      const items = await lastValueFrom(api.request$<number>('service', 'stream').pipe(toArray()));
      expect(items.length).toBe(10_000);
      expect(items.every((value, i) => value === i)).toBe(true);
      await until(() => service.get('api') !== undefined);
      expect(await service.broadcast('news')).toEqual(['api got news']);
    });

    it('spreads 3,000 sendTo over 3 instances on 3 servers within ±20%, and a 4th started mid-run gets requests within 5 s', async () => {
      const instances = await Promise.all(cluster.urls.map((url) => serving('worker', url)));
      for (const instance of instances) instance.on('message', (m) => m.reply({ instance: instance.instance }));
      const api = natsNode('api', cluster.urls[0]);
      let linked = 0;
      api.on('connect', () => linked++);
      await api.connectTo('worker');
      await until(() => linked === 3, 5000, 'links to 3 instances');
      const counts = new Map<string, number>();
      for (let i = 0; i < 3000; i++) {
        const id = instanceOf(await api.sendTo('worker', i));
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      expect(counts.size).toBe(3);
      for (const count of counts.values()) expect(Math.abs(count - 1000)).toBeLessThanOrEqual(200);
      // Mid-run: requests keep flowing while a 4th instance starts.
      let running = true;
      const sending = (async () => {
        while (running) await api.sendTo('worker', 'more');
      })();
      const started = performance.now();
      const fourth = natsNode('worker', cluster.urls[1]);
      let reachedAfter: number | null = null;
      fourth.on('message', (m) => {
        reachedAfter ??= performance.now() - started;
        m.reply({ instance: fourth.instance });
      });
      fourth.serve('worker');
      await until(() => reachedAfter !== null, 5000, 'the 4th instance to get a request');
      running = false;
      await sending;
      expect(reachedAfter).toBeLessThan(5000);
    });

    it('links to at most maxInstances instances', async () => {
      await Promise.all(cluster.urls.map((url) => serving('capped', url)));
      const api = natsNode('api', cluster.urls[0], {}, { maxInstances: 2, discoveryInterval: 100 });
      await api.connectTo('capped');
      await delay(500);
      expect(Object.keys(api.stats().peers)).toHaveLength(2);
    });
  });

  describe('errors', () => {
    it('says which package to install when the NATS client is missing', async () => {
      const script = `
        const Module = require('module');
        const resolve = Module._resolveFilename;
        Module._resolveFilename = function (request, ...rest) {
          if (request === '@nats-io/transport-node') { const e = new Error("Cannot find module '@nats-io/transport-node'"); e.code = 'MODULE_NOT_FOUND'; throw e; }
          return resolve.call(this, request, ...rest);
        };
        try { require('ipc-link-core/nats').natsTransport({ servers: 'nats://127.0.0.1:1' }); }
        catch (error) { console.log(error.code + ' ' + error.message); }`;
      const run = spawnNode(['-e', script]);
      await run.exited;
      expect(run.output()).toMatch(/ERR_IPC_TRANSPORT .*npm install @nats-io\/transport-node/);
    });

    it('close() does not wait for a NATS server that never answers', async () => {
      const held: Socket[] = [];
      const silent = createServer((socket) => held.push(socket.on('error', () => undefined)));
      silent.listen(0, '127.0.0.1');
      await once(silent, 'listening');
      const url = `nats://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      const api = natsNode('api', url, {}, { timeout: 1500 });
      const connecting = api.connectTo('worker').catch((error: IpcError) => error.code);
      await delay(100);
      const started = performance.now();
      await api.close();
      expect(performance.now() - started).toBeLessThan(500);
      expect(await connecting).toBe(ErrorCode.CLOSED);
      await delay(1600); // the client's own connect timeout ends its attempt
      held.forEach((socket) => socket.destroy());
      silent.close();
    });

    it('an unreachable NATS rejects connectTo and reports ERR_IPC_TRANSPORT', async () => {
      const api = natsNode('api', 'nats://127.0.0.1:1', { maxRetries: 1, retryTime: 20 }, { reconnect: false } as never);
      await expect(api.connectTo('worker')).rejects.toBeInstanceOf(IpcError);
      await until(() => api.errors.some((e) => (e as IpcError).code === ErrorCode.TRANSPORT), 5000, 'an ERR_IPC_TRANSPORT error event');
    });
  });
});

export type { NodeSocket, Node };
