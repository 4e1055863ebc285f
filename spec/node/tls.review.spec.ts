/**
 * TLS review: TLS settings, addresses and connect/serve arguments as careless and hostile users give them. Each
 * case ends in the right result or a clear error (a TypeError naming the option, or an IpcError with a stable
 * code), never a hang, a raw OpenSSL error or a close() held up by a stranger.
 */
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { ErrorCode, HandshakeError, Node, TlsError } from '../../src';
import { closeAll, node, serveTcp, socketPath, until } from '../helpers/net';

afterEach(closeAll);

const dir = join(__dirname, '..', 'fixtures', 'tls');
const pem = (file: string) => readFileSync(join(dir, file));
const ca = pem('ca.pem');
const server = { key: pem('server-key.pem'), cert: pem('server-cert.pem'), ca };

async function serveTls(n: Node): Promise<number> {
  n.serve(n.name, 0, '127.0.0.1');
  await once(n, 'listening');
  return (n.server!.address() as AddressInfo).port;
}

describe('close() while a client is in the middle of its TLS handshake', () => {
  const strangers: Socket[] = [];
  afterEach(() => strangers.splice(0).forEach((s) => s.destroy()));

  it.each([
    ['sends a partial ClientHello and stops', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])],
    ['connects and never speaks', Buffer.alloc(0)],
  ])('a client that %s does not hold close() up until the TLS handshake timeout (it did: 60 s here)', async (_, bytes) => {
    const hub = node('hub', { tls: server, handshakeTimeout: 60_000 });
    const port = await serveTls(hub);
    const stranger = netConnect(port, '127.0.0.1');
    strangers.push(stranger);
    stranger.on('error', () => {});
    await once(stranger, 'connect');
    stranger.write(bytes);
    // The server has accepted it (TCP) before close() starts.
    await new Promise<void>((resolve) => {
      const check = () => hub.server!.getConnections((_e, n) => (n > 0 ? resolve() : setTimeout(check, 5)));
      check();
    });
    const closed = new Promise((resolve) => stranger.once('close', resolve)); // (a reset, when its bytes were unread)
    const started = performance.now();
    await hub.close();
    expect(performance.now() - started).toBeLessThan(5_000);
    await closed; // and the stranger's socket was ended, not left open
    expect(hub.errors).toEqual([]);
  });
  it('a client past its TLS handshake is still closed gracefully (told not to come back), not destroyed', async () => {
    const hub = node('hub', { tls: server });
    const port = await serveTls(hub);
    const leaf = node('leaf', { tls: { ca }, maxRetries: Infinity, retryTime: 10 });
    await leaf.connectTo('hub', port, '127.0.0.1');
    await hub.close({ reconnect: false });
    // A CLOSE frame reached it: it gave up for good (a socket destroyed under it would be redialled for ever).
    await until(() => leaf.get('hub') === undefined);
  });
});

describe('TLS settings that cannot work', () => {
  it.each([
    ['a key that is not PEM', { key: 'not a key', cert: pem('server-cert.pem') }],
    ['a key that does not match the certificate', { key: pem('client-key.pem'), cert: pem('server-cert.pem') }],
  ])('%s: a TypeError naming options.tls (cause: the node:tls error), for connectTo as for serve', async (_, tls) => {
    const make = () => new Node('n', { tls, maxRetries: 5 });
    expect(make).toThrow(TypeError);
    expect(make).toThrow(/options\.tls/);
    let error: Error | undefined;
    try {
      make();
    } catch (e) {
      error = e as Error;
    }
    expect((error!.cause as NodeJS.ErrnoException).code).toMatch(/^ERR_OSSL_/);
  });

  it.each([
    ['a cert without its key', { cert: pem('server-cert.pem') }],
    ['a key without its cert', { key: pem('server-key.pem') }],
  ])('serve with %s throws a TypeError (every client was refused: "no suitable signature algorithm")', (_, tls) => {
    const hub = node('hub', { tls });
    expect(() => hub.serve('hub', 0, '127.0.0.1')).toThrow(/options\.tls needs the key and cert/);
    expect(hub.server).toBeNull();
  });
});

describe('tls.handshakeTimeout', () => {
  it.each([0, -1, NaN, '100'])('%p is a TypeError (node:tls took 0, negative or NaN for no TLS handshake timeout at all)', (handshakeTimeout) => {
    expect(() => new Node('n', { tls: { ...server, handshakeTimeout } as never })).toThrow(/options\.tls\.handshakeTimeout/);
  });

  it('a positive number or Infinity is taken', () => {
    for (const handshakeTimeout of [1, 5000, Infinity]) expect(() => new Node('n', { tls: { ...server, handshakeTimeout } })).not.toThrow();
  });
});

describe('TLS on one side only', () => {
  it('a TLS client facing a plain server: ERR_IPC_TLS, final, saying the server does not speak TLS (was only "wrong version number")', async () => {
    const hub = node('hub');
    const port = await serveTcp(hub);
    const leaf = node('leaf', { tls: { ca }, maxRetries: Infinity, retryTime: 10 });
    const error = (await leaf.connectTo('hub', port, '127.0.0.1').catch((e: Error) => e)) as TlsError;
    expect(error).toBeInstanceOf(TlsError);
    expect(error.message).toMatch(/does not speak TLS.*options\.tls/);
    expect((error.cause as NodeJS.ErrnoException).code).toBe('EPROTO');
    expect(leaf.get('hub')).toBeUndefined();
    // The plain server says what it received: a TLS ClientHello, not some unknown bytes.
    await until(() => hub.errors.length > 0);
    expect(hub.errors[0]).toMatchObject({ code: ErrorCode.PROTOCOL, message: expect.stringMatching(/TLS ClientHello.*options\.tls/) });
  });
});

describe('serve on a path that is no socket file', () => {
  it.each([
    ['a directory', (dir: string) => dir, /is a directory, not a Unix socket/],
    ['a regular file', (dir: string) => (writeFileSync(join(dir, 'data.txt'), 'keep me'), join(dir, 'data.txt')), /is a file, not a Unix socket/],
  ])('%s: EADDRINUSE saying what is there, left alone (was only "address already in use": a server to look for)', async (_, make, message) => {
    const path = make(dirname(socketPath()));
    const hub = node('hub');
    hub.serve('hub', path);
    await until(() => hub.errors.length > 0);
    expect(hub.errors[0]).toMatchObject({ code: 'EADDRINUSE', message: expect.stringMatching(message) });
    expect((hub.errors[0].cause as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
    expect(hub.server).toBeNull();
    expect(existsSync(path)).toBe(true);
  });
});

describe('a client silent in its TLS handshake', () => {
  it('is ERR_IPC_HANDSHAKE "no TLS handshake within", as a silent client of a plain server (was ERR_IPC_TLS, a certificate refusal)', async () => {
    const hub = node('hub', { tls: server, handshakeTimeout: 200 });
    const port = await serveTls(hub);
    const stranger = netConnect(port, '127.0.0.1');
    stranger.on('error', () => {});
    const closed = new Promise((resolve) => stranger.once('close', resolve));
    await until(() => hub.errors.length > 0);
    await closed;
    expect(hub.errors).toHaveLength(1);
    expect(hub.errors[0]).toBeInstanceOf(HandshakeError);
    expect(hub.errors[0]).toMatchObject({ code: ErrorCode.HANDSHAKE, message: expect.stringMatching(/did not finish its TLS handshake within 200 ms/) });
    expect((hub.errors[0].cause as NodeJS.ErrnoException).code).toBe('ERR_TLS_HANDSHAKE_TIMEOUT');
  });
});
