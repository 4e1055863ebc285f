import { once } from 'node:events';
import { Socket } from 'node:net';
import { firstValueFrom, take, toArray } from 'rxjs';
import { ErrorCode, type NodeSocket } from '../../src';
import { FrameWriter } from '../../src/internal';
import { closeAll, delay, node, serveTcp, until } from '../helpers/net';

afterEach(closeAll);

/** Handles Node itself keeps alive (sockets, servers, timers), by kind. */
function handles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

describe('Node lifecycle', () => {
  it('reconnects after the server node closes and a new one serves the same port', async () => {
    const first = node('hub');
    const port = await serveTcp(first);
    first.on('message', (m) => m.reply('first'));
    const client = node('client', { maxRetries: Infinity, retryTime: 20, maxRetryTime: 100 });
    const twice = firstValueFrom(client.connections$.pipe(take(2), toArray()));
    const events: string[] = [];
    client.on('connect', (name) => events.push(`connect ${name}`));
    client.on('disconnect', (name) => events.push(`disconnect ${name}`));
    await client.connectTo('hub', port, '127.0.0.1');
    await expect(client.sendTo('hub', 'x')).resolves.toBe('first');

    await first.close();
    await until(() => events.length === 2);
    const second = node('hub');
    second.on('message', (m) => m.reply('second'));
    second.serve('hub', port, '127.0.0.1');
    await twice;
    expect(events).toEqual(['connect hub', 'disconnect hub', 'connect hub']);
    await expect(client.sendTo('hub', 'x')).resolves.toBe('second');
  });

  it('a server closing with reconnect: false stops its clients from reconnecting', async () => {
    const server = node('hub');
    const port = await serveTcp(server);
    const client = node('client', { maxRetries: Infinity, retryTime: 10 });
    await client.connectTo('hub', port, '127.0.0.1');
    const disconnected = once(client, 'disconnect');
    await server.close({ reconnect: false });
    await disconnected;
    // Settled before 'disconnect' is emitted: the client gave up (no retry scheduled) and said why.
    expect(client.get('hub')).toBeUndefined();
    expect(client.errors.map((e) => (e as { code?: string }).code)).toEqual([ErrorCode.PEER_DISCONNECTED]);
  });

  it('disconnectFrom never reconnects, and rejects what was pending with ERR_IPC_CLOSED', async () => {
    const server = node('hub');
    const port = await serveTcp(server);
    const client = node('client', { maxRetries: Infinity, retryTime: 10 });
    await client.connectTo('hub', port, '127.0.0.1');
    const pending = expect(client.sendTo('hub', 'unanswered')).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await until(() => true);
    await expect(client.disconnectFrom('hub')).resolves.toBe(true);
    await pending;
    expect(client.get('hub')).toBeUndefined();
    await until(() => server.get('client') === undefined);
    await expect(client.disconnectFrom('hub')).resolves.toBe(false);
  });

  it('a server can disconnect a client for good', async () => {
    const server = node('hub');
    const port = await serveTcp(server);
    const client = node('client', { maxRetries: Infinity, retryTime: 10 });
    await client.connectTo('hub', port, '127.0.0.1');
    await until(() => server.get('client') !== undefined);
    await server.disconnectFrom('client');
    await once(client, 'disconnect');
    expect(server.get('client')).toBeUndefined();
    expect(client.get('hub')).toBeUndefined();
  });

  it('disconnectFrom closes both ways between two nodes that serve and connect to each other', async () => {
    const a = node('a');
    const b = node('b', { maxRetries: Infinity, retryTime: 10 });
    const peers = (n: typeof a) => Object.keys(n.stats().peers).length;
    const portA = await serveTcp(a);
    const portB = await serveTcp(b);
    const accepted = once(a, 'connection');
    await a.connectTo('b', portB, '127.0.0.1');
    await b.connectTo('a', portA, '127.0.0.1');
    const [, theirs] = (await accepted) as [string, NodeSocket];
    await until(() => peers(a) === 2 && peers(b) === 2, 5000, 'a connection each way');
    const pending = expect(a.sendTo(theirs, 'unanswered')).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await expect(a.disconnectFrom('b')).resolves.toBe(true);
    await pending;
    // Was: only the connection a dialled closed; b's connection to a's server stayed, and sendTo('b') still went.
    expect(a.get('b')).toBeUndefined();
    await expect(a.sendTo('b', 'hello')).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED });
    await until(() => peers(a) === 0 && peers(b) === 0, 5000, 'no connection left');
    // b was told not to come back.
    await delay(100);
    expect([peers(a), peers(b)]).toEqual([0, 0]);
    await expect(a.disconnectFrom('b')).resolves.toBe(false);
  });

  it('gives up after maxRetries with ERR_IPC_CONNECT, carrying the socket error', async () => {
    const probe = node('probe');
    const port = await serveTcp(probe);
    await probe.close();
    const client = node('client', { maxRetries: 2, retryTime: 10 });
    const error = await client.connectTo('gone', port, '127.0.0.1').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCode.CONNECT, message: expect.stringMatching(/after 3 attempts/) });
    expect((error as Error).cause).toMatchObject({ code: 'ECONNREFUSED' });
    expect(client.get('gone')).toBeUndefined();
  });

  it('close() rejects a connectTo still retrying', async () => {
    const probe = node('probe');
    const port = await serveTcp(probe);
    await probe.close();
    const client = node('client', { maxRetries: Infinity, retryTime: 10 });
    const connecting = client.connectTo('gone', port, '127.0.0.1');
    // Watched before close(): it rejects during close(), which may take a turn of the event loop to resolve.
    const rejected = expect(connecting).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await delay(50);
    await client.close();
    await rejected;
  });

  it('leaves no socket, server or timer behind after close()', async () => {
    await delay(10);
    const before = handles();
    const server = node('hub');
    const port = await serveTcp(server);
    const client = node('client', { maxRetries: Infinity });
    await client.connectTo('hub', port, '127.0.0.1');
    server.on('message', () => undefined); // never replies: leaves a pending request with a timer
    const pending = client.sendTo('hub', 'x', { timeout: 60_000 }).catch(() => 'rejected');
    await delay(20);
    await Promise.all([client.close(), server.close()]);
    await expect(pending).resolves.toBe('rejected');
    // Timers of earlier tests may end meanwhile: nothing may be *added*. A timer of this suite that is still
    // running out (under load, a socket's close can trail by a few ms) must end within 2.5 s; anything that keeps
    // running is a leak. (processes.spec also checks that a process using a server and a client exits by itself
    // after close().)
    const added = () => Object.entries(handles()).filter(([kind, n]) => n > (before[kind] ?? 0));
    await until(() => added().length === 0, 2500, 'the handles to be back to where they were').catch(() => undefined);
    expect(added()).toEqual([]);
  });

  it('writes all frames of one tick in one system call, packing small messages and never copying Buffers over 8 KiB', async () => {
    const server = node('hub');
    const port = await serveTcp(server);
    const client = node('client');
    await client.connectTo('hub', port, '127.0.0.1');
    const received: unknown[] = [];
    server.on('message', (m) => received.push(m.data));
    await delay(20);
    const proto = Socket.prototype as unknown as { _writev: (...args: unknown[]) => unknown; _write: (...args: unknown[]) => unknown };
    const writev = jest.spyOn(proto, '_writev');
    const write = jest.spyOn(proto, '_write');
    try {
      // 100 small strings, then 100 small Buffers: packed next to their headers, handed to the socket as one buffer.
      for (const make of [(i: number) => `m${i}`, (i: number) => Buffer.from(`s${i}`)]) {
        await Promise.all(Array.from({ length: 100 }, (_, i) => client.sendTo('hub', make(i), { receptive: false })));
        await delay(5);
        expect(writev.mock.calls.length + write.mock.calls.length).toBe(1);
        writev.mockClear();
        write.mockClear();
      }
      // 100 Buffers over 8 KiB: never copied: 100 headers + the 100 Buffers themselves, in one writev.
      const buffers = Array.from({ length: 100 }, (_, i) => Buffer.alloc(8 * 1024 + 1, i));
      await Promise.all(buffers.map((b) => client.sendTo('hub', b, { receptive: false })));
      await delay(5);
      expect(write).not.toHaveBeenCalled();
      expect(writev).toHaveBeenCalledTimes(1);
      // Node hands _writev either { chunk } entries or, when all are Buffers, the Buffers themselves.
      const chunks = (writev.mock.calls[0][0] as Array<Buffer | { chunk: Buffer }>).map((c) => ('chunk' in c ? c.chunk : c));
      expect(chunks).toHaveLength(200);
      buffers.forEach((b, i) => expect(chunks[2 * i + 1]).toBe(b));
    } finally {
      writev.mockRestore();
      write.mockRestore();
    }
    await until(() => received.length === 300);
    expect(received.slice(0, 3)).toEqual(['m0', 'm1', 'm2']);
    expect(received[100]).toEqual(Buffer.from('s0'));
  });

  it('lets the writer send early after each received frame (replies to a batch leave in pieces)', async () => {
    const server = node('hub');
    const port = await serveTcp(server);
    const client = node('client');
    await client.connectTo('hub', port, '127.0.0.1');
    server.on('message', (m) => m.reply(m.data));
    await delay(20);
    const sendEarly = jest.spyOn(FrameWriter.prototype, 'sendEarly');
    try {
      const requests = Array.from({ length: 40 }, (_, i) => `${i}`.padEnd(1000, '.'));
      await expect(Promise.all(requests.map((r) => client.sendTo('hub', r)))).resolves.toEqual(requests);
      // Once per frame on each side: 40 requests at the server, 40 replies at the client.
      expect(sendEarly.mock.calls.length).toBeGreaterThanOrEqual(80);
    } finally {
      sendEarly.mockRestore();
    }
  });
});
