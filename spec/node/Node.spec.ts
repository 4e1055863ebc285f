import { once } from 'node:events';
import { firstValueFrom, lastValueFrom, take, toArray, type Observable } from 'rxjs';
import { ErrorCode, NodeMessage, NodeSocket, RemoteError, type Node } from '../../src';
import { closeAll, node, serveTcp, socketPath, until } from '../helpers/net';
import { Node as NodeClass } from '../../src';

afterEach(closeAll);

type Transport = { name: string; serve(n: Node): Promise<unknown[]> };
const transports: Transport[] = [
  { name: 'TCP (port 0)', serve: async (n) => [await serveTcp(n), '127.0.0.1'] },
  {
    name: 'Unix socket',
    serve: async (n) => {
      const path = socketPath();
      n.serve(n.name, path);
      await once(n, 'listening');
      return [path];
    },
  },
];

/** A server and a client connected to it; the server echoes `{ echo: data }`. */
async function pair(transport: Transport) {
  // The echo wraps Buffers of up to 5 MiB in an object (V8): above the default maxDecodedSize of 4 MiB.
  const server = node('server', { maxDecodedSize: 8 * 1024 * 1024 });
  const client = node('client', { maxDecodedSize: 8 * 1024 * 1024 });
  const args = await transport.serve(server);
  const serverSide = firstValueFrom(server.connections$);
  const socket = await client.connectTo('server', ...args);
  const peer = await serverSide;
  for (const n of [server, client]) {
    n.on('message', (message) => {
      if (message.data === 'fail') message.error(Object.assign(new RangeError('no way'), { code: 'E_NO' }));
      else message.reply({ echo: message.data, by: n.name });
    });
  }
  return { server, client, socket, peer, args };
}

