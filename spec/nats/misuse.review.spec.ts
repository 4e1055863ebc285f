import { once } from 'node:events';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { connect } from '@nats-io/transport-node';
import { interval, lastValueFrom, map, take, toArray } from 'rxjs';
import { ErrorCode, type IpcError, Node } from '../../src';
import { natsTransport } from '../../src/nats';
import { closeAll, delay, node } from '../helpers/net';
import { describeNats, startNatsServer, type NatsServer } from '../helpers/natsServer';
import { natsNode, serving, within, ours, expectNoneOfOurs } from '../helpers/natsNodes';

/** Waits until `check` resolves true (polled every 20 ms), or throws after `ms`. */
async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await delay(20);
  }
}

/** The NATS API used carelessly: calls made twice, concurrently, before connect, after close; objects shared. */
describeNats('the NATS transport used carelessly (misuse review)', () => {
  let server: NatsServer;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  beforeAll(async () => {
    server = await startNatsServer();
    process.on('unhandledRejection', onUnhandled);
  });
  afterAll(() => process.off('unhandledRejection', onUnhandled));
  afterEach(async () => {
    await closeAll();
    expect(unhandled).toEqual([]);
  });

  it('one natsTransport object for two nodes, then for a new node once both closed: each works, nothing left on the server', async () => {
    const transport = natsTransport({ servers: server.url, discoveryInterval: 50 });
    const worker = node('worker', { transport });
    worker.on('message', (m) => m.reply(`${m.data}!`));
    worker.serve('worker');
    await once(worker, 'listening');
    const api = node('api', { transport, maxRetries: 20 });
    await within(api.connectTo('worker'), 5000);
    expect(await api.sendTo('worker', 'a')).toBe('a!');
    await Promise.all([api.close(), worker.close()]);
    await expectNoneOfOurs(server);
    const again = node('worker', { transport });
    again.on('message', (m) => m.reply('again'));
    again.serve('worker');
    await within(once(again, 'listening'), 5000);
    const api2 = node('api', { transport, maxRetries: 20 });
    await within(api2.connectTo('worker'), 5000);
    expect(await api2.sendTo('worker', 'a')).toBe('again');
    await Promise.all([api2.close(), again.close()]);
    await expectNoneOfOurs(server);
  });

  it('a node closed while serving, a new one on the same transport serving at once', async () => {
    const transport = natsTransport({ servers: server.url, discoveryInterval: 50 });
    const first = node('worker', { transport });
    first.serve('worker');
    const closing = first.close();
    const second = node('worker', { transport });
    second.on('message', (m) => m.reply('second'));
    second.serve('worker');
    await within(closing, 5000);
    await within(once(second, 'listening'), 5000);
    const api = natsNode('api', server.url, { maxRetries: 20 }, { discoveryInterval: 50 });
    await within(api.connectTo('worker'), 5000);
    expect(await api.sendTo('worker', 'x')).toBe('second');
    expect([...first.errors, ...second.errors, ...api.errors]).toEqual([]);
  });

  it('serve twice, serve after close', async () => {
    const worker = natsNode('worker', server.url);
    worker.serve('worker');
    expect(() => worker.serve('worker')).toThrow(expect.objectContaining({ code: ErrorCode.ALREADY_CONNECTED }));
    await once(worker, 'listening');
    expect(() => worker.serve('worker')).toThrow(expect.objectContaining({ code: ErrorCode.ALREADY_CONNECTED }));
    await worker.close();
    expect(() => worker.serve('worker')).toThrow(expect.objectContaining({ code: ErrorCode.CLOSED }));
    expect(worker.errors).toEqual([]);
  });

  it('connectTo ×10 at once: one links, nine reject ERR_IPC_ALREADY_CONNECTED', async () => {
    const worker = await serving('worker', server.url);
    worker.on('message', (m) => m.reply('ok'));
    const api = natsNode('api', server.url, { maxRetries: 20 }, { discoveryInterval: 50 });
    const results = await within(Promise.allSettled(Array.from({ length: 10 }, () => api.connectTo('worker'))), 5000);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason.code).toBe(ErrorCode.ALREADY_CONNECTED);
    expect(await api.sendTo('worker', 1)).toBe('ok');
  });

  it('connectTo then disconnectFrom before it resolved; during a search; close during connectTo', async () => {
    const api = natsNode('api', server.url, { maxRetries: Infinity }, { discoveryInterval: 50 });
    const searching = api.connectTo('nobody');
    await delay(100);
    expect(await api.disconnectFrom('nobody')).toBe(true);
    await expect(within(searching, 2000)).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await delay(50);
    await expectNoneOfOurs(server);
    const worker = await serving('worker', server.url);
    const racing = api.connectTo('worker');
    const stopped = api.disconnectFrom('worker');
    await expect(within(racing, 2000)).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await stopped;
    const closing = api.connectTo('nobody2');
    await delay(20);
    await within(api.close(), 2000);
    await expect(within(closing, 2000)).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await worker.close();
    // The server drops a closed connection's subscriptions when it has seen it go.
    await expectNoneOfOurs(server);
    expect(api.errors).toEqual([]);
  });

  it('a node connecting to the service it serves, with no other instance: ERR_IPC_CONNECT, never a link to itself', async () => {
    const worker = await serving('worker', server.url, { maxRetries: 1, retryTime: 20 }, { discoveryInterval: 50 });
    await expect(within(worker.connectTo('worker'), 5000)).rejects.toMatchObject({ code: ErrorCode.CONNECT });
  });

  it('two nodes of one name on one user connection, both serving, each connecting to the other', async () => {
    const nc = await connect({ servers: server.url });
    try {
      const a = node('svc', { transport: natsTransport({ connection: nc, discoveryInterval: 50 }), maxRetries: 20 });
      const b = node('svc', { transport: natsTransport({ connection: nc, discoveryInterval: 50 }), maxRetries: 20 });
      a.on('message', (m) => m.reply('a'));
      b.on('message', (m) => m.reply('b'));
      a.serve('svc');
      b.serve('svc');
      await Promise.all([once(a, 'listening'), once(b, 'listening')]);
      await within(Promise.all([a.connectTo('svc'), b.connectTo('svc')]), 5000);
      expect(await a.sendTo('svc', 1)).toBe('b');
      expect(await b.sendTo('svc', 1)).toBe('a');
      await Promise.all([a.close(), b.close()]);
      await expectNoneOfOurs(server);
      expect([...a.errors, ...b.errors]).toEqual([]);
      expect(nc.isClosed()).toBe(false);
    } finally {
      await nc.close();
    }
  });

  it('close({ drain }) twice at once: one promise, stats back to zero', async () => {
    const worker = await serving('worker', server.url);
    worker.on('message', (m) => m.reply('ok'));
    const api = natsNode('api', server.url, { maxRetries: 20 }, { discoveryInterval: 50 });
    await api.connectTo('worker');
    const c1 = api.close({ drain: 500 });
    const c2 = api.close({ drain: 500 });
    expect(c1).toBe(c2);
    await within(c1, 3000);
    expect(api.stats().pendingRequests).toBe(0);
    expect(Object.keys(api.stats().peers)).toEqual([]);
  });

  it('two fleets with different prefixes on one server never see each other', async () => {
    const a = await serving('worker', server.url, {}, { prefix: 'ipc' });
    const b = await serving('worker', server.url, {}, { prefix: 'ipc.link' });
    a.on('message', (m) => m.reply('a'));
    b.on('message', (m) => m.reply('b'));
    const apiA = natsNode('api', server.url, { maxRetries: 20 }, { prefix: 'ipc', discoveryInterval: 50 });
    const apiB = natsNode('api', server.url, { maxRetries: 20 }, { prefix: 'ipc.link', discoveryInterval: 50 });
    await Promise.all([apiA.connectTo('worker'), apiB.connectTo('worker')]);
    await delay(200);
    for (let i = 0; i < 5; i++) {
      expect(await apiA.sendTo('worker', i)).toBe('a');
      expect(await apiB.sendTo('worker', i)).toBe('b');
    }
  });

  it('(was broken) a node that never served nor connected keeps no NATS connection open: the last node that used a shared transport closes it', async () => {
    const before = (await server.varz()).connections;
    const transport = natsTransport({ servers: server.url });
    const idle = node('idle', { transport });
    const worker = node('worker', { transport });
    worker.serve('worker');
    await once(worker, 'listening');
    expect((await server.varz()).connections).toBe(before + 1);
    await worker.close();
    // The idle node holds nothing (over TCP it holds nothing either): the connection goes with the last user.
    await eventually(async () => (await server.varz()).connections === before, 3000, 'the connection closed');
    expect(idle.errors).toEqual([]);
    // The idle node may still be used: it connects then.
    idle.serve('idle');
    await within(once(idle, 'listening'), 5000);
    await idle.close();
  });

  it('links that come and go leave no subscription behind on either side', async () => {
    const worker = await serving('worker', server.url);
    const api = natsNode('api', server.url, { maxRetries: 20 }, { discoveryInterval: 50 });
    const base = (await ours(server)).length;
    for (let i = 0; i < 5; i++) {
      await within(api.connectTo('worker'), 5000);
      expect(await api.disconnectFrom('worker')).toBe(true);
    }
    await delay(100);
    expect((await ours(server)).sort()).toEqual([`ipc.discover.worker`, `ipc.open.${worker.instance}`].sort());
    expect(base).toBe(2);
    expect(Object.keys(worker.stats().peers)).toEqual([]);
  });

  it('an instance that disconnectFrom()s its client: the client is told and searches on (README); after its own disconnectFrom it links again', async () => {
    const worker = await serving('worker', server.url);
    worker.on('message', (m) => m.reply('ok'));
    const api = natsNode('api', server.url, { maxRetries: 3 }, { discoveryInterval: 50 });
    await api.connectTo('worker');
    const gone = once(api, 'disconnect');
    expect(await worker.disconnectFrom('api')).toBe(true);
    await within(gone, 3000);
    await delay(300);
    await expect(api.sendTo('worker', 1)).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED });
    await expect(api.connectTo('worker')).rejects.toMatchObject({ code: ErrorCode.ALREADY_CONNECTED });
    await api.disconnectFrom('worker');
    await within(api.connectTo('worker'), 5000);
    expect(await api.sendTo('worker', 1)).toBe('ok');
    expect([...api.errors, ...worker.errors]).toEqual([]);
  });

  it('connectTo that gave up, then again while the instance starts: sendTo meanwhile is ERR_IPC_NOT_CONNECTED, then it links', async () => {
    const api = natsNode('api', server.url, { maxRetries: 0 }, { discoveryInterval: 50 });
    await expect(within(api.connectTo('late'), 5000)).rejects.toMatchObject({ code: ErrorCode.CONNECT });
    const pending = api.connectTo('late');
    await expect(api.sendTo('late', 1)).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED });
    const worker = natsNode('late', server.url);
    worker.on('message', (m) => m.reply('ok'));
    worker.serve('late');
    await within(pending, 5000);
    expect(await api.sendTo('late', 1)).toBe('ok');
  });

  it('names at the edges: 256 characters, 4-byte characters, another node\'s instance id; a space or empty is a TypeError', async () => {
    const long = 'n'.repeat(256);
    expect(() => natsNode('n'.repeat(257), server.url)).toThrow(TypeError);
    const w = await serving(long, server.url);
    w.on('message', (m) => m.reply('long'));
    const emoji = '😀'.repeat(128);
    const e = await serving(emoji, server.url);
    e.on('message', (m) => m.reply('emoji'));
    const api = natsNode('api', server.url, { maxRetries: 20 }, { discoveryInterval: 50 });
    await api.connectTo(long);
    await api.connectTo(emoji);
    expect(await api.sendTo(long, 1)).toBe('long');
    expect(await api.sendTo(emoji, 1)).toBe('emoji');
    // A service named as another node's instance id.
    const twin = await serving(w.instance, server.url);
    twin.on('message', (m) => m.reply('twin'));
    await api.connectTo(w.instance);
    expect(await api.sendTo(w.instance, 1)).toBe('twin');
    expect(await api.sendTo(long, 1)).toBe('long');
    const spaced = natsNode('a b', server.url);
    expect(() => spaced.serve('a b')).toThrow(TypeError);
    await expect(api.connectTo('a b')).rejects.toBeInstanceOf(TypeError);
    await expect(api.connectTo('')).rejects.toBeInstanceOf(TypeError);
    expect([...api.errors, ...spaced.errors, ...w.errors, ...e.errors, ...twin.errors]).toEqual([]);
  });

  it('a stream while the instance close({ drain })s ends whole; one while the client disconnectFrom()s rejects ERR_IPC_CLOSED', async () => {
    const worker = await serving('worker', server.url);
    worker.on('message', (m) => (m.data === 'stream' ? m.stream(interval(5).pipe(take(40), map((i: number) => i))) : m.reply('ok')));
    const api = natsNode('api', server.url, { maxRetries: 20 }, { discoveryInterval: 50 });
    await api.connectTo('worker');
    const stream = lastValueFrom(api.request$('worker', 'stream').pipe(toArray())).then((values: unknown[]) => values.length, (error: IpcError) => error.code);
    await delay(50);
    const closing = worker.close({ drain: 2000 });
    expect(await within(stream, 5000)).toBe(40);
    await within(closing, 5000);
    const linked = once(api, 'connect');
    const w2 = await serving('worker', server.url);
    w2.on('message', (m) => (m.data === 'stream' ? m.stream(interval(5).pipe(take(400), map((i: number) => i))) : m.reply('ok')));

    await within(linked, 5000);
    const s2 = lastValueFrom(api.request$('worker', 'stream').pipe(toArray())).then((values: unknown[]) => values.length, (error: IpcError) => error.code);
    await delay(50);
    await api.disconnectFrom('worker');
    expect(await within(s2, 5000)).toBe(ErrorCode.CLOSED);
    expect(api.stats()).toMatchObject({ pendingRequests: 0, openStreams: 0, peers: {} });
    expect([...api.errors, ...worker.errors, ...w2.errors]).toEqual([]);
  });

  it('(was broken) a node closed on a connection of the user is let go: nothing of it stays reachable from the connection (each one leaked ~1 KB)', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const nc = await connect({ servers: server.url });
    try {
      // One job: a node on the connection, serving, then closed; what the transport keeps of it, weakly.
      const job = async (): Promise<WeakRef<object>> => {
        const worker = new Node('job', { transport: natsTransport({ connection: nc }) });
        worker.serve('job');
        await once(worker, 'listening');
        const ref = new WeakRef((worker as unknown as { session: { shared: object } }).session.shared);
        await worker.close();
        return ref;
      };
      const refs: WeakRef<object>[] = [];
      for (let i = 0; i < 6; i++) refs.push(await job());
      // Let what is still under way finish (the last close's flush), then collect.
      await nc.flush();
      await delay(100);
      gc();
      await delay(10);
      gc();
      expect(refs.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
      expect(nc.isClosed()).toBe(false);
    } finally {
      await nc.close();
    }
  });

  it('every call after close(): ERR_IPC_CLOSED or its documented answer, no error event, no subscription of the client left', async () => {
    const worker = await serving('worker', server.url);
    const api = natsNode('api', server.url, { maxRetries: 20 }, { discoveryInterval: 50 });
    await api.connectTo('worker');
    await api.close();
    const r = await Promise.allSettled([
      api.sendTo('worker', 1),
      api.connectTo('worker'),
      api.disconnectFrom('worker'),
      lastValueFrom(api.request$('worker', 1).pipe(toArray())),
      lastValueFrom(api.stats$.pipe(toArray())),
      Promise.resolve().then(() => api.broadcast('x')),
      api.close(),
    ]);
    expect(r.map((x) => (x.status === 'fulfilled' ? x.value : (x.reason as IpcError).code))).toEqual([
      ErrorCode.CLOSED, ErrorCode.CLOSED, false, ErrorCode.CLOSED, [], ErrorCode.CLOSED, undefined,
    ]);
    expect([...api.errors, ...worker.errors]).toEqual([]);
    expect((await ours(server)).sort()).toEqual([`ipc.discover.worker`, `ipc.open.${worker.instance}`].sort());
  });

  it('(was broken) close() during connectTo, at every moment: the instance is told at once, no link of ours waits there for its handshakeTimeout', async () => {
    const worker = await serving('worker', server.url, { handshakeTimeout: 60_000 });
    const nc = await connect({ servers: server.url });
    try {
      // Our connection, then one the client opens itself: with both, the link request may be out when close() comes.
      for (const transport of [() => natsTransport({ connection: nc, discoveryInterval: 50 }), () => natsTransport({ servers: server.url, discoveryInterval: 50 })]) {
        for (let i = 0; i < 24; i++) {
          const api = node('api', { transport: transport(), maxRetries: 5 });
          const connecting = api.connectTo('worker').then(() => 'linked', (error: IpcError) => error.code);
          await delay(i % 6);
          await new Promise(setImmediate);
          await within(api.close(), 5000);
          expect(['linked', ErrorCode.CLOSED]).toContain(await connecting);
        }
      }
      // Each one was held until the instance's handshakeTimeout (10 s by default): 1,024 of them crowd it out.
      await eventually(async () => worker.stats().handshaking === 0, 2000, 'no link handshaking on the instance');
      await eventually(async () => (await ours(server, 'ipc.link.')).length === 0, 2000, 'no link subscription left');
      expect(worker.errors).toEqual([]);
    } finally {
      await nc.close();
    }
  });

  it('the client close({ drain })s while its stream runs over a shared transport: the stream ends whole, the connection closes with the last node', async () => {
    // Every earlier test closed its connections, but the server may not have seen the last one go yet.
    await eventually(async () => (await server.varz()).connections === 0, 3000, "the earlier tests' connections to close");
    const before = 0;
    const transport = natsTransport({ servers: server.url, discoveryInterval: 50 });
    const worker = node('worker', { transport });
    worker.on('message', (m) => m.stream(interval(5).pipe(take(30))));
    worker.serve('worker');
    await once(worker, 'listening');
    const api = node('api', { transport, maxRetries: 20 });
    await api.connectTo('worker');
    const stream = lastValueFrom(api.request$('worker', 'go').pipe(toArray()));
    await delay(30);
    await within(api.close({ drain: 3000 }), 5000);
    expect(await stream).toHaveLength(30);
    expect((await server.varz()).connections).toBe(before + 1);
    await worker.close();
    await eventually(async () => (await server.varz()).connections === before, 3000, 'the connection closed');
    expect([...api.errors, ...worker.errors]).toEqual([]);
  });
});

