import { firstValueFrom, take, toArray } from 'rxjs';
import { ErrorCode } from '../../src';
import { exitWithin, cleanUp, spawnNode, spawnPeer } from '../helpers/child';
import { freePort, node, serveTcp, socketPath, until } from '../helpers/net';

afterEach(cleanUp);

describe('Node with real processes', () => {
  it('rejects every pending request at once when the peer is killed (SIGKILL)', async () => {
    const hub = node('hub');
    const port = await serveTcp(hub);
    const connected = firstValueFrom(hub.connections$);
    const child = spawnPeer('responder', port, 'victim');
    await child.waitFor('ready');
    await connected;
    await expect(hub.sendTo('victim', 'hi')).resolves.toBe('victim:hi');
    const pending = Array.from({ length: 100 }, () => hub.sendTo('victim', 'hang', { timeout: 60_000 }).catch((e: unknown) => e));
    await until(() => true);
    const killedAt = Date.now();
    child.process.kill('SIGKILL');
    const errors = await Promise.all(pending);
    expect(Date.now() - killedAt).toBeLessThan(2000);
    for (const error of errors) expect(error).toMatchObject({ code: ErrorCode.PEER_DISCONNECTED });
    await expect(hub.sendTo('victim', 'x')).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED });
  });

  it('reconnects by itself when the server process is restarted', async () => {
    const port = await freePort();
    let server = spawnPeer('server', port);
    await server.waitFor('listening');
    const client = node('client', { maxRetries: Infinity, retryTime: 50, maxRetryTime: 200 });
    const events: string[] = [];
    client.on('connect', () => events.push('connect'));
    client.on('disconnect', () => events.push('disconnect'));
    const twoConnections = firstValueFrom(client.connections$.pipe(take(2), toArray()));
    await client.connectTo('hub', port, '127.0.0.1');
    await expect(client.sendTo('hub', 1)).resolves.toBe('echo:1');

    server.process.kill('SIGKILL');
    await server.exited;
    await until(() => events.includes('disconnect'));
    await expect(client.sendTo('hub', 2)).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED });
    server = spawnPeer('server', port);
    await server.waitFor('listening');
    const [first, second] = await twoConnections;
    expect(second).toBe(first);
    expect(events).toEqual(['connect', 'disconnect', 'connect']);
    await expect(client.sendTo('hub', 3)).resolves.toBe('echo:3');
  });

  it('a child that connects, requests and closes exits by itself', async () => {
    const hub = node('hub');
    hub.on('message', (m) => m.reply('answer'));
    const port = await serveTcp(hub);
    const child = spawnPeer('client-close', port, 'short-lived');
    const result = await exitWithin(child, 10_000);
    expect(child.output()).toContain('reply answer');
    expect(child.output()).toContain('closed');
    expect(result).toEqual({ code: 0, signal: null });
  });

  it.each([
    ['TCP', '0'],
    ['a Unix socket', 'unix'],
  ])('a process with a server and a client over %s exits by itself after close()', async (_, where) => {
    const address = where === 'unix' ? socketPath() : where;
    const child = spawnPeer('both-close', address, 'short-lived');
    const result = await exitWithin(child, 10_000);
    expect(child.output()).toContain('reply ok');
    expect(child.output()).toContain(`pending ${ErrorCode.CLOSED}`);
    expect(child.output()).toContain('closed');
    expect(result).toEqual({ code: 0, signal: null });
  });

  it("runs the seed README's hello.js and world.js as two processes", async () => {
    const hello = spawnNode(['examples/js/hello.js']);
    await hello.waitFor('Listening');
    const world = spawnNode(['examples/js/world.js']);
    await hello.waitFor('Hello world!');
    await world.waitFor('Connected!');
    expect(hello.output()).toContain('Connected to world');
    expect(world.output()).toMatch(/Received data from hello: NodeMessage \{[^}]*data: 'Hello'/);
    world.process.kill('SIGKILL');
    await hello.waitFor('Closed Socket: world');
  });

  it('npm start runs the demo and exits 0', async () => {
    const demo = spawnNode(['scripts/demo.js']);
    const { code } = await demo.exited;
    expect(demo.output()).toContain('Hello world!');
    expect(code).toBe(0);
  });
});
