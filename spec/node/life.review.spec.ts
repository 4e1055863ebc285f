// A second white-box review of the connection lifecycle (Connection, Dialler, Fleet, the node's bookkeeping).
// Every test here failed before its fix.
import { Encoding, ErrorCode } from '../../src';
import { bytes, closed, handshakeBytes, rawClient } from '../helpers/raw';
import { closeAll, delay, freezableProxy, node, serveTcp, until } from '../helpers/net';

describe('connection lifecycle (second review)', () => {
  afterEach(closeAll);

  it('a client that closes right after a busy turn (1024 frames read) closes at once, not after the 2 s grace', async () => {
    const server = node('server');
    // The answer comes right after 1100 one-way messages, in the same read: that read pauses the client's socket
    // until the next turn (yieldTurn); the disconnectFrom runs before that turn (a microtask of the answer).
    server.on('message', (m) => {
      for (let i = 0; i < 1100; i++) void server.sendTo('client', i, { receptive: false });
      m.reply('done');
    });
    const port = await serveTcp(server);
    const client = node('client');
    let received = 0;
    client.on('message', () => received++);
    await client.connectTo('server', port, '127.0.0.1');
    expect(await client.sendTo('server', 'go')).toBe('done');
    const start = performance.now();
    await client.disconnectFrom('server');
    expect(received).toBe(1100);
    // Before: 2000 ms (the paused socket never read the server's FIN; the grace timer destroyed it).
    expect(performance.now() - start).toBeLessThan(1000);
  });

  it('a client that gives up during its handshake (disconnectFrom, close) is no error on the server', async () => {
    const server = node('server');
    const port = await serveTcp(server);
    const client = node('client');
    const connecting = client.connectTo('server', port, '127.0.0.1');
    // Before the TCP connect completed: the hello, the CLOSE and the FIN reach the server together.
    await client.disconnectFrom('server');
    await expect(connecting).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await delay(100);
    // Before: 'Refused by the peer: Node "client" disconnected from "server"' (ERR_IPC_CLOSED) as an 'error'.
    expect(server.errors.map((e) => e.message)).toEqual([]);
    expect(server.stats().handshaking).toBe(0);
  });

  it("a 'socketClose' listener that closes the node when a takeover drops the stale connection closes the new one too", async () => {
    const server = node('server', { heartbeatInterval: 60_000 });
    const port = await serveTcp(server);
    const proxy = await freezableProxy(port);
    const client = node('client', { heartbeatInterval: 100, maxRetries: Infinity, retryTime: 20, maxRetryTime: 50 });
    await client.connectTo('server', proxy.port, '127.0.0.1');
    const stale = server.get('client')!;
    let closing: Promise<void> | undefined;
    server.on('socketClose', () => (closing ??= server.close()));
    // The client's heartbeat gives the frozen path up; it comes back with its resume token and takes over.
    proxy.freeze();
    await until(() => closing !== undefined, 5000, 'the takeover');
    // Before: the new connection was in no table while the stale one's end was told, so close() missed it: it
    // stayed open (admitted once the listener returned), and close() never resolved (net.Server#close waited for it).
    await expect(Promise.race([closing!.then(() => 'closed'), delay(5000).then(() => 'still closing')])).resolves.toBe('closed');
    expect(stale.connected).toBe(false);
    expect(server.get('client')?.connected ?? false).toBe(false);
    await until(() => !client.get('server')!.connected, 3000, 'the client to be told');
    await proxy.close();
  });

  it("a peer of our server that broke the protocol: 'socketClose' first, then 'error' (as for a peer we dialled)", async () => {
    const server = node('server');
    const port = await serveTcp(server);
    const events: string[] = [];
    server.on('socketClose', (name) => events.push(`socketClose ${name}`));
    server.on('error', (error) => events.push(`error ${(error as { code?: string }).code}`));
    const raw = rawClient(port);
    raw.write(handshakeBytes('peer'));
    await until(() => server.get('peer') !== undefined, 5000, 'the handshake');
    raw.write(bytes({ type: 0x7f, flags: 0, id: 0, encoding: Encoding.BUFFER, payload: Buffer.alloc(0) }));
    await closed(raw);
    await until(() => events.length === 2, 5000, 'both events');
    // Before: the 'error' came first, while the peer was already gone from the node's tables (state settled, not told).
    expect(events).toEqual(['socketClose peer', `error ${ErrorCode.PROTOCOL}`]);
  });
});
