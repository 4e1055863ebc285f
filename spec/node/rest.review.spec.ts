/**
 * White-box review of the transport layer (transport.ts, FrameWriter, Link, duration, backoff, tlsError, validate,
 * FrameReader): one test per bug found, each failing before its fix.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type AddressInfo } from 'node:net';
import { ErrorCode, TlsError, type Node } from '../../src';
import { backoffDelay } from '../../src/node/backoff';
import { MAX_TIMER_DELAY, setLongInterval, setLongTimeout } from '../../src/internal';
import { Duplex } from 'node:stream';
import { createServer } from 'node:net';
import { closeAll, delay, node, serveTcp, socketPath, until } from '../helpers/net';

afterEach(closeAll);

const tlsDir = join(__dirname, '..', 'fixtures', 'tls');
const pem = (file: string) => readFileSync(join(tlsDir, file));

async function serveTls(n: Node): Promise<number> {
  n.serve(n.name, 0, '127.0.0.1');
  await once(n, 'listening');
  return (n.server!.address() as AddressInfo).port;
}

describe('rest review', () => {
  it('a server certificate not made for a server (INVALID_PURPOSE: clientAuth only) is a TLS refusal: ERR_IPC_TLS, final', async () => {
    // rogue-cert.pem's extended key usage is clientAuth only: node:tls reports INVALID_PURPOSE, which was not
    // recognised as a TLS failure (retried as a lost connection, then ERR_IPC_HANDSHAKE/…, never ERR_IPC_TLS).
    const hub = node('hub', { tls: { key: pem('rogue-key.pem'), cert: pem('rogue-cert.pem') } });
    const port = await serveTls(hub);
    const leaf = node('leaf', { tls: { ca: pem('rogue-ca.pem') }, maxRetries: 2, retryTime: 10 });
    const error = (await leaf.connectTo('hub', port, '127.0.0.1').catch((e: Error) => e)) as TlsError;
    expect(error).toBeInstanceOf(TlsError);
    expect(error.code).toBe(ErrorCode.TLS);
    expect((error.cause as NodeJS.ErrnoException).code).toBe('INVALID_PURPOSE');
  });

  it.each([1e25, 1e30, 1e100])('a timer of %d ms ticks in chunks of about 2^31-1 ms, not every millisecond', (ms) => {
    // ms / ceil(ms / (2^31-1)) rounded up to 2^31 for these: Node replaced the chunk by 1 ms (TimeoutOverflowWarning).
    // A timeout that long is never (above MAX_COUNTED_DELAY, 2^53-1 ms: no timer at all, polish review); an
    // interval still ticks in chunks.
    const timeout = setLongTimeout(() => undefined, ms);
    expect(timeout).toBeNull();
    const interval = setLongInterval(() => undefined, ms);
    try {
      for (const timer of [interval]) {
        const chunk = (timer as unknown as { _idleTimeout: number })._idleTimeout;
        expect(chunk).toBeLessThanOrEqual(MAX_TIMER_DELAY);
        expect(chunk).toBeGreaterThan(MAX_TIMER_DELAY - 2);
      }
    } finally {
      clearInterval(interval);
    }
  });

  it('the reconnection backoff stays finite for a huge finite retryTime with no cap (Infinity meant "never retry")', () => {
    for (const attempt of [1, 2, 10, 31, 1000]) {
      const delay = backoffDelay(attempt, Number.MAX_VALUE, Infinity, () => 1);
      expect(Number.isFinite(delay)).toBe(true);
      expect(delay).toBeGreaterThan(0);
    }
    expect(backoffDelay(3, 1e300, Infinity, () => 0.5)).toBeLessThan(Infinity);
  });

  it('a TLS server stays silent about a client that hangs up before TLS (a TCP health check), as a plain server does', async () => {
    // Every tlsClientError was reported as ERR_IPC_TLS ("A client failed the TLS handshake: socket hang up"): a load
    // balancer probing the port every few seconds filled 'error' with TLS refusals that were none.
    const hub = node('hub', { tls: { key: pem('server-key.pem'), cert: pem('server-cert.pem') } });
    const port = await serveTls(hub);
    for (const hangUp of [(s: ReturnType<typeof connect>) => s.end(), (s: ReturnType<typeof connect>) => s.resetAndDestroy()]) {
      const probe = connect(port, '127.0.0.1');
      probe.on('error', () => undefined);
      await once(probe, 'connect');
      hangUp(probe);
      await once(probe, 'close');
    }
    // A client that speaks something else than TLS is still a TLS refusal (and shows that errors get through).
    const plain = connect(port, '127.0.0.1');
    plain.on('error', () => undefined);
    await once(plain, 'connect');
    plain.end('GET / HTTP/1.0\r\n\r\n');
    const causeOf = (e: Error) => String((e.cause as NodeJS.ErrnoException | undefined)?.code);
    await until(() => hub.errors.some((e) => /SSL/.test(causeOf(e))));
    await delay(50); // stragglers
    expect(hub.errors.map((e) => `${(e as TlsError).code} ${causeOf(e)}`)).toEqual([`${ErrorCode.TLS} ERR_SSL_HTTP_REQUEST`]);
  });

  it('tls.handshakeTimeout: Infinity is no timeout, not a RangeError thrown out of the server at the first client', async () => {
    // Handed to node:tls as it was: socket.setTimeout(Infinity) threw (uncaught) at the first client. README:
    // tls.handshakeTimeout overrides the node's handshakeTimeout, whose Infinity means "none".
    const handshakeTimeout = Infinity;
    const ca = pem('ca.pem');
    const hub = node('hub', { tls: { key: pem('server-key.pem'), cert: pem('server-cert.pem'), handshakeTimeout } });
    const port = await serveTls(hub);
    const leaf = node('leaf', { tls: { ca }, handshakeTimeout: 3000 });
    const socket = await leaf.connectTo('hub', port, '127.0.0.1');
    expect(socket.connected).toBe(true);
    expect(hub.errors).toEqual([]);
  });

  it('a port written as net reads it (70000.5, 0x…) is checked as a port: TypeError, node not left "serving"; connectTo dials it as serve listens', async () => {
    // Only /^\d+$/ strings were ports: '70000.5' passed as a "path", net read a port, listen threw a RangeError out of
    // serve (not the documented TypeError) and the node stayed "serving" (ERR_IPC_ALREADY_CONNECTED ever after).
    const hub = node('hub');
    expect(() => hub.serve('hub', '70000.5')).toThrow(TypeError);
    expect(() => hub.serve('hub', '   ')).toThrow(TypeError);
    const port = await serveTcp(hub); // not refused as "already serves"
    // serve(name, '0x…') listens on that TCP port (net's reading); connectTo(name, '0x…') dialled a socket file.
    const leaf = node('leaf', { handshakeTimeout: 3000 });
    const socket = await leaf.connectTo('hub', `0x${port.toString(16)}`, '127.0.0.1');
    expect(socket.connected).toBe(true);
    await expect(leaf.connectTo('other', '70000.5')).rejects.toThrow(TypeError);
  });

  it('listen arguments that net refuses at once ({}, a host that is no string) throw from serve, and the node may serve again', async () => {
    // The server was kept before net threw: every later serve failed with ERR_IPC_ALREADY_CONNECTED.
    const hub = node('hub');
    const thrown = (f: () => unknown) => {
      try {
        f();
      } catch (error) {
        return (error as Error).name; // node:net's TypeError: another realm's under jest
      }
      return 'nothing';
    };
    expect(thrown(() => hub.serve('hub', {}))).toBe('TypeError');
    expect(thrown(() => hub.serve('hub', { port: 0, host: 5 }))).toBe('TypeError');
    expect(hub.serverName).toBeNull();
    const port = await serveTcp(hub);
    expect(port).toBeGreaterThan(0);
  });

  it('serve on a busy address, then close() at once, with no error listener: nothing thrown after close', async () => {
    const path = socketPath();
    const other = createServer().listen(path);
    await once(other, 'listening');
    const busy = await serveTcp(node('first'));
    const uncaught: Error[] = [];
    const onUncaught = (error: Error) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      for (const args of [[path], [busy, '127.0.0.1']] as const) {
        const n = node('late');
        n.removeAllListeners('error');
        n.serve('late', ...(args as unknown as [string]));
        await n.close();
        await delay(100);
      }
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await new Promise((resolve) => other.close(resolve));
    }
  });

  it('a socketMode that cannot be applied (an abstract socket: no file) fails serve instead of listening with another mode', async () => {
    const n = node('hub', { socketMode: 0o600 });
    let listening = false;
    n.on('listening', () => (listening = true));
    n.serve('hub', `\0ipc-link-core-rest-${process.pid}`);
    await until(() => n.errors.length > 0, 3000, 'the serve failure');
    expect(n.errors[0].message).toMatch(/socketMode/);
    await delay(50);
    expect(listening).toBe(false);
    expect(n.server).toBeNull();
  });

  it('a duck-typed stream without writableLength / writableHighWaterMark is refused (every send waited for a drain that never came)', () => {
    const n = node('hub');
    const real = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
    const duck = { on: real.on.bind(real), once: real.once.bind(real), write: () => true, end: () => undefined, destroy: () => undefined, cork: () => undefined, uncork: () => undefined };
    expect(() => n.acceptVia(duck as never)).toThrow(TypeError);
    real.destroy();
  });
});
