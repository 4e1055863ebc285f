import { once } from 'node:events';
import { statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { closeAll, node, socketPath, staleSocket, until } from '../helpers/net';

afterEach(closeAll);

describe('Unix socket files', () => {
  it('serves on a stale socket file left by a crashed server', async () => {
    const path = socketPath();
    await staleSocket(path);
    expect(statSync(path).isSocket()).toBe(true);
    const server = node('hub');
    server.on('message', (m) => m.reply('fresh'));
    server.serve('hub', path);
    await once(server, 'listening');
    const client = node('client');
    await client.connectTo('hub', path);
    await expect(client.sendTo('hub', 'x')).resolves.toBe('fresh');
    expect(server.errors).toEqual([]);
  });

  it('two servers reclaiming one stale socket file at once: one serves, the other fails with EADDRINUSE (none is orphaned)', async () => {
    const path = socketPath();
    await staleSocket(path);
    // Both find the stale file in the same tick, probe it, and both probes are refused.
    const servers = ['a', 'b'].map((tag) => {
      const server = node('hub');
      server.on('message', (m) => m.reply(tag));
      server.serve('hub', path);
      return server;
    });
    await until(() => servers.every((server) => server.server?.listening || server.errors.length > 0));
    const listening = servers.filter((server) => server.server?.listening);
    expect(listening.length).toBe(1);
    const loser = servers.find((server) => !server.server?.listening)!;
    expect(loser.errors).toEqual([expect.objectContaining({ code: 'EADDRINUSE' })]);
    // The path reaches the one that says it listens.
    const client = node('client', { maxRetries: 0 });
    await client.connectTo('hub', path);
    await expect(client.sendTo('hub', 'who')).resolves.toBe(listening[0] === servers[0] ? 'a' : 'b');
  });

  it('fails with EADDRINUSE (an error event) when someone listens on the path', async () => {
    const path = socketPath();
    const other = createServer().listen(path);
    await once(other, 'listening');
    const server = node('hub');
    server.serve('hub', path);
    await until(() => server.errors.length > 0);
    expect(server.errors[0]).toMatchObject({ code: 'EADDRINUSE' });
    expect(server.server).toBeNull();
    await new Promise((resolve) => other.close(resolve));
  });

  it('does not replace a path that is not a socket', async () => {
    const path = socketPath();
    writeFileSync(path, 'precious');
    const server = node('hub');
    server.serve('hub', path);
    await until(() => server.errors.length > 0);
    expect(server.errors[0]).toMatchObject({ code: 'EADDRINUSE' });
    expect(statSync(path).isFile()).toBe(true);
  });

  it('creates the socket file owner-only with socketMode: 0o600', async () => {
    const path = socketPath();
    const server = node('hub', { socketMode: 0o600 });
    server.serve('hub', path);
    await once(server, 'listening');
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });
});
