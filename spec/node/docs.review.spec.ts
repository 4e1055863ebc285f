/**
 * Review probes of the documentation: README.md, PROTOCOL.md, SECURITY.md, the TSDoc of the public API and
 * `examples/`, used as written — and with the mistakes careless users make (a host without a port, a node reused
 * after `close()`, a second `serve` after a failed one…). Each probe that failed when written is marked
 * `(was broken)` in its title.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createLinkPair, ErrorCode } from '../../src';
import { killChildren, ROOT, spawnNode } from '../helpers/child';
import { natsTransport } from '../../src/nats';
import { describeNats, startNatsServer, type NatsServer } from '../helpers/natsServer';
import { closeAll, node, serveTcp, until } from '../helpers/net';

const pem = (file: string) => readFileSync(join(ROOT, 'spec', 'fixtures', 'tls', file));

afterEach(async () => {
  await closeAll();
  await killChildren();
});

/** Runs `script` (CommonJS, `require('./src')` is the library) in a child process; resolves with its exit and output. */
async function runScript(script: string): Promise<{ code: number | null; output: string }> {
  const child = spawnNode(['-r', 'ts-node/register/transpile-only', '-e', script]);
  const { code } = await child.exited;
  return { code, output: child.output() };
}

describe('README', () => {
  it.each(['hello.ts', 'world.ts', 'cli.ts'])('(was broken) quotes examples/%s as it is (its copies lacked PORT, and the .catch of hello.ts)', (file) => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const at = readme.indexOf(`\`examples/${file}\``);
    expect(at).toBeGreaterThan(0);
    const [, block] = /```ts\n([\s\S]*?)```/.exec(readme.slice(at))!;
    expect(block).toBe(readFileSync(join(ROOT, 'examples', file), 'utf8'));
  });
});

describe('a host where a port or path belongs', () => {
  it.each(['localhost', '127.0.0.1', '::1', 'fe80::1%eth0', '::ffff:10.0.0.1', '10.1.2.3', 'localhost:8001', '127.0.0.1:8001', '[::1]:8001', 'example.com:80'])(
    '(was broken) connectTo(name, %j) rejects with a TypeError saying a port comes first (it retried a Unix socket of that name for ever)',
    async (host) => {
      const client = node('client', { maxRetries: Infinity });
      const error = await client.connectTo('server', host).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(/is a host.*port/);
      expect(client.get('server')).toBeUndefined();
    },
  );

  it.each(['localhost', '127.0.0.1', 'localhost:8001'])('(was broken) serve(name, %j) throws a TypeError (it listened on a Unix socket file of that name)', (host) => {
    const server = node('server');
    expect(() => server.serve('server', host)).toThrow(/is a host.*port/);
    expect(server.server).toBeNull();
  });

  it('a relative Unix socket path is still a path', async () => {
    const client = node('client', { maxRetries: 0 });
    await expect(client.connectTo('server', 'no-such-dir/ipc.sock')).rejects.toMatchObject({ code: ErrorCode.CONNECT });
  });
});

describe('serve', () => {
  it('(was broken) a serve whose listen failed (EADDRINUSE) leaves the node free to serve again', async () => {
    const busy = node('busy');
    const port = await serveTcp(busy);
    const server = node('server');
    server.serve('server', port, '127.0.0.1');
    await once(server, 'error');
    expect(server.server).toBeNull();
    expect(server.serverName).toBeNull();
    server.serve('server', 0, '127.0.0.1');
    const [address] = (await once(server, 'listening')) as [AddressInfo];
    expect(address.port).toBeGreaterThan(0);
    expect(server.serverName).toBe('server');
    expect(() => server.serve('server', 0)).toThrow(expect.objectContaining({ code: ErrorCode.ALREADY_CONNECTED }));
  });
});

describe("'message' listeners", () => {
  it('(was broken) an async listener that rejects, with no error listener: the requester gets a RemoteError, the process lives (as for a sync throw)', async () => {
    const { code, output } = await runScript(`
      const { Node } = require('./src');
      (async () => {
        const server = new Node('server', { heartbeatInterval: 0 });
        server.on('message', async () => { throw new Error('async handler failed'); });
        server.serve('server', 0, '127.0.0.1');
        await new Promise((resolve) => server.once('listening', resolve));
        const client = new Node('client', { heartbeatInterval: 0 });
        await client.connectTo('server', server.server.address().port, '127.0.0.1');
        const error = await client.sendTo('server', 'x').catch((e) => e);
        console.log('requester got', error.code, error.message);
        await client.sendTo('server', 'one-way', { receptive: false });
        await new Promise((resolve) => setTimeout(resolve, 50));
        await Promise.all([client.close(), server.close()]);
        console.log('closed');
      })();
    `);
    expect(output).toContain('requester got ERR_IPC_REMOTE async handler failed');
    expect(output).toContain('closed');
    expect(code).toBe(0);
  });
});

