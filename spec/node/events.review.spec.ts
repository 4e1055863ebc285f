import { join } from 'node:path';
import { config } from 'rxjs';
import { ErrorCode, type Node, type NodeMessage, type NodeSocket } from '../../src';
import { cleanUp, ROOT, spawnNode } from '../helpers/child';
import { closeAll, delay, freezableProxy, link, node, serveTcp, until, type Transport } from '../helpers/net';

afterEach(closeAll);

/** Both faces of a node, recorded side by side: what the events said, what the streams said. */
function record(n: Node) {
  const events: Array<[string, string, NodeSocket | undefined]> = [];
  const streams: Array<[string, string, NodeSocket | undefined]> = [];
  const done: string[] = [];
  n.on('connection', (name, socket) => events.push(['up', name, socket]));
  n.on('connect', (name, socket) => events.push(['up', name, socket]));
  n.on('disconnect', (name, socket) => events.push(['down', name, socket]));
  n.on('socketClose', (name) => events.push(['down', name, undefined]));
  n.on('message', (m) => events.push(['msg', m.from, m.socket]));
  n.on('close', () => done.push('close'));
  n.connections$.subscribe({ next: (s) => streams.push(['up', s.name, s]), complete: () => done.push('connections$') });
  n.disconnections$.subscribe({ next: (s) => streams.push(['down', s.name, s]), complete: () => done.push('disconnections$') });
  n.messages$.subscribe({ next: (m) => streams.push(['msg', m.from, m.socket]), complete: () => done.push('messages$') });
  /** The events and the streams agree: same kinds, names, order, and the same socket objects where the event has one. */
  const agree = () => {
    expect(streams.map(([k, name]) => `${k}:${name}`)).toEqual(events.map(([k, name]) => `${k}:${name}`));
    events.forEach(([, , socket], i) => {
      if (socket) expect(streams[i][2]).toBe(socket);
    });
  };
  return { events, streams, done, agree };
}

describe.each<Transport>(['tcp', 'link'])('events and streams agree over %s', (transport) => {
  it('connect, messages, disconnect, close: same order, same sockets on both faces; streams complete before close', async () => {
    const server = node('server', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0 });
    const s = record(server);
    const c = record(client);
    server.on('message', (m) => m.reply(m.data));
    client.on('message', (m) => m.reply(m.data));
    await link(server, client, transport);
    await client.sendTo('server', 1);
    await server.sendTo('client', 2);
    await client.close();
    await until(() => s.events.length === 3, 2000, 'socketClose');
    await server.close();
    s.agree();
    c.agree();
    expect(s.events.map(([k]) => k)).toEqual(['up', 'msg', 'down']);
    expect(c.events.map(([k]) => k)).toEqual(['up', 'msg', 'down']);
    // the server's disconnection is the socket it accepted
    expect(s.streams[2][2]).toBe(s.streams[0][2]);
    expect(c.done).toEqual(['messages$', 'connections$', 'disconnections$', 'close']);
    expect(s.done).toEqual(['messages$', 'connections$', 'disconnections$', 'close']);
  });

  it('after close: a late subscriber is completed at once, nothing more on either face', async () => {
    const server = node('server', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0 });
    await link(server, client, transport);
    await client.close();
    const late: string[] = [];
    client.messages$.subscribe({ next: () => late.push('m'), complete: () => late.push('m|') });
    client.connections$.subscribe({ next: () => late.push('c'), complete: () => late.push('c|') });
    client.disconnections$.subscribe({ next: () => late.push('d'), complete: () => late.push('d|') });
    client.stats$.subscribe({ next: () => late.push('s'), complete: () => late.push('s|') });
    expect(late).toEqual(['m|', 'c|', 'd|', 's|']);
  });

  it('a late subscriber sees nothing from before (hot)', async () => {
    const server = node('server', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0 });
    await link(server, client, transport);
    const seen: unknown[] = [];
    server.connections$.subscribe((s) => seen.push(s));
    client.connections$.subscribe((s) => seen.push(s));
    await delay(20);
    expect(seen).toEqual([]);
  });
});

