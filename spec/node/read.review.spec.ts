// A white-box reader's review: logic bugs found by reading the code (two paths that disagree, a wait for an event
// that never comes, a flag set too late). Each test here failed before its fix, over real TCP sockets.
import { catchError, concat, lastValueFrom, map, NEVER, of, range, throwError, toArray } from 'rxjs';
import { Encoding, ErrorCode, FrameDecoder, FrameType, type RemoteError } from '../../src';
import { closeAll, delay, link, node, serveTcp, until } from '../helpers/net';
import { bytes, handshakeBytes, rawClient } from '../helpers/raw';

afterEach(closeAll);

describe('a pushed (Observable) stream that fails', () => {
  it('(was broken) the values it emitted ahead of the credits reach the requester before its error, as before a completion (they were dropped)', async () => {
    const server = node('hub', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0 });
    // Ten values at once, then an error: with a window of 4, six of them wait for credits when the error comes.
    server.on('message', (m) => m.stream(concat(range(0, 10), throwError(() => new Error('boom')))));
    await link(server, client, 'tcp');

    const viaRequest = await lastValueFrom(
      client.request$<number>('hub', 'go', { window: 4, timeout: 5000 }).pipe(
        catchError((error: RemoteError) => of(`${error.code}:${error.message}`)),
        toArray(),
      ),
    );
    expect(viaRequest).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, `${ErrorCode.REMOTE}:boom`]);

    const viaIterate: unknown[] = [];
    try {
      for await (const value of client.iterate<number>('hub', 'go', { window: 4, timeout: 5000 })) viaIterate.push(value);
    } catch (error) {
      viaIterate.push(`${(error as RemoteError).code}:${(error as Error).message}`);
    }
    expect(viaIterate).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, `${ErrorCode.REMOTE}:boom`]);
    expect(server.stats().openStreams).toBe(0);
  });

  it('a source that overflows streamBuffer still fails at once (the bound on memory), and one that completes still sends every value', async () => {
    const server = node('hub', { heartbeatInterval: 0, streamBuffer: 3 });
    const client = node('client', { heartbeatInterval: 0 });
    server.on('message', (m) => m.stream(m.data === 'overflow' ? range(0, 100) : range(0, 5)));
    await link(server, client, 'tcp');
    const error = await lastValueFrom(client.request$('hub', 'overflow', { window: 2, timeout: 5000 }).pipe(toArray())).catch((e: RemoteError) => e);
    expect((error as RemoteError).remoteCode).toBe(ErrorCode.STREAM_OVERFLOW);
    await expect(lastValueFrom(client.request$('hub', 'all', { window: 2, timeout: 5000 }).pipe(toArray()))).resolves.toEqual([0, 1, 2, 3, 4]);
  });
});

describe('a stream over a socket whose highWaterMark is above the stream backlog (1 MiB)', () => {
  it("(was broken) goes on: it waited for a 'drain' that such a socket never emits (the requester got no value for good)", async () => {
    const server = node('hub', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0 });
    // Six 512 KiB values pushed at once: 1 MiB is queued after two of them, far below the 8 MiB high-water mark.
    client.on('message', (m) => m.stream(range(0, 6).pipe(map((i) => Buffer.alloc(512 * 1024, i)))));
    const port = await serveTcp(server);
    await client.connectTo('hub', { port, host: '127.0.0.1', highWaterMark: 8 * 1024 * 1024 });
    const firstBytes = await lastValueFrom(
      server.request$<Buffer>('client', 'go', { timeout: 10_000, idleTimeout: 5000 }).pipe(
        map((value) => value[0]),
        toArray(),
      ),
    );
    expect(firstBytes).toEqual([0, 1, 2, 3, 4, 5]);
  });
});

describe('close() called again while close() runs', () => {
  it("(was broken) from a request$ subscriber's error callback (close() itself fails it): one shutdown, one 'close' event, the same promise", async () => {
    const server = node('hub', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0 });
    server.on('message', (m) => m.stream(NEVER));
    await link(server, client, 'tcp');
    let closes = 0;
    client.on('close', () => closes++);
    let inner: Promise<void> | null = null;
    const errors: unknown[] = [];
    // A common shape: "on error, shut down" — and the error is the one close() gives what is pending.
    client.request$('hub', 'go').subscribe({
      error: (error) => {
        errors.push((error as RemoteError).code);
        inner = client.close();
      },
    });
    await delay(50);
    const outer = client.close();
    expect(errors).toEqual([ErrorCode.CLOSED]);
    expect(inner).toBe(outer); // close() is idempotent: later calls return the same Promise
    await outer;
    await delay(20);
    expect(closes).toBe(1);
  });
});

describe('the heartbeat round trip (stats().lastRtt)', () => {
  it('(was broken) a PONG slower than the heartbeat interval is timed from its own PING (a 250 ms round trip at a 100 ms interval read as ~50 ms)', async () => {
    const server = node('hub', { heartbeatInterval: 100 });
    const port = await serveTcp(server);
    const raw = rawClient(port);
    const empty = Buffer.alloc(0);
    const timers: NodeJS.Timeout[] = [];
    // A peer 250 ms away: it answers each heartbeat PING (id 0) 250 ms later, in order.
    const decoder = new FrameDecoder((frame) => {
      if (frame.type !== FrameType.PING || frame.id !== 0) return;
      const stamp = Buffer.from(frame.payload); // echoed, as a node does (the frame's bytes are only lent)
      timers.push(setTimeout(() => raw.write(bytes({ type: FrameType.PONG, flags: 0, id: 0, encoding: Encoding.BUFFER, payload: stamp })), 250));
    });
    raw.on('data', (chunk: Buffer) => decoder.push(chunk));
    raw.write(handshakeBytes('raw'));
    // It also pings (id 5) every 50 ms, so the hub always hears from it: the test never depends on the delays.
    const keepAlive = setInterval(() => raw.write(bytes({ type: FrameType.PING, flags: 0, id: 5, encoding: Encoding.BUFFER, payload: empty })), 50);
    try {
      await until(() => server.get('raw') !== undefined);
      const socket = server.get('raw')!;
      await until(() => (socket.stats().lastRtt ?? 0) > 0, 5000, 'a first heartbeat round trip');
      const samples: number[] = [];
      for (let i = 0; i < 5; i++) {
        await delay(100);
        samples.push(socket.stats().lastRtt!);
      }
      // Never below the peer's delay (a loaded machine only makes it longer).
      expect(Math.min(...samples)).toBeGreaterThanOrEqual(240);
    } finally {
      clearInterval(keepAlive);
      timers.forEach(clearTimeout);
      raw.destroy();
    }
  });
});
