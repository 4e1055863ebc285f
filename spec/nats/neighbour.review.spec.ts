import { once } from 'node:events';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { encodeFrame, encodeHeader, Encoding, FrameType, type IpcError } from '../../src';
import { natsTransport } from '../../src/nats';
import { NatsLink } from '../../src/nats/NatsLink';
import { exitWithin, killChildren, spawnNode } from '../helpers/child';
import { closeAll, delay, node, until } from '../helpers/net';
import { describeNats, startNatsServer, type NatsServer } from '../helpers/natsServer';
import { natsNode, serving, within } from '../helpers/natsNodes';

/**
 * A neighbour on the same NATS account: a plain nats.js client that subscribes `>` and so learns every link subject
 * and its last sequence number, then publishes into established links.
 */
async function neighbour(url: string) {
  const nc = await connect({ servers: url });
  const last = new Map<string, number>();
  nc.subscribe('>', {
    callback: (_e, m) => {
      if (m.subject.startsWith('ipc.link.') && m.data.length >= 5) last.set(m.subject, Buffer.from(m.data).readUInt32BE(1));
    },
  });
  await nc.flush();
  return {
    nc,
    /** The next sequence number on `subject`. */
    next: (subject: string) => ((last.get(subject) ?? 0) + 1) >>> 0,
    /** Publishes a link message of `kind` with sequence number `seq` (default: the next one) and `body`. */
    async forge(subject: string, kind: number, body: Uint8Array = Buffer.alloc(0), seq = ((last.get(subject) ?? 0) + 1) >>> 0) {
      const header = Buffer.alloc(5);
      header[0] = kind;
      header.writeUInt32BE(seq, 1);
      nc.publish(subject, Buffer.concat([header, body]));
      await nc.flush();
    },
  };
}

const codes = (errors: Error[]) => errors.map((e) => (e as IpcError).code);

/**
 * A neighbour on the same NATS account publishing into established links, and users sharing one connection.
 * Forging inside a link is inherent to NATS core without permissions (SECURITY.md, "NATS"): what must hold is that
 * the link ends with a stable code, its requests reject at once, and the client links again. Two cases failed
 * before their fix: garbage to the instance (the client never linked to it again) and a FIN followed by data in one
 * go (an 'error' event with Node's ERR_STREAM_PUSH_AFTER_EOF).
 */