describe.each<Transport>(['tcp', 'link'])('throwing listeners and subscribers over %s', (transport) => {
  let unhandled: unknown[];
  beforeEach(() => {
    unhandled = [];
    config.onUnhandledError = (e) => unhandled.push(e);
  });
  afterEach(() => {
    config.onUnhandledError = null;
  });

  it("a throwing messages$ subscriber is RxJS's onUnhandledError: the 'message' listener and other subscribers still see it, the requester waits for its timeout", async () => {
    const server = node('server', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0 });
    const boom = new Error('boom');
    const seen: string[] = [];
    server.messages$.subscribe(() => {
      throw boom;
    });
    server.messages$.subscribe((m) => seen.push(`sub:${m.data}`));
    server.on('message', (m) => seen.push(`ev:${m.data}`));
    await link(server, client, transport);
    await expect(client.sendTo('server', 'x', { timeout: 100 })).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
    await until(() => unhandled.length > 0, 2000, 'onUnhandledError');
    expect(unhandled).toEqual([boom]);
    expect(seen).toEqual(['sub:x', 'ev:x']);
    expect(server.errors).toEqual([]);
  });

  it("a throwing 'message' listener: the requester gets a RemoteError, the node an 'error', messages$ still saw it", async () => {
    const server = node('server', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0 });
    const seen: string[] = [];
    server.messages$.subscribe((m) => seen.push(`sub:${m.data}`));
    server.on('message', () => {
      throw new TypeError('bad handler');
    });
    await link(server, client, transport);
    await expect(client.sendTo('server', 'x')).rejects.toMatchObject({ name: 'RemoteError', message: expect.stringContaining('bad handler') });
    expect(seen).toEqual(['sub:x']);
    expect(server.errors.map((e) => e.message)).toEqual(['bad handler']);
    await expect(client.sendTo('server', 'y')).rejects.toMatchObject({ name: 'RemoteError' });
    expect(unhandled).toEqual([]);
  });

  it("a throwing connections$ subscriber does not keep 'connection' / 'connect' from the listeners", async () => {
    const server = node('server', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0 });
    const seen: string[] = [];
    for (const n of [server, client]) {
      n.connections$.subscribe(() => {
        throw new Error(`${n.name} sub`);
      });
      n.disconnections$.subscribe(() => {
        throw new Error(`${n.name} down`);
      });
    }
    server.on('connection', (name) => seen.push(`connection:${name}`));
    client.on('connect', (name) => seen.push(`connect:${name}`));
    client.on('disconnect', (name) => seen.push(`disconnect:${name}`));
    server.on('socketClose', (name) => seen.push(`socketClose:${name}`));
    await link(server, client, transport);
    await client.close();
    await until(() => seen.length === 4, 2000, 'socketClose');
    expect(seen.sort()).toEqual(['connect:server', 'connection:client', 'disconnect:server', 'socketClose:client']);
    await until(() => unhandled.length === 4, 2000, 'onUnhandledError');
  });
});