describe.each(transports)('Node over $name', (transport) => {
  it('connects: both sides see the other by its announced name', async () => {
    const { socket, peer, server, client } = await pair(transport);
    expect(socket).toBeInstanceOf(NodeSocket);
    expect(socket.name).toBe('server');
    expect(socket.role).toBe('client');
    expect(peer.name).toBe('client');
    expect(peer.role).toBe('server');
    expect(server.get('client')).toBe(peer);
    expect(client.get('server')).toBe(socket);
  });

  it('carries payloads of every size both ways, all at once, byte for byte', async () => {
    // Sizes around the reader's slab (64 KiB) and direct-body (32 KiB) thresholds, and a few MiB.
    const sizes = [0, 1, 100, 16 * 1024, 32 * 1024 - 1, 32 * 1024, 40_000, 64 * 1024 + 3, 200_000, 1024 * 1024, 5 * 1024 * 1024];
    const payloads = sizes.map((size, i) => {
      const bytes = Buffer.allocUnsafe(size);
      for (let at = 0; at < size; at++) bytes[at] = (at * 31 + i) & 0xff;
      return bytes;
    });
    const { server, client } = await pair(transport);
    for (const [from, to] of [[client, 'server'], [server, 'client']] as const) {
      const replies = await Promise.all(payloads.map((payload) => from.sendTo<{ echo: Buffer }>(to, payload)));
      replies.forEach(({ echo }, i) => expect(Buffer.compare(echo, payloads[i])).toBe(0));
    }
  });

  it('sends in both directions, by name and by socket', async () => {
    const { server, client, socket, peer } = await pair(transport);
    await expect(client.sendTo('server', 'a')).resolves.toEqual({ echo: 'a', by: 'server' });
    await expect(client.sendTo(socket, 'b')).resolves.toEqual({ echo: 'b', by: 'server' });
    await expect(server.sendTo('client', 'c')).resolves.toEqual({ echo: 'c', by: 'client' });
    await expect(server.sendTo(peer, 'd')).resolves.toEqual({ echo: 'd', by: 'client' });
    await expect(socket.send('e')).resolves.toEqual({ echo: 'e', by: 'server' });
  });

  it('delivers the message with from, id, receptive and data', async () => {
    const { server, client } = await pair(transport);
    const received = firstValueFrom(server.messages$);
    await client.sendTo('server', { n: 1 });
    const message = await received;
    expect(message).toBeInstanceOf(NodeMessage);
    expect(message.from).toBe('client');
    expect(message.receptive).toBe(true);
    expect(message.id).toBeGreaterThan(0);
    expect(message.data).toEqual({ n: 1 });
  });

  it('receptive: false resolves once written, and the reply is a no-op returning false', async () => {
    const { server, client } = await pair(transport);
    const received = firstValueFrom(server.messages$);
    await expect(client.sendTo('server', 'fire', { receptive: false })).resolves.toBeUndefined();
    const message = await received;
    expect(message.receptive).toBe(false);
    expect(message.id).toBe(0);
    expect(message.reply('ignored')).toBe(false);
  });

  it('a second reply returns false', async () => {
    const { server, client } = await pair(transport);
    server.removeAllListeners('message');
    const results: boolean[] = [];
    server.on('message', (m) => results.push(m.reply(1), m.reply(2)));
    await expect(client.sendTo('server', 'x')).resolves.toBe(1);
    expect(results).toEqual([true, false]);
  });

  it('rejects with ERR_IPC_TIMEOUT when no reply comes, and drops the late reply', async () => {
    const { server, client } = await pair(transport);
    server.removeAllListeners('message');
    const late: NodeMessage[] = [];
    server.on('message', (m) => late.push(m));
    const started = Date.now();
    await expect(client.sendTo('server', 'slow', { timeout: 50 })).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(late[0].reply('too late')).toBe(true);
    // The late reply must not surface as a message on the client, nor break the next request.
    const clientMessages: unknown[] = [];
    client.on('message', (m) => clientMessages.push(m.data));
    server.removeAllListeners('message');
    server.on('message', (m) => m.reply('fresh'));
    await expect(client.sendTo('server', 'again')).resolves.toBe('fresh');
    expect(clientMessages).toEqual([]);
  });

  it('rejects at once for an unknown target, never queuing', async () => {
    const { client } = await pair(transport);
    await expect(client.sendTo('nobody', 'x')).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED });
    await expect(client.pingTo('nobody')).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED });
  });

  it('turns message.error() into a RemoteError with name, message and code', async () => {
    const { client } = await pair(transport);
    const error = await client.sendTo('server', 'fail').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteError);
    expect(error).toMatchObject({ code: ErrorCode.REMOTE, remoteName: 'RangeError', message: 'no way', remoteCode: 'E_NO' });
  });

  it('sends a Buffer that arrives as a Buffer, and null/""/undefined unchanged', async () => {
    const { server, client } = await pair(transport);
    server.removeAllListeners('message');
    server.on('message', (m) => m.reply(m.data));
    const back = await client.sendTo<Buffer>('server', Buffer.from('bytes'));
    expect(Buffer.isBuffer(back)).toBe(true);
    expect(back.toString()).toBe('bytes');
    await expect(client.sendTo('server', null)).resolves.toBeNull();
    await expect(client.sendTo('server', '')).resolves.toBe('');
    await expect(client.sendTo('server', undefined)).resolves.toBeUndefined();
  });

  it('pings', async () => {
    const { client, server } = await pair(transport);
    const rtt = await client.pingTo('server');
    expect(rtt).toBeGreaterThanOrEqual(0);
    expect(rtt).toBeLessThan(1000);
    await expect(server.pingTo('client')).resolves.toBeGreaterThanOrEqual(0);
  });

  it('10,000 concurrent requests each get their own reply', async () => {
    const { client } = await pair(transport);
    const replies = await Promise.all(Array.from({ length: 10_000 }, (_, i) => client.sendTo<{ echo: number }>('server', i)));
    replies.forEach((reply, i) => expect(reply.echo).toBe(i));
  });

  it('50,000 one-way messages arrive in order, none lost or duplicated', async () => {
    const { server, client } = await pair(transport);
    server.removeAllListeners('message');
    const all = firstValueFrom(server.messages$.pipe(take(50_000), toArray()));
    for (let i = 0; i < 50_000; i++) void client.sendTo('server', i, { receptive: false });
    const messages = await all;
    expect(messages.map((m) => m.data)).toEqual(Array.from({ length: 50_000 }, (_, i) => i));
  });

  it('rejects pending requests when the node closes, then completes the streams', async () => {
    const { server, client } = await pair(transport);
    server.removeAllListeners('message');
    const arrived = firstValueFrom(server.messages$);
    const pending = expect(client.sendTo('server', 'never answered')).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    const streams: Observable<unknown>[] = [client.messages$, client.connections$, client.disconnections$];
    const completed = Promise.all(streams.map((s) => lastValueFrom(s, { defaultValue: 'completed' })));
    await arrived;
    await client.close();
    await pending;
    await expect(completed).resolves.toBeDefined();
    await expect(client.sendTo('server', 'x')).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await expect(client.close()).resolves.toBeUndefined();
  });
});

