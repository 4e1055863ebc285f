import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { ErrorCode, IpcError, TlsError, type Node } from '../../src';
import { closeAll, node, until } from '../helpers/net';

afterEach(closeAll);

const dir = join(__dirname, '..', 'fixtures', 'tls');
const pem = (file: string) => readFileSync(join(dir, file));
const ca = pem('ca.pem');
const server = { key: pem('server-key.pem'), cert: pem('server-cert.pem'), ca };
const client = { key: pem('client-key.pem'), cert: pem('client-cert.pem'), ca };

async function serveTls(n: Node): Promise<number> {
  n.serve(n.name, 0, '127.0.0.1');
  await once(n, 'listening');
  return (n.server!.address() as AddressInfo).port;
}

describe('TLS', () => {
  it('serves and connects over TLS with the same API', async () => {
    const hub = node('hub', { tls: server });
    hub.on('message', (m) => m.reply(`secure ${m.data}`));
    const port = await serveTls(hub);
    const leaf = node('leaf', { tls: { ca } });
    const socket = await leaf.connectTo('hub', port, '127.0.0.1');
    expect(socket.connection?.socket.constructor.name).toBe('TLSSocket');
    await expect(leaf.sendTo('hub', 'hello')).resolves.toBe('secure hello');
    await expect(hub.sendTo('leaf', 'x', { timeout: 200 })).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
  });

  it('a plain client facing a TLS server says what may be wrong at each attempt (it retried in silence, then "after 3 attempts")', async () => {
    const hub = node('hub', { tls: server });
    const port = await serveTls(hub);
    const plain = node('plain', { maxRetries: 2, retryTime: 10 });
    const error = (await plain.connectTo('hub', port, '127.0.0.1').catch((e: Error) => e)) as IpcError;
    const told = /"hub" closed the connection before answering the handshake \(a TLS server\? then give this node options\.tls/;
    expect(error).toMatchObject({ code: ErrorCode.HANDSHAKE, message: expect.stringMatching(told) });
    // Each failed attempt before the last one is an 'error' event too: a client that retries for ever is not silent.
    expect(plain.errors.map((e) => (e as IpcError).code)).toEqual([ErrorCode.HANDSHAKE, ErrorCode.HANDSHAKE]);
  });

  it('carries large and small payloads both ways (the client reads TLS through its FrameReader)', async () => {
    const hub = node('hub', { tls: server });
    const leaf = node('leaf', { tls: { ca } });
    for (const n of [hub, leaf]) n.on('message', (m) => m.reply(m.data));
    const port = await serveTls(hub);
    await leaf.connectTo('hub', port, '127.0.0.1');
    const payloads = [0, 10, 40_000, 300_000, 3 * 1024 * 1024].map((size) => Buffer.alloc(size, size & 0xff));
    for (const [from, to] of [[leaf, 'hub'], [hub, 'leaf']] as const) {
      const replies = await Promise.all(payloads.map((p) => from.sendTo<Buffer>(to, p)));
      replies.forEach((reply, i) => expect(Buffer.compare(reply, payloads[i])).toBe(0));
    }
  });

  it('refuses a server whose certificate it does not trust, finally', async () => {
    const hub = node('hub', { tls: server });
    const port = await serveTls(hub);
    const leaf = node('leaf', { tls: { ca: pem('rogue-ca.pem') }, maxRetries: Infinity, retryTime: 10 });
    const error = await leaf.connectTo('hub', port, '127.0.0.1').catch((e: Error) => e);
    expect(error).toBeInstanceOf(TlsError);
    expect((error as TlsError).code).toBe(ErrorCode.TLS);
    expect(String(((error as TlsError).cause as NodeJS.ErrnoException).code)).toMatch(/CERT|SIGNATURE|UNABLE/);
    expect(leaf.get('hub')).toBeUndefined();
  });

  it('a server certificate no trusted CA vouches for: ERR_IPC_TLS (cause: the node:tls error), final, name freed', async () => {
    const hub = node('hub', { tls: server });
    const port = await serveTls(hub);
    const leaf = node('leaf', { tls: { rejectUnauthorized: true }, maxRetries: Infinity, retryTime: 10 });
    const error = (await leaf.connectTo('hub', port, '127.0.0.1').catch((e: Error) => e)) as TlsError;
    expect(error).toBeInstanceOf(TlsError);
    expect(error).toBeInstanceOf(IpcError);
    expect(error.code).toBe('ERR_IPC_TLS');
    expect((error.cause as NodeJS.ErrnoException).code).toMatch(/^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)$/);
    expect(error.message).toMatch(/TLS refused the connection to "hub"/);
    expect(leaf.get('hub')).toBeUndefined();
  });

  it('bad connect arguments reject with a TypeError naming the argument (no socket, no retry)', async () => {
    const leaf = node('leaf', { tls: { ca }, maxRetries: Infinity });
    await expect(leaf.connectTo('hub', 70_000)).rejects.toThrow(TypeError);
    await expect(leaf.connectTo('hub', { path: '' })).rejects.toThrow(/options\.path must be a non-empty Unix socket path/);
    await expect(leaf.connectTo('hub')).rejects.toThrow(/connectTo needs a port/);
    expect(leaf.get('hub')).toBeUndefined();
  });

  describe('mutual TLS (requestCert)', () => {
    const mtls = { ...server, requestCert: true, rejectUnauthorized: true };

    it('admits a client certificate signed by the CA', async () => {
      const hub = node('hub', { tls: mtls });
      hub.on('message', (m) => m.reply('mutual'));
      const port = await serveTls(hub);
      const leaf = node('leaf', { tls: client });
      await leaf.connectTo('hub', port, '127.0.0.1');
      await expect(leaf.sendTo('hub', 'x')).resolves.toBe('mutual');
    });

    it.each([
      ['no client certificate', { ca }],
      ['a certificate from another CA', { ca, key: pem('rogue-key.pem'), cert: pem('rogue-cert.pem') }],
    ])('refuses %s: no connection, the server goes on', async (_, tlsOptions) => {
      const hub = node('hub', { tls: mtls });
      const connections: string[] = [];
      hub.on('connection', (name) => connections.push(name));
      const port = await serveTls(hub);
      const leaf = node('intruder', { tls: tlsOptions, maxRetries: 2, retryTime: 10 });
      await expect(leaf.connectTo('hub', port, '127.0.0.1')).rejects.toBeDefined();
      await until(() => hub.errors.length > 0);
      expect(hub.errors[0]).toBeInstanceOf(TlsError);
      expect(hub.errors[0]).toMatchObject({ code: ErrorCode.TLS });
      expect(typeof ((hub.errors[0] as TlsError).cause as Error).message).toBe('string'); // node:tls's error (another realm's Error)
      expect(connections).toEqual([]);
      const good = node('leaf', { tls: client });
      await good.connectTo('hub', port, '127.0.0.1');
      await until(() => connections.length > 0);
      expect(connections).toEqual(['leaf']);
    });
  });
});
