import { finalize, firstValueFrom, interval, lastValueFrom, map, range, take, toArray } from 'rxjs';
import { createLinkPair, ErrorCode, RemoteError } from '../../src';
import { closeAll, delay, node, serveTcp, socketPath, until } from '../helpers/net';
import { once } from 'node:events';

afterEach(closeAll);

type Transport = 'tcp' | 'unix' | 'link';

async function pair(serverOptions = {}, clientOptions = {}, transport: Transport = 'tcp') {
  const server = node('server', serverOptions);
  if (transport === 'link') {
    const client = node('client', clientOptions);
    const [a, b] = createLinkPair();
    server.acceptVia(a);
    await client.connectVia('server', b);
    return { server, client };
  }
  let args: unknown[];
  if (transport === 'unix') {
    const path = socketPath();
    server.serve('server', path);
    await once(server, 'listening');
    args = [path];
  } else args = [await serveTcp(server), '127.0.0.1'];
  const client = node('client', clientOptions);
  await client.connectTo('server', ...args);
  return { server, client };
}

describe.each([
  ['TCP', 'tcp'],
  ['a Unix socket', 'unix'],
  ['an in-memory link', 'link'],
] as Array<[string, Transport]>)('streamed replies over %s', (_, transport) => {
  it('request$ emits every value of message.stream(Observable), then completes', async () => {
    const { server, client } = await pair({}, {}, transport);
    server.on('message', (m) => m.stream(range(1, 5).pipe(map((i) => ({ i, of: m.data })))));
    const values = await lastValueFrom(client.request$<{ i: number }>('server', 'count').pipe(toArray()));
    expect(values).toEqual([1, 2, 3, 4, 5].map((i) => ({ i, of: 'count' })));
  });

  it('a 1,000,000-item AsyncIterable consumed with take(10) stops the producer after about a window', async () => {
    const { server, client } = await pair({}, {}, transport);
    let produced = 0;
    let finalized = false;
    server.on('message', (m) =>
      m.stream(
        (async function* () {
          try {
            for (let i = 0; i < 1_000_000; i++) {
              produced++;
              yield i;
            }
          } finally {
            finalized = true;
          }
        })(),
      ),
    );
    const window = 16;
    const first = await lastValueFrom(client.request$<number>('server', 'go', { window }).pipe(take(10), toArray()));
    expect(first).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await until(() => finalized, 2000, 'the producer to be finalized');
    console.log(`take(10) of a 1,000,000-item stream: producer pulled ${produced} items (window ${window})`);
    expect(produced).toBeLessThanOrEqual(10 + window + 1);
  });

  it('cancels an infinite interval source: its finalize runs on the responder', async () => {
    const { server, client } = await pair({}, {}, transport);
    let finalized = false;
    let emitted = 0;
    server.on('message', (m) =>
      m.stream(
        interval(5).pipe(
          map((i) => {
            emitted = i + 1;
            return i;
          }),
          finalize(() => (finalized = true)),
        ),
      ),
    );
    const values = await lastValueFrom(client.request$<number>('server', 'tick').pipe(take(3), toArray()));
    expect(values).toEqual([0, 1, 2]);
    await until(() => finalized, 1000, 'finalize on the responder');
    const stoppedAt = emitted;
    await delay(60);
    expect(emitted).toBe(stoppedAt);
  });

  it('an Observable source that outruns a slow requester fails with ERR_IPC_STREAM_OVERFLOW (memory bounded)', async () => {
    const { server, client } = await pair({ streamBuffer: 100 }, {}, transport);
    let torn = false;
    server.on('message', (m) => m.stream(range(0, 100_000).pipe(finalize(() => (torn = true)))));
    const error = await lastValueFrom(client.request$('server', 'flood', { window: 10 })).catch((e: Error) => e);
    expect(error).toBeInstanceOf(RemoteError);
    expect(error).toMatchObject({ remoteCode: ErrorCode.STREAM_OVERFLOW });
    expect(torn).toBe(true);
  });

  it('a failing stream and message.error() arrive as RemoteError with name, message, code (stack on request)', async () => {
    const { server, client } = await pair({ exposeErrorStack: true }, {}, transport);
    server.on('message', (m) => {
      if (m.data === 'stream') {
        m.stream(
          (async function* () {
            yield 1;
            throw Object.assign(new TypeError('broken pipe'), { code: 'E_PIPE' });
          })(),
        );
      } else m.error(Object.assign(new RangeError('out of range'), { code: 'E_RANGE' }));
    });
    const seen: unknown[] = [];
    const error = await lastValueFrom(client.request$('server', 'stream').pipe(map((v) => seen.push(v)))).catch((e: RemoteError) => e);
    expect(seen).toEqual([1]);
    expect(error).toMatchObject({ code: ErrorCode.REMOTE, remoteName: 'TypeError', message: 'broken pipe', remoteCode: 'E_PIPE' });
    expect((error as RemoteError).remoteStack).toMatch(/TypeError: broken pipe/);
    await expect(client.sendTo('server', 'single')).rejects.toMatchObject({ remoteName: 'RangeError', remoteCode: 'E_RANGE' });
  });

  it('sendTo on a streaming responder takes the first value and cancels the rest', async () => {
    const { server, client } = await pair({}, {}, transport);
    let finalized = false;
    server.on('message', (m) => m.stream(interval(1).pipe(finalize(() => (finalized = true)))));
    await expect(client.sendTo('server', 'x')).resolves.toBe(0);
    await until(() => finalized, 1000);
  });

  it('timeouts: before the first value, and between values (idleTimeout)', async () => {
    const { server, client } = await pair({}, {}, transport);
    let finalized = 0;
    server.on('message', (m) =>
      m.stream(
        (async function* () {
          try {
            if (m.data === 'slow-start') await delay(300);
            yield 'a';
            await delay(300);
            yield 'b';
          } finally {
            finalized++;
          }
        })(),
      ),
    );
    await expect(firstValueFrom(client.request$('server', 'slow-start', { timeout: 50 }))).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
    const values: unknown[] = [];
    const error = await lastValueFrom(client.request$('server', 'stall', { idleTimeout: 50 }).pipe(map((v) => values.push(v)))).catch((e: Error) => e);
    expect(values).toEqual(['a']);
    expect(error).toMatchObject({ code: ErrorCode.TIMEOUT });
    await until(() => finalized === 2, 2000, 'both producers finalized');
  });

  it('losing the connection mid-stream errors the requester and tears the responder down', async () => {
    const { server, client } = await pair({}, {}, transport);
    let finalized = false;
    server.on('message', (m) => m.stream(interval(5).pipe(finalize(() => (finalized = true)))));
    const values: number[] = [];
    const done = lastValueFrom(client.request$<number>('server', 'x').pipe(map((v) => values.push(v)))).catch((e: Error) => e);
    await until(() => values.length >= 3);
    await server.disconnectFrom('client');
    expect(await done).toMatchObject({ code: ErrorCode.PEER_DISCONNECTED });
    await until(() => finalized, 1000);
  });
});

describe('a pushed source far ahead of its requester (streamBuffer: Infinity)', () => {
  it('(was quadratic: Array#shift on the queue, 44 s) sends 200,000 queued objects through a window of 64 in order, in well under 30 s', async () => {
    const { server, client } = await pair({ streamBuffer: Infinity, heartbeatInterval: 0 }, { heartbeatInterval: 0 });
    // range() pushes every value at once: all 200,000 wait in the responder's queue, then leave 32 per grant.
    server.on('message', (m) => m.stream(range(0, 200_000).pipe(map((i) => ({ i })))));
    const start = Date.now();
    let count = 0;
    let inOrder = true;
    await lastValueFrom(
      client.request$<{ i: number }>('server', 'go', { window: 64, timeout: 60_000 }).pipe(
        map((value) => {
          if (value.i !== count++) inOrder = false;
        }),
      ),
    );
    expect({ count, inOrder }).toEqual({ count: 200_000, inOrder: true });
    expect(Date.now() - start).toBeLessThan(30_000);
  }, 60_000);
});
