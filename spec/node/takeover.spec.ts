import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { ErrorCode } from '../../src';
import { closeAll, node, serveTcp, until } from '../helpers/net';

/**
 * A TCP proxy whose current connections can be frozen: from then on nothing crosses them, not even a close — as
 * a network that silently dropped the path. New connections are forwarded as usual.
 */
async function freezableProxy(port: number): Promise<{ port: number; freeze(): void; close(): Promise<void> }> {
  const pairs: Array<{ client: Socket; upstream: Socket; frozen: boolean }> = [];
  const server: Server = createServer((client) => {
    const pair = { client, upstream: createConnection(port, '127.0.0.1'), frozen: false };
    pairs.push(pair);
    const forward = (from: Socket, to: Socket) => {
      from.on('data', (chunk) => {
        if (!pair.frozen) to.write(chunk);
      });
      from.on('close', () => {
        if (!pair.frozen) to.destroy();
      });
      from.on('error', () => undefined);
    };
    forward(client, pair.upstream);
    forward(pair.upstream, client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    freeze: () => pairs.forEach((pair) => (pair.frozen = true)),
    close: async () => {
      pairs.forEach(({ client, upstream }) => (client.destroy(), upstream.destroy()));
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('a node that comes back takes its stale connection over', () => {
  afterEach(closeAll);

  it('over TCP: accepted at once (no ERR_IPC_NAME_IN_USE) while the server still holds the silent old connection', async () => {
    const server = node('server', { heartbeatInterval: 60_000 });
    server.on('message', (m) => m.reply(`re:${String(m.data)}`));
    const port = await serveTcp(server);
    const proxy = await freezableProxy(port);
    const client = node('client', { heartbeatInterval: 100, maxRetries: Infinity, retryTime: 20, maxRetryTime: 50 });
    const connects: number[] = [];
    client.on('connect', () => connects.push(performance.now()));
    await client.connectTo('server', proxy.port, '127.0.0.1');
    const first = server.get('client')!;
    expect(first.instance).toBe(client.instance);
    const pending = server.sendTo('client', 'never answered', { timeout: 60_000 });
    client.on('message', () => undefined);
    proxy.freeze();
    // The client's heartbeat gives the silent path up and reconnects (through the proxy, a fresh path).
    await until(() => connects.length === 2, 5000, 'the client to reconnect');
    expect(client.errors.filter((e) => (e as { code?: string }).code === ErrorCode.NAME_IN_USE)).toEqual([]);
    const second = server.get('client')!;
    expect(second).not.toBe(first);
    expect(first.connected).toBe(false);
    // The stale connection's pending request failed at once, not after 60 s.
    await expect(pending).rejects.toMatchObject({ code: ErrorCode.PEER_DISCONNECTED });
    expect(await client.sendTo('server', 'hi')).toBe('re:hi');
    await proxy.close();
  });

  it('a different node of the same name is still refused over TCP (twins)', async () => {
    const server = node('server');
    const port = await serveTcp(server);
    await node('twin').connectTo('server', port, '127.0.0.1');
    await expect(node('twin').connectTo('server', port, '127.0.0.1')).rejects.toMatchObject({ code: ErrorCode.NAME_IN_USE });
  });
});