describe('a node reused after close()', () => {
  it('(was broken) broadcast and broadcastSettled reject with ERR_IPC_CLOSED, as sendTo does (they resolved with [])', async () => {
    const server = node('server');
    await serveTcp(server);
    await server.close();
    await expect(server.broadcast('x')).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await expect(server.broadcastSettled('x')).rejects.toMatchObject({ code: ErrorCode.CLOSED });
  });

  it('(was broken) acceptVia throws ERR_IPC_CLOSED, as serve does (it returned and destroyed the socket silently)', async () => {
    const server = node('server');
    await server.close();
    const [a] = createLinkPair();
    expect(() => server.acceptVia(a)).toThrow(expect.objectContaining({ code: ErrorCode.CLOSED }));
    expect(a.destroyed).toBe(false);
    a.destroy();
  });

  it('every other method fails with ERR_IPC_CLOSED, close() again resolves', async () => {
    const client = node('client');
    await client.close();
    expect(() => client.serve('client', 0)).toThrow(expect.objectContaining({ code: ErrorCode.CLOSED }));
    await expect(client.connectTo('server', 1)).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await expect(client.sendTo('server', 1)).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await expect(client.pingTo('server')).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await expect(client.iterate('server', 1).next()).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await expect(client.close()).resolves.toBeUndefined();
  });
});

describe('ERR_IPC_NOT_CONNECTED says why', () => {
  it("(was broken) sendTo the node's own name or serve's label says that it is no peer", async () => {
    const hello = node('hello');
    await serveTcp(hello, 'greeter');
    await expect(hello.sendTo('hello', 'x')).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED, message: expect.stringMatching(/this node's own name/) });
    await expect(hello.sendTo('greeter', 'x')).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED, message: expect.stringMatching(/label given to serve/) });
  });

  it('(was broken) sendTo before connectTo resolved (a forgotten await) says the connection is not up yet', async () => {
    const server = node('server');
    const port = await serveTcp(server);
    const client = node('client');
    const connected = client.connectTo('server', port, '127.0.0.1');
    connected.catch(() => undefined); // awaited below
    await expect(client.sendTo('server', 'x')).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED, message: expect.stringMatching(/await connectTo/) });
    await connected;
    await expect(client.sendTo('server', 'x', { receptive: false })).resolves.toBeUndefined();
  });
});

describeNats('over NATS', () => {
  let nats: NatsServer;
  beforeAll(async () => (nats = await startNatsServer()));

  it("(was broken) an instance that closes is a 'disconnect' of its clients, not an 'error' (it reported ERR_IPC_PEER_DISCONNECTED)", async () => {
    const instances = [0, 1].map(() => node('worker', { transport: natsTransport({ servers: nats.url }) }));
    for (const worker of instances) {
      worker.on('message', (m) => m.reply(worker.instance));
      worker.serve('worker');
      await once(worker, 'listening');
    }
    const api = node('api', { transport: natsTransport({ servers: nats.url, discoveryInterval: 100 }) });
    let links = 0;
    api.on('connect', () => links++);
    api.on('disconnect', () => links--);
    await api.connectTo('worker');
    await until(() => links === 2, 5000, 'a link to each instance');
    await instances[0].close();
    await until(() => links === 1, 5000, 'the closed instance dropped');
    expect(api.errors).toEqual([]);
    await expect(api.sendTo('worker', 'who')).resolves.toBe(instances[1].instance);
  });
});

describe('TLS set up wrong', () => {
  it('(was broken) a TLS client facing a plain server is refused with ERR_IPC_TLS, final (it retried for ever: EPROTO)', async () => {
    const plain = node('plain');
    const port = await serveTcp(plain);
    const client = node('client', { tls: { ca: pem('ca.pem') }, maxRetries: Infinity });
    const error = await client.connectTo('plain', port, '127.0.0.1').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCode.TLS, cause: expect.objectContaining({ code: 'EPROTO' }) });
  });

  it('(was broken) serve with tls options that hold no certificate throws a TypeError (every client was refused)', () => {
    const server = node('server', { tls: { ca: pem('ca.pem') } });
    expect(() => server.serve('server', 0, '127.0.0.1')).toThrow(/options\.tls.*key and cert/);
    expect(server.server).toBeNull();
  });

  it('a client-only node may have tls options without a certificate', async () => {
    const server = node('server', { tls: { key: pem('server-key.pem'), cert: pem('server-cert.pem') } });
    server.on('message', (m) => m.reply('ok'));
    server.serve('server', 0, '127.0.0.1');
    const [address] = (await once(server, 'listening')) as [AddressInfo];
    const client = node('client', { tls: { ca: pem('ca.pem'), servername: 'localhost' } });
    await client.connectTo('server', address.port, '127.0.0.1');
    await expect(client.sendTo('server', 'x')).resolves.toBe('ok');
  });
});