describeNats('the NATS transport and a neighbour on the same account', () => {
  let server: NatsServer;
  let raw: Awaited<ReturnType<typeof neighbour>>;
  let userConnection: NatsConnection | undefined;
  beforeAll(async () => (server = await startNatsServer()));
  beforeEach(async () => (raw = await neighbour(server.url)));
  afterEach(async () => {
    await killChildren();
    await closeAll();
    await raw.nc.close();
    await userConnection?.close();
    userConnection = undefined;
  });

  /** A worker that never answers 'hang' (a request pending for good), and a client linked to it; quiet links. */
  async function quietPair() {
    const worker = await serving('worker', server.url, { heartbeatInterval: 600_000 });
    worker.on('message', (m) => {
      if (m.data !== 'hang') m.reply('ok');
    });
    const api = natsNode('api', server.url, { heartbeatInterval: 600_000, requestTimeout: 600_000, maxRetries: Infinity, retryTime: 20 });
    let linked = 0;
    api.on('connect', () => linked++);
    const socket = await api.connectTo('worker');
    expect(await api.sendTo('worker', 'hi')).toBe('ok');
    const link = socket.connection!.socket as NatsLink;
    const pending = api.sendTo('worker', 'hang');
    pending.catch(() => undefined);
    await delay(50);
    return { worker, api, link, pending, linked: () => linked };
  }

  const cases: Array<[string, (link: NatsLink) => Promise<void>]> = [
    ['garbage bytes at the next number, to the client', (l) => raw.forge(l.from, 0, Buffer.from('garbage garbage garbage'))],
    // The instance ended the link with a CLOSE ERR_IPC_PROTOCOL (reconnect: false), taken by the client's fleet for
    // "do not come back" (as after a disconnectFrom): one forged message cut the client off from that instance for good.
    ['garbage bytes at the next number, to the instance', (l) => raw.forge(l.to, 0, Buffer.from('garbage garbage garbage'))],
    ['a frame header declaring 4 GiB, to the client', (l) => raw.forge(l.from, 0, encodeHeader(FrameType.REPLY, 0, 2, 0, 0xffff_fff0))],
    ['a spoofed FIN, to the client', (l) => raw.forge(l.from, 1)],
    ['a spoofed FIN, to the instance', (l) => raw.forge(l.to, 1)],
    ['a spoofed FIN then data, to the client', async (l) => {
      await raw.forge(l.from, 1);
      await raw.forge(l.from, 0, Buffer.from('more'));
    }],
    ['a spoofed FIN then data, to the instance', async (l) => {
      await raw.forge(l.to, 1);
      await raw.forge(l.to, 0, Buffer.from('more'));
    }],
    // The data, pushed after the end the FIN pushed, made the link emit ERR_STREAM_PUSH_AFTER_EOF: an 'error' event
    // of the node with Node's code, not ours.
    ['a spoofed FIN and data in one go, to the client', async (l) => {
      const next = raw.next(l.from);
      void raw.forge(l.from, 1, Buffer.alloc(0), next);
      await raw.forge(l.from, 0, Buffer.from('more'), next + 1);
    }],
    ['a spoofed FIN and data in one go, to the instance', async (l) => {
      const next = raw.next(l.to);
      void raw.forge(l.to, 1, Buffer.alloc(0), next);
      await raw.forge(l.to, 0, Buffer.from('more'), next + 1);
    }],
    ['a duplicate number, to the client', (l) => raw.forge(l.from, 0, Buffer.from('x'), raw.next(l.from) - 1)],
    ['a far-future number, to the client', (l) => raw.forge(l.from, 0, Buffer.from('x'), raw.next(l.from) + 1_000_000)],
    ['an empty message, to the client', async (l) => {
      raw.nc.publish(l.from, Buffer.alloc(0));
      await raw.nc.flush();
    }],
    ['a 4-byte message, to the instance', async (l) => {
      raw.nc.publish(l.to, Buffer.from([0, 0, 0, 9]));
      await raw.nc.flush();
    }],
  ];

  it.each(cases)('%s: the pending request rejects at once, only stable codes, the client links again', async (_what, attack) => {
    const { worker, api, link, pending, linked } = await quietPair();
    await attack(link);
    await expect(within(pending, 3000)).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_IPC_/) });
    await until(() => linked() === 2, 5000, 'the client to link again');
    expect(await api.sendTo('worker', 'again')).toBe('ok');
    await delay(100);
    for (const code of [...codes(api.errors), ...codes(worker.errors)]) expect(code).toMatch(/^ERR_IPC_/);
  });

  it('a forged REPLY with the next number is taken for the answer, as SECURITY.md says; the link breaks at the real one, which rejects nothing', async () => {
    const { worker, api, link, pending, linked } = await quietPair();
    const id = 2; // the client's second request: 'hi' was the first
    await raw.forge(link.from, 0, Buffer.concat(encodeFrame({ type: FrameType.REPLY, flags: 0, id, encoding: Encoding.STRING, payload: Buffer.from('forged') })));
    expect(await within(pending, 3000)).toBe('forged');
    // The real peer's next message carries the number the forgery took: the link ends, the client links again.
    worker.get('api')!.connection!.send(FrameType.PING, 0, 0, Encoding.BUFFER, Buffer.alloc(8));
    await until(() => linked() === 2, 5000, 'the client to link again');
    expect(await api.sendTo('worker', 'again')).toBe('ok');
  });

  it('malformed messages on the discovery subjects (discover, announce, found): ignored, no error, no crash; the client still links', async () => {
    const worker = await serving('worker', server.url);
    worker.on('message', (m) => m.reply('ok'));
    const inboxes: string[] = [];
    const watch = raw.nc.subscribe('ipc.discover.worker', { callback: (_e, m) => void (m.reply && inboxes.push(m.reply)) });
    const api = natsNode('api', server.url, { maxRetries: Infinity, retryTime: 20 }, { discoveryInterval: 50 });
    await api.connectTo('worker');
    await until(() => inboxes.length > 0, 5000, 'a discovery question');
    watch.unsubscribe();
    const bodies = ['', '{', 'null', '[]', '5', '"x"', '{"instance":5}', '{"instance":null}', '{"instance":{}}', '{"instance":"a.b"}', '{"instance":""}',
      '{"instance":"__proto__"}', '{"instance":"constructor"}', `{"instance":${JSON.stringify(api.instance)}}`, 'x'.repeat(10_000), '\u0000\u00ff'];
    for (const body of bodies) {
      for (const subject of ['ipc.discover.worker', 'ipc.announce.worker', inboxes[0]]) raw.nc.publish(subject, Buffer.from(body), { reply: 'spec.nobody' });
      raw.nc.publish('ipc.discover.worker', Buffer.from(body));
    }
    await raw.nc.flush();
    await delay(300);
    expect(await api.sendTo('worker', 'still')).toBe('ok');
    expect([...api.errors, ...worker.errors]).toEqual([]);
  });

  it('nodes sharing one connection of the user: one closing, and one whose link a neighbour breaks, leave the others working and the connection open', async () => {
    const nc = (userConnection = await connect({ servers: server.url }));
    const shared = (name: string, options = {}) => node(name, { transport: natsTransport({ connection: nc }), maxRetries: Infinity, retryTime: 20, ...options });
    const a = shared('a');
    const b = shared('b');
    for (const n of [a, b]) {
      n.on('message', (m) => (m.data === 'hang' ? undefined : m.reply(`${n.name}:${String(m.data)}`)));
      n.serve(n.name);
      await once(n, 'listening');
    }
    const api = shared('api', { heartbeatInterval: 600_000, requestTimeout: 600_000 });
    const toA = await api.connectTo('a');
    await api.connectTo('b');
    // A neighbour breaks the api–a link: only it ends.
    const hanging = api.sendTo('a', 'hang');
    hanging.catch(() => undefined);
    await delay(50);
    await raw.forge((toA.connection!.socket as NatsLink).from, 0, Buffer.from('garbage, longer than a frame header'));
    await expect(within(hanging, 3000)).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_IPC_/) });
    expect(await api.sendTo('b', 1)).toBe('b:1');
    await until(() => api.get('a')?.connected === true, 5000, 'the link to a again');
    expect(await api.sendTo('a', 2)).toBe('a:2');
    // One node closes: the others go on, the connection stays open.
    await a.close();
    expect(await api.sendTo('b', 3)).toBe('b:3');
    expect(nc.isClosed()).toBe(false);
    await Promise.all([api.close(), b.close()]);
    expect(nc.isClosed()).toBe(false);
    await until(() => true);
    expect((await server.clientSubscriptions()).filter((s) => s.subject.startsWith('ipc.'))).toEqual([]);
    // Still the user's to use.
    const echo = nc.subscribe('spec.echo', { callback: (_e, m) => void m.respond(m.data) });
    expect((await nc.request('spec.echo', 'x')).string()).toBe('x');
    echo.unsubscribe();
    await nc.close();
  });

  it('a write to a link whose NATS connection refuses to publish (closed, draining) ends it with ERR_IPC_PEER_DISCONNECTED (it was the NATS error, with no code, reported by the serving node)', async () => {
    const nc = await connect({ servers: server.url });
    const link = new NatsLink(nc, 'spec.link.in', () => undefined);
    link.to = 'spec.link.out';
    await nc.close();
    link.write(Buffer.from('frame bytes'));
    const [error] = (await once(link, 'error')) as [IpcError];
    expect(error).toMatchObject({ code: 'ERR_IPC_PEER_DISCONNECTED', message: expect.stringMatching(/^The NATS link could not publish: /) });
    expect((error as Error & { cause?: unknown }).cause).toBeInstanceOf(Error);
  });

  it.each(['close', 'drain'])('the user %ss the shared connection while links are busy: pending requests reject at once with ERR_IPC_ codes, no crash, the process exits by itself', async (how) => {
    const script = `
      const { connect } = require('@nats-io/transport-node');
      const { Node } = require('ipc-link-core');
      const { natsTransport } = require('ipc-link-core/nats');
      const servers = ${JSON.stringify(server.url)};
      process.on('unhandledRejection', (e) => { console.log('UNHANDLED ' + (e && e.stack)); process.exitCode = 3; });
      (async () => {
        const nc = await connect({ servers });
        const make = (name, options) => {
          const n = new Node(name, { transport: natsTransport({ connection: nc }), heartbeatInterval: 600000, requestTimeout: 600000, maxRetries: Infinity, retryTime: 20, ...options });
          n.on('error', (e) => console.log('ERROR ' + name + ' ' + e.code + ' ' + e.message));
          return n;
        };
        const worker = make('worker');
        worker.on('message', (m) => {
          if (m.data === 'hang') return;
          if (m.data === 'stream') return m.stream((function* () { for (let i = 0; ; i++) yield Buffer.alloc(1000, i); })());
          m.reply(m.data);
        });
        worker.serve('worker');
        await new Promise((r) => worker.once('listening', r));
        const api = make('api');
        await api.connectTo('worker');
        const started = Date.now();
        const outcomes = [];
        const watch = (what, p) => p.then(() => outcomes.push(what + ' resolved'), (e) => outcomes.push(what + ' ' + e.code + ' ' + (Date.now() - started < 3000 ? 'fast' : 'slow')));
        const pending = [watch('hang', api.sendTo('worker', 'hang'))];
        for (let i = 0; i < 200; i++) pending.push(watch('big', api.sendTo('worker', Buffer.alloc(100000)).then(() => undefined)));
        pending.push(new Promise((resolve) => api.request$('worker', 'stream').subscribe({ error: (e) => { outcomes.push('stream ' + e.code); resolve(); }, complete: () => { outcomes.push('stream complete'); resolve(); } })));
        await new Promise((r) => setTimeout(r, 30));
        void nc.${how}().catch((e) => console.log('nc.${how} rejected ' + e.message));
        await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 5000).unref())]);
        const counts = {};
        for (const o of outcomes) counts[o] = (counts[o] || 0) + 1;
        console.log('OUTCOMES ' + JSON.stringify(counts) + ' of ' + pending.length);
        await Promise.all([api.close(), worker.close()]);
        console.log('closed');
      })().catch((e) => { console.log('FAILED ' + e.stack); process.exitCode = 2; });`;
    const run = spawnNode(['-e', script]); // the built library (npm test builds first), as fixtures use it
    const exit = await exitWithin(run, 20_000);
    expect(exit).toEqual({ code: 0, signal: null });
    const out = run.output();
    expect(out).toContain('closed');
    expect(out).not.toMatch(/UNHANDLED|FAILED/);
    for (const [, code] of out.matchAll(/^ERROR \S+ (\S+)/gm)) expect(code).toMatch(/^ERR_IPC_/);
    const outcomes = JSON.parse(/OUTCOMES (.*) of/.exec(out)![1]) as Record<string, number>;
    for (const outcome of Object.keys(outcomes)) expect(outcome).toMatch(/^(big resolved|stream ERR_IPC_\S+|\S+ ERR_IPC_\S+ fast)$/);
    expect((await server.clientSubscriptions()).filter((s) => s.subject.startsWith('ipc.'))).toEqual([]);
  }, 30_000);
});