describe('Node events', () => {
  it('emits connection/connect, socketClose/disconnect with the seed names and arguments', async () => {
    const server = node('hub');
    const client = node('leaf', { maxRetries: 0 });
    const port = await serveTcp(server);
    const seen: string[] = [];
    server.on('connection', (name, socket) => seen.push(`connection ${name} ${socket.name}`));
    server.on('socketClose', (name) => seen.push(`socketClose ${name}`));
    client.on('connect', (name, socket) => seen.push(`connect ${name} ${socket.name}`));
    client.on('disconnect', (name) => seen.push(`disconnect ${name}`));
    const disconnected = firstValueFrom(server.disconnections$);
    await client.connectTo('hub', port, '127.0.0.1');
    await until(() => seen.length === 2);
    await client.disconnectFrom('hub');
    expect((await disconnected).name).toBe('leaf');
    await until(() => seen.length === 4);
    expect(seen.sort()).toEqual(['connect hub hub', 'connection leaf leaf', 'disconnect hub', 'socketClose leaf']);
  });

  it('emits raw chunks', async () => {
    const server = node('raw-server');
    const client = node('raw-client');
    const port = await serveTcp(server);
    const chunks: Buffer[] = [];
    server.on('raw', (_name, _socket, data) => chunks.push(data));
    server.on('message', (m) => m.reply('ok'));
    await client.connectTo('raw-server', port, '127.0.0.1');
    await client.sendTo('raw-server', 'payload');
    expect(Buffer.concat(chunks).includes(Buffer.from('payload'))).toBe(true);
  });

  it('a throwing message listener does not break the connection', async () => {
    const server = node('thrower');
    const client = node('victim');
    const port = await serveTcp(server);
    server.on('message', (m) => {
      if (m.data === 'boom') throw new Error('listener bug');
      m.reply('still here');
    });
    await client.connectTo('thrower', port, '127.0.0.1');
    await client.sendTo('thrower', 'boom', { receptive: false });
    await expect(client.sendTo('thrower', 'ok')).resolves.toBe('still here');
    expect(server.errors.map((e) => e.message)).toContain('listener bug');
  });

  it('a payload that fails to decode rejects that one request; the connection lives on', async () => {
    const server = node('strict');
    const client = node('sloppy', {
      codec: {
        encode: (value) => ({ encoding: 0x80, payload: Buffer.from(String(value)) }),
        decode: (payload) => payload.toString(),
      },
    });
    const port = await serveTcp(server);
    server.on('message', (m) => m.reply('fine'));
    await client.connectTo('strict', port, '127.0.0.1');
    await expect(client.sendTo('strict', 'x')).rejects.toMatchObject({ code: ErrorCode.REMOTE, remoteCode: ErrorCode.DECODE });
    expect(server.errors[0]).toMatchObject({ code: ErrorCode.DECODE });
    await expect(client.pingTo('strict')).resolves.toBeGreaterThanOrEqual(0);
  });

  it('broadcasts to every peer connected to the server, with a filter', async () => {
    const hub = node('hub');
    const port = await serveTcp(hub);
    const names = ['shard-0', 'shard-1', 'worker'];
    for (const name of names) {
      const leaf = node(name);
      leaf.on('message', (m) => m.reply(`${name}:${m.data}`));
      await leaf.connectTo('hub', port, '127.0.0.1');
    }
    await until(() => names.every((n) => hub.get(n)));
    const all = await hub.broadcast<string>('hi');
    expect(all.sort()).toEqual(['shard-0:hi', 'shard-1:hi', 'worker:hi']);
    await expect(hub.broadcast('x', { filter: /^shard-/g })).resolves.toHaveLength(2);
    await expect(hub.broadcast('x', { filter: /^shard-/g })).resolves.toHaveLength(2);
    await expect(hub.broadcast('fire', { receptive: false })).resolves.toEqual([undefined, undefined, undefined]);
  });
});

describe('Node arguments', () => {
  it('throws a TypeError for a missing or empty name', () => {
    expect(() => new NodeClass('')).toThrow(TypeError);
    expect(() => new NodeClass(42 as unknown as string)).toThrow(TypeError);
    expect(() => new NodeClass('x', { maxRetries: -1 })).toThrow(TypeError);
  });

  it('rejects (never throws) on bad connectTo arguments', async () => {
    const n = node('args');
    const bad = n.connectTo('', 1);
    await expect(bad).rejects.toBeInstanceOf(TypeError);
    await expect(n.connectTo('x', { port: -5 })).rejects.toBeDefined();
  });

  it('reports listen errors (EADDRINUSE) as error events', async () => {
    const first = node('first');
    const port = await serveTcp(first);
    const second = node('second');
    second.serve('second', port, '127.0.0.1');
    await until(() => second.errors.length > 0);
    expect(second.errors[0]).toMatchObject({ code: 'EADDRINUSE' });
    expect(second.server).toBeNull();
  });
});