describeNats('a shared transport whose last node closes while a new one starts on it', () => {
  let server: NatsServer | undefined;
  afterEach(async () => {
    await closeAll();
    await server?.stop();
  });

  it('(was broken) the closing node lets go of its own watch of the NATS connection, not the new node\'s: both nodes let go once closed, and a disconnect still ends the new one\'s links at once', async () => {
    server = await startNatsServer();
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const worker = await serving('worker', server.url, { heartbeatInterval: 60_000 });
    worker.on('message', () => undefined); // never answers: only the disconnect can end the requests
    const nc = await connect({ servers: server.url });
    // Nodes of its own (the helpers' `node` keeps every node until the test ends): closed by the test.
    const made: Node[] = [];
    const handover = async (transport: ReturnType<typeof natsTransport>, microtasks: number) => {
      const first = new Node('first', { transport });
      first.serve('first');
      await once(first, 'listening');
      const closing = first.close();
      for (let k = 0; k < microtasks; k++) await Promise.resolve();
      const api = new Node('api', { transport, maxRetries: 20, heartbeatInterval: 60_000 });
      made.push(api);
      await within(api.connectTo('worker'), 5000);
      await within(closing, 5000);
      return api;
    };
    try {
      // On the user's connection: the new node's watch started before the closing node's release, which stopped it
      // (the closing node's own watch ran on, keeping its transport reachable from the connection for its life).
      const cycle = async (microtasks: number): Promise<WeakRef<object>> => {
        const api = await handover(natsTransport({ connection: nc, discoveryInterval: 50 }), microtasks);
        const ref = new WeakRef((api as unknown as { session: { shared: object } }).session.shared);
        await api.close();
        made.pop();
        return ref;
      };
      const refs: WeakRef<object>[] = [];
      for (let microtasks = 0; microtasks < 8; microtasks++) refs.push(await cycle(microtasks));
      await nc.flush();
      await delay(100);
      gc();
      await delay(10);
      gc();
      expect(refs.map((ref, i) => (ref.deref() === undefined ? -1 : i)).filter((i) => i >= 0)).toEqual([]);
      // Either connection, at any moment: the new node follows it, and a NATS disconnect ends its links at once.
      const outcomes: Promise<string>[] = [];
      for (let microtasks = 0; microtasks < 8; microtasks++) {
        for (const transport of [natsTransport({ connection: nc, discoveryInterval: 50 }), natsTransport({ servers: server.url, discoveryInterval: 50 })]) {
          const api = await handover(transport, microtasks);
          outcomes.push(api.sendTo('worker', microtasks, { timeout: 60_000 }).then(() => 'answered', (error: IpcError) => error.code));
        }
      }
      await delay(100);
      const killed = performance.now();
      await server.kill();
      expect(await within(Promise.all(outcomes), 5000)).toEqual(outcomes.map(() => ErrorCode.PEER_DISCONNECTED));
      expect(performance.now() - killed).toBeLessThan(1000);
    } finally {
      await Promise.all(made.map((api) => api.close()));
      await nc.close();
    }
  });
});
