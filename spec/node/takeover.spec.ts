import { ErrorCode } from '../../src';
import { closeAll, freezableProxy, node, serveTcp, until } from '../helpers/net';

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