describe.each<Transport>(['tcp', 'link'])('re-entrancy over %s', (transport) => {
  it.each(["'message'", 'a messages$ subscription'])("close() from within %s: the requester is told its peer left, close resolves once, streams complete, nothing after 'close'", async (where) => {
    const server = node('server', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0 });
    const s = record(server);
    let closing: Promise<void> | undefined;
    const handle = (m: NodeMessage) => {
      closing = server.close();
      m.reply('late');
    };
    if (where === "'message'") server.on('message', handle);
    else server.messages$.subscribe(handle);
    await link(server, client, transport);
    const answer = client.sendTo('server', 'x').then(
      (v) => ({ v }),
      (e: { code?: string }) => ({ code: e.code }),
    );
    await until(() => closing !== undefined, 2000, 'close');
    await closing;
    // closing, the node answers no more (reply() is false): the requester is told its peer left.
    expect(await answer).toEqual({ code: ErrorCode.PEER_DISCONNECTED });
    expect(s.done).toEqual(['messages$', 'connections$', 'disconnections$', 'close']);
    s.agree();
    const after = s.events.length;
    await delay(20);
    expect(s.events.length).toBe(after);
  });

  it("close() from within 'connect' and 'connection'", async () => {
    const server = node('server', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0 });
    const s = record(server);
    const c = record(client);
    let closings: Promise<void>[] = [];
    client.on('connect', () => closings.push(client.close()));
    await link(server, client, transport);
    await Promise.all(closings);
    await until(() => s.events.length === 2, 2000, 'socketClose');
    c.agree();
    s.agree();
    expect(c.events.map(([k]) => k)).toEqual(['up', 'down']);
    expect(c.done).toEqual(['messages$', 'connections$', 'disconnections$', 'close']);
    const server2 = node('server2', { heartbeatInterval: 0 });
    const client2 = node('client2', { heartbeatInterval: 0 });
    const s2 = record(server2);
    const c2 = record(client2);
    closings = [];
    server2.on('connection', () => closings.push(server2.close()));
    await link(server2, client2, transport).catch(() => undefined);
    await until(() => closings.length === 1, 2000, 'connection');
    await closings[0];
    s2.agree();
    expect(s2.events.map(([k]) => k)).toEqual(['up', 'down']);
    expect(s2.done).toEqual(['messages$', 'connections$', 'disconnections$', 'close']);
    await until(() => c2.events.length === 2 || c2.events.length === 0, 2000, 'client2');
    await delay(20);
    c2.agree();
  });

  it("disconnectFrom from within 'connect': disconnect on both faces, no reconnection", async () => {
    const server = node('server', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0, maxRetries: Infinity });
    const s = record(server);
    const c = record(client);
    const results: Promise<boolean>[] = [];
    client.on('connect', (name) => results.push(client.disconnectFrom(name)));
    await link(server, client, transport);
    expect(await results[0]).toBe(true);
    await until(() => s.events.length === 2, 2000, 'socketClose');
    await delay(50);
    c.agree();
    s.agree();
    expect(c.events.map(([k]) => k)).toEqual(['up', 'down']);
    expect(client.get('server')).toBeUndefined();
  });

  it("once/off during emission, and subscribing inside a handler: neither face sees the current value twice nor misses the next", async () => {
    const server = node('server', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0 });
    const seen: string[] = [];
    const second = (m: { data: unknown }) => seen.push(`second:${m.data}`);
    server.once('message', (m) => {
      seen.push(`once:${m.data}`);
      server.off('message', second);
      server.on('message', (n) => seen.push(`added:${n.data}`));
      server.messages$.subscribe((n) => seen.push(`sub:${n.data}`));
    });
    server.on('message', second);
    await link(server, client, transport);
    await client.sendTo('server', 1, { timeout: 50 }).catch(() => undefined);
    await client.sendTo('server', 2, { timeout: 50 }).catch(() => undefined);
    // As any EventEmitter and Subject: what is removed or added during an emission changes the next one, not this one.
    expect(seen).toEqual(['once:1', 'second:1', 'sub:2', 'added:2']);
  });
});

/**
 * A client whose heartbeat notices a frozen proxy (then reconnects under the same name) and a server whose own
 * heartbeat does not: the server still holds the stale connection when the client comes back, and takes it over.
 */
async function staleRig() {
  const server = node('server', { heartbeatInterval: 60_000 });
  const port = await serveTcp(server);
  const proxy = await freezableProxy(port);
  const client = node('client', { heartbeatInterval: 50, maxRetries: Infinity, retryTime: 10, maxRetryTime: 20 });
  return { server, client, proxy, s: record(server), c: record(client) };
}

describe('takeover of a stale connection (TCP)', () => {
  it('is a disconnect then a connect on both faces of both nodes, the stale socket told gone, once', async () => {
    const { server, client, proxy, s, c } = await staleRig();
    await client.connectTo('server', proxy.port, '127.0.0.1');
    const first = server.get('client')!;
    proxy.freeze();
    await until(() => s.events.length === 3 && c.events.length === 3, 5000, 'the takeover');
    await delay(50);
    s.agree();
    c.agree();
    expect(c.events.map(([k]) => k)).toEqual(['up', 'down', 'up']);
    expect(c.streams[0][2]).toBe(c.streams[2][2]);
    expect(s.events.map(([k]) => k)).toEqual(['up', 'down', 'up']);
    expect(s.streams[0][2]).toBe(first);
    expect(s.streams[1][2]).toBe(first);
    expect(s.streams[2][2]).toBe(server.get('client'));
    expect(s.streams[2][2]).not.toBe(first);
    await proxy.close();
  });
});

describe('two nodes in one process, connected both ways (TCP)', () => {
  it("each sees 'connection' and 'connect' on its events and both on connections$, and disconnectFrom ends both on both faces", async () => {
    const a = node('a', { heartbeatInterval: 0 });
    const b = node('b', { heartbeatInterval: 0 });
    const ra = record(a);
    const rb = record(b);
    const [pa, pb] = [await serveTcp(a), await serveTcp(b)];
    await a.connectTo('b', pb, '127.0.0.1');
    await b.connectTo('a', pa, '127.0.0.1');
    await until(() => ra.events.length === 2 && rb.events.length === 2, 2000, 'both ways');
    expect(await a.disconnectFrom('b')).toBe(true);
    await until(() => ra.events.length === 4 && rb.events.length === 4, 2000, 'both down');
    await delay(30);
    ra.agree();
    rb.agree();
    expect(ra.events.map(([k]) => k)).toEqual(['up', 'up', 'down', 'down']);
    expect(rb.events.map(([k]) => k)).toEqual(['up', 'up', 'down', 'down']);
    expect(a.get('b')).toBeUndefined();
    expect(b.get('a')).toBeUndefined();
  });
});

describe('takeover re-entrancy (TCP)', () => {
  it("a 'socketClose' listener that disconnects from the peer whose stale connection was taken over ends the new one too, told on both faces", async () => {
    const { server, client, proxy, s, c } = await staleRig();
    server.on('socketClose', (name) => void server.disconnectFrom(name));
    await client.connectTo('server', proxy.port, '127.0.0.1');
    proxy.freeze();
    await until(() => s.events.length === 4 && c.events.length === 4, 5000, 'the takeover and the disconnection');
    await delay(50);
    s.agree();
    c.agree();
    expect(s.events.map(([k]) => k)).toEqual(['up', 'down', 'up', 'down']);
    expect(c.events.map(([k]) => k)).toEqual(['up', 'down', 'up', 'down']);
    expect(server.get('client')).toBeUndefined();
    expect(client.get('server')).toBeUndefined();
    await proxy.close();
  });
});

describe("RxJS's deprecated synchronous error handling (child process)", () => {
  afterEach(cleanUp);

  it('(was broken) a throwing subscriber still never reaches the node: the events, the answer, the connection and close() are as without it', async () => {
    const child = spawnNode([join(ROOT, 'spec', 'fixtures', 'events-sync-errors.js')]);
    await child.waitFor(/"(end|failed)"/, 10_000).catch(() => undefined);
    const seen = child
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { event: string; node?: string; message?: string; reply?: string; server?: boolean; client?: boolean });
    // Before: a connections$ subscriber's throw unwound into the frame handler, which ended the connection (no
    // 'connect' nor 'connection', the request ERR_IPC_NOT_CONNECTED; over TCP the server closed it for good and told
    // 'socketClose' without a 'connection'), and a complete callback's made close() reject, the node half closed.
    const of = (who?: string) => seen.filter((l) => l.event !== 'uncaught' && l.node === who).map((l) => l.event);
    expect(of('client')).toEqual(['connect', 'disconnect', 'close']);
    expect(of('server')).toEqual(['connection', 'socketClose', 'close']);
    expect(of(undefined)).toEqual(['reply', 'connected', 'closed', 'end']);
    expect(seen.find((l) => l.event === 'reply')?.reply).toBe('re:x');
    expect(seen.find((l) => l.event === 'connected')).toMatchObject({ server: true, client: true });
    // Each throw is rethrown on its own, as a throwing listener's.
    expect(seen.filter((l) => l.event === 'uncaught').map((l) => l.message).sort()).toEqual(
      [
        ...['client', 'server'].flatMap((n) => [`${n} connections$ next`, `${n} disconnections$ next`]),
        'server messages$ next',
        ...['client', 'server'].flatMap((n) => ['messages$', 'connections$', 'disconnections$'].map((s) => `${n} ${s} complete`)),
      ].sort(),
    );
    await expect(child.exited).resolves.toEqual({ code: 0, signal: null });
  });
});

describe('more re-entrancy (TCP)', () => {
  it('close() from a disconnections$ subscriber told of a stale connection taken over: close resolves, the new connection is told on both faces too', async () => {
    const server = node('server', { heartbeatInterval: 60_000 });
    const port = await serveTcp(server);
    const proxy = await freezableProxy(port);
    const client = node('client', { heartbeatInterval: 50, maxRetries: Infinity, retryTime: 10, maxRetryTime: 20 });
    const s = record(server);
    let closing: Promise<void> | undefined;
    server.disconnections$.subscribe(() => (closing ??= server.close()));
    await client.connectTo('server', proxy.port, '127.0.0.1');
    proxy.freeze();
    await until(() => closing !== undefined, 5000, 'the takeover');
    await closing;
    s.agree();
    expect(s.events.map(([k]) => k)).toEqual(['up', 'down', 'up', 'down']);
    expect(s.done).toEqual(['messages$', 'connections$', 'disconnections$', 'close']);
    await proxy.close();
  });

});
