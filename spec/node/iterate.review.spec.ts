// Review of the pull API (node.iterate, pullEach, request$) used carelessly or hostilely: every probe here once
// failed, or pins a behaviour the fixes must keep. Over the in-memory link and a real TCP connection.
import { asyncScheduler, concat, finalize, interval, lastValueFrom, map, NEVER, of, take, throwError, timer, toArray, type ObservableInput, type Subscription } from 'rxjs';
import { ErrorCode, IpcTimeoutError, pullEach, RemoteError, type Node, type NodeMessage } from '../../src';
import { killChildren, spawnNode } from '../helpers/child';
import { closeAll, counting, delay, link, node, serveTcp, socketPath, until, type Transport } from '../helpers/net';

afterEach(closeAll);
afterEach(() => jest.restoreAllMocks());

async function pair(kind: Transport, handle: (m: NodeMessage) => void): Promise<{ server: Node; client: Node }> {
  const server = node('hub', { heartbeatInterval: 0 });
  const client = node('client', { heartbeatInterval: 0 });
  server.on('message', handle);
  await link(server, client, kind);
  return { server, client };
}

/** Both sides hold nothing for the request any more. */
async function drained(server: Node, client: Node): Promise<void> {
  await until(() => client.stats().pendingRequests === 0 && server.stats().openStreams === 0, 3000, 'no pending request nor open stream');
}

describe.each<Transport>(['link', 'tcp'])('iterator protocol abused (%s)', (kind) => {
  it('next() called many times without awaiting: each settles in order, nothing lost or duplicated, window respected', async () => {
    const { state, handle } = counting(50);
    const { server, client } = await pair(kind, handle);
    const iterator = client.iterate<number>('hub', 'go', { window: 4 });
    let settled = 0;
    let mostAhead = 0;
    const order: number[] = [];
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        iterator.next().then((result) => {
          order.push(i);
          settled++;
          mostAhead = Math.max(mostAhead, state.produced - settled);
          return result;
        }),
      ),
    );
    expect(order).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect(mostAhead).toBeLessThanOrEqual(4);
    expect(results.slice(0, 50)).toEqual(Array.from({ length: 50 }, (_, i) => ({ value: i, done: false })));
    expect(results.slice(50)).toEqual(Array.from({ length: 10 }, () => ({ value: undefined, done: true })));
    await drained(server, client);
  });
});

describe.each<Transport>(['link', 'tcp'])('iterator edges (%s)', (kind) => {
  it('return() before the first next(): nothing is ever sent, a later next() is done', async () => {
    let asked = 0;
    const { client } = await pair(kind, (m) => {
      asked++;
      m.stream([1, 2, 3]);
    });
    const iterator = client.iterate('hub', 'go');
    await expect(iterator.return!()).resolves.toEqual({ value: undefined, done: true });
    await expect(iterator.next()).resolves.toEqual({ value: undefined, done: true });
    await delay(20);
    expect(asked).toBe(0);
    expect(client.stats().pendingRequests).toBe(0);
  });

  it('throw() before the first next(): rejects with that error, nothing is ever sent, a later next() is done', async () => {
    let asked = 0;
    const { client } = await pair(kind, (m) => {
      asked++;
      m.stream([1, 2, 3]);
    });
    const iterator = client.iterate('hub', 'go');
    const boom = new Error('boom');
    await expect(iterator.throw!(boom)).rejects.toBe(boom);
    await expect(iterator.next()).resolves.toEqual({ value: undefined, done: true });
    await delay(20);
    expect(asked).toBe(0);
  });

  it('throw() while a next() waits: the waiting next() settles, the responder is cancelled, no timer is left', async () => {
    let finished = false;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { server, client } = await pair(kind, (m) =>
      m.stream(
        (async function* () {
          try {
            await gate;
            yield 1;
          } finally {
            finished = true;
          }
        })(),
      ),
    );
    // The first-value timeout is the one 60 s timer armed here: it must be cleared by throw().
    const armed = jest.spyOn(global, 'setTimeout');
    const cleared = jest.spyOn(global, 'clearTimeout');
    const iterator = client.iterate('hub', 'go', { timeout: 60_000, idleTimeout: 60_000 });
    const waiting = iterator.next();
    await until(() => server.stats().openStreams === 1);
    const timer = armed.mock.results[armed.mock.calls.findIndex(([, ms]) => ms === 60_000)]?.value;
    expect(timer).toBeDefined();
    const boom = new Error('boom');
    await expect(iterator.throw!(boom)).rejects.toBe(boom);
    await expect(waiting).resolves.toEqual({ value: undefined, done: true });
    expect(cleared).toHaveBeenCalledWith(timer);
    await expect(iterator.next()).resolves.toEqual({ value: undefined, done: true });
    await until(() => server.stats().openStreams === 0 && client.stats().pendingRequests === 0);
    release();
    await until(() => finished, 3000, "the generator's finally");
  });

  it('return() twice, and concurrently with a pending next(): all settle done, the responder is torn down', async () => {
    const { state, handle } = counting();
    const { server, client } = await pair(kind, handle);
    const iterator = client.iterate<number>('hub', 'go', { window: 2 });
    await expect(iterator.next()).resolves.toEqual({ value: 0, done: false });
    const pending = [iterator.next(), iterator.next(), iterator.next(), iterator.next()];
    const returns = [iterator.return!(), iterator.return!()];
    const settled = await Promise.all([...pending, ...returns]);
    for (const result of settled) expect(result === undefined || typeof result === 'object').toBe(true);
    // Values that arrived before return() may be delivered; after the first done, only done.
    const firstDone = settled.findIndex((r) => r.done);
    expect(settled.slice(firstDone).every((r) => r.done)).toBe(true);
    expect(settled.slice(0, firstDone).map((r) => r.value)).toEqual(Array.from({ length: firstDone }, (_, i) => i + 1));
    await expect(iterator.next()).resolves.toEqual({ value: undefined, done: true });
    await until(() => state.finished, 3000, "the generator's finally");
    await drained(server, client);
  });

  it('[Symbol.asyncIterator]() is the iterator itself; for await with a throw in the body cancels', async () => {
    const { state, handle } = counting();
    const { server, client } = await pair(kind, handle);
    const iterator = client.iterate<number>('hub', 'go', { window: 4 });
    expect(iterator[Symbol.asyncIterator]()).toBe(iterator);
    expect(iterator[Symbol.asyncIterator]()[Symbol.asyncIterator]()).toBe(iterator);
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const value of iterator) {
          seen.push(value);
          if (value === 2) throw new RangeError('body');
        }
      })(),
    ).rejects.toThrow('body');
    expect(seen).toEqual([0, 1, 2]);
    await until(() => state.finished, 3000, "the generator's finally");
    await drained(server, client);
  });

  it('a RemoteError, then done; an empty stream; undefined and null values', async () => {
    const { client } = await pair(kind, (m) => {
      if (m.data === 'empty') m.stream([]);
      else if (m.data === 'holes') m.stream([undefined, null, undefined]);
      else m.stream(concat(of(1), throwError(() => Object.assign(new RangeError('nope'), { code: 'E_NOPE' }))));
    });
    const empty: unknown[] = [];
    for await (const value of client.iterate('hub', 'empty')) empty.push(value);
    expect(empty).toEqual([]);
    const holes: unknown[] = [];
    for await (const value of client.iterate('hub', 'holes')) holes.push(value);
    expect(holes).toEqual([undefined, null, undefined]);
    const failing = client.iterate('hub', 'fail');
    await expect(failing.next()).resolves.toEqual({ value: 1, done: false });
    const error = await failing.next().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteError);
    expect(error).toMatchObject({ code: ErrorCode.REMOTE, remoteName: 'RangeError', message: 'nope' });
    expect(client.stats().pendingRequests).toBe(0);
  });

  it('idleTimeout: a responder that stops sending fails the waiting next() with ERR_IPC_TIMEOUT and is torn down', async () => {
    let finished = false;
    const { server, client } = await pair(kind, (m) =>
      m.stream(
        (async function* () {
          try {
            yield 1;
            await new Promise(() => undefined);
          } finally {
            finished = true;
          }
        })(),
      ),
    );
    const iterator = client.iterate('hub', 'go', { idleTimeout: 50 });
    await expect(iterator.next()).resolves.toEqual({ value: 1, done: false });
    await expect(iterator.next()).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
    await until(() => server.stats().openStreams === 0 && client.stats().pendingRequests === 0);
    void finished; // the generator is stuck in an await that never ends: its finally cannot run
  });

  it('the node closes mid-stream: a waiting next() rejects with ERR_IPC_CLOSED, the responder is torn down', async () => {
    const { state, handle } = counting();
    const { server, client } = await pair(kind, handle);
    const iterator = client.iterate<number>('hub', 'go', { window: 2 });
    await iterator.next();
    await client.close();
    // The values already received may still be handed out; then the failure.
    let error: unknown;
    for (let i = 0; i < 5 && error === undefined; i++) error = await iterator.next().then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCode.CLOSED });
    await until(() => state.finished, 3000, "the generator's finally");
    await until(() => server.stats().openStreams === 0);
    await expect(client.iterate('hub', 'go').next()).rejects.toMatchObject({ code: ErrorCode.CLOSED });
  });

  it('the responder vanishes mid-stream: ERR_IPC_PEER_DISCONNECTED, not a hang', async () => {
    const { state, handle } = counting();
    const { server, client } = await pair(kind, handle);
    const iterator = client.iterate<number>('hub', 'go', { window: 2 });
    await iterator.next();
    const socket = [...(server as unknown as { accepted: Map<string, Array<{ connection: { socket: { destroy(): void } } }>> }).accepted.values()][0][0];
    socket.connection.socket.destroy();
    let error: unknown;
    for (let i = 0; i < 5 && error === undefined; i++) error = await iterator.next().then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCode.PEER_DISCONNECTED });
    await until(() => state.finished, 3000, "the generator's finally");
    expect(client.stats().pendingRequests).toBe(0);
  });
});

describe('iterate: arguments', () => {
  it.each([0, -1, NaN, 1.5, 2 ** 32, Infinity, '16', null])('window %p is a TypeError on the first next()', async (window) => {
    const { client } = await pair('link', (m) => m.stream([1]));
    await expect(client.iterate('hub', 'x', { window: window as number }).next()).rejects.toBeInstanceOf(TypeError);
    expect(client.stats().pendingRequests).toBe(0);
  });

  it.each([NaN, -1, '5', null])('timeout / idleTimeout %p is a TypeError', async (ms) => {
    const { client } = await pair('link', (m) => m.stream([1]));
    await expect(client.iterate('hub', 'x', { timeout: ms as number }).next()).rejects.toBeInstanceOf(TypeError);
    await expect(client.iterate('hub', 'x', { idleTimeout: ms as number }).next()).rejects.toBeInstanceOf(TypeError);
  });

  it.each([2 ** 31, 2 ** 31 + 5, Infinity])('timeout and idleTimeout %p do not fire early', async (ms) => {
    const { client } = await pair('link', (m) =>
      m.stream(
        (async function* () {
          await delay(30);
          yield 1;
          await delay(30);
          yield 2;
        })(),
      ),
    );
    const values: unknown[] = [];
    for await (const value of client.iterate('hub', 'x', { timeout: ms, idleTimeout: ms })) values.push(value);
    expect(values).toEqual([1, 2]);
  });

  it('window 2**31 works (and so does a window of 1)', async () => {
    const { client } = await pair('link', (m) => m.stream([1, 2, 3]));
    for (const window of [1, 2 ** 31, 2 ** 32 - 1]) {
      const values: unknown[] = [];
      for await (const value of client.iterate('hub', 'x', { window })) values.push(value);
      expect(values).toEqual([1, 2, 3]);
    }
  });

  it('before connect, an unknown target, a bad target, after close', async () => {
    const lonely = node('lonely');
    await expect(lonely.iterate('hub', 'x').next()).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED });
    await expect(lonely.iterate('' as string, 'x').next()).rejects.toBeInstanceOf(TypeError);
    await expect(lonely.iterate(42 as unknown as string, 'x').next()).rejects.toBeInstanceOf(TypeError);
    await lonely.close();
    await expect(lonely.iterate('hub', 'x').next()).rejects.toMatchObject({ code: ErrorCode.CLOSED });
  });
});

describe.each<Transport>(['link', 'tcp'])('pullEach over node.iterate (%s)', (kind) => {
  /** Runs `pullEach(iterate, work)` to its end: the values, or the error. */
  function run<R>(client: Node, work: (value: number, index: number) => ObservableInput<R>, window = 4) {
    return lastValueFrom(pullEach(client.iterate<number>('hub', 'go', { window }), work).pipe(toArray()));
  }

  it.each<[string, (value: number) => ObservableInput<unknown>]>([
    ['throws synchronously', (v) => (v === 2 ? (() => { throw new RangeError('sync'); })() : of(v))],
    ['returns a rejecting promise', (v) => (v === 2 ? Promise.reject(new RangeError('async')) : Promise.resolve(v))],
    ['returns an Observable that errors', (v) => (v === 2 ? throwError(() => new RangeError('rx')) : of(v))],
    ['returns a non-ObservableInput', (v) => (v === 2 ? (42 as unknown as ObservableInput<unknown>) : of(v))],
  ])('work that %s: the error, and the responder torn down', async (_, work) => {
    const { state, handle } = counting();
    const { server, client } = await pair(kind, handle);
    await expect(run(client, work)).rejects.toBeInstanceOf(Error);
    await until(() => state.finished, 3000, "the generator's finally");
    await drained(server, client);
  });

  it('one work at a time, in order, and the responder never more than the window ahead', async () => {
    const { state, handle } = counting(30);
    const { client } = await pair(kind, handle);
    let active = 0;
    let mostActive = 0;
    let started = 0;
    let mostAhead = 0;
    const out = await run(client, (value, index) => {
      expect(index).toBe(value);
      started++;
      mostAhead = Math.max(mostAhead, state.produced - started);
      mostActive = Math.max(mostActive, ++active);
      return timer(1).pipe(
        map(() => value),
        finalize(() => active--),
      );
    });
    expect(out).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(mostActive).toBe(1);
    expect(mostAhead).toBeLessThanOrEqual(4);
  });

  it('unsubscribing mid-work tears the work and the responder down', async () => {
    const { state, handle } = counting();
    const { server, client } = await pair(kind, handle);
    let workFinalized = 0;
    const subscription = pullEach(client.iterate<number>('hub', 'go', { window: 4 }), (value) =>
      (value === 3 ? NEVER : of(value)).pipe(finalize(() => workFinalized++)),
    ).subscribe();
    await until(() => workFinalized === 3);
    subscription.unsubscribe();
    expect(workFinalized).toBe(4);
    await until(() => state.finished, 3000, "the generator's finally");
    await drained(server, client);
  });

  it('take(1) downstream of work that emits synchronously, then goes on: the work is torn down too', async () => {
    const { state, handle } = counting();
    const { server, client } = await pair(kind, handle);
    let workFinalized = false;
    const first = await lastValueFrom(
      pullEach(client.iterate<number>('hub', 'go', { window: 4 }), (value) =>
        concat(of(value), NEVER).pipe(finalize(() => (workFinalized = true))),
      ).pipe(take(1)),
    );
    expect(first).toBe(0);
    expect(workFinalized).toBe(true);
    await until(() => state.finished, 3000, "the generator's finally");
    await drained(server, client);
  });

  it('the source failing (a RemoteError) after some work: the results before it, then the error', async () => {
    const { client } = await pair(kind, (m) => m.stream(concat(of(1, 2), throwError(() => new RangeError('late')))));
    const seen: number[] = [];
    const error = await lastValueFrom(
      pullEach(client.iterate<number>('hub', 'go'), (value) => timer(2).pipe(map(() => seen.push(value)))),
    ).catch((e: unknown) => e);
    expect(seen).toEqual([1, 2]);
    expect(error).toBeInstanceOf(RemoteError);
  });
});

describe('pullEach over a hostile AsyncIterable', () => {
  it('an iterator whose next() throws synchronously (later): the Observable errors, nothing escapes', async () => {
    let calls = 0;
    let returned = false;
    const source: AsyncIterable<number> = {
      [Symbol.asyncIterator]: () => ({
        next: () => {
          if (++calls === 3) throw new RangeError('sync next');
          return Promise.resolve({ value: calls, done: false });
        },
        return: () => {
          returned = true;
          return Promise.resolve({ value: undefined, done: true });
        },
      }),
    };
    const error = await lastValueFrom(pullEach(source, (value) => of(value)).pipe(toArray())).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RangeError);
    expect(returned).toBe(true);
  });

  it('an iterator whose next() returns a plain result works, as with for await; a result that is no object is a TypeError', async () => {
    let n = 0;
    const plain = { [Symbol.asyncIterator]: () => ({ next: () => (++n <= 3 ? { value: n, done: false } : { value: undefined, done: true }) }) };
    await expect(lastValueFrom(pullEach(plain as unknown as AsyncIterable<number>, (value) => of(value)).pipe(toArray()))).resolves.toEqual([1, 2, 3]);
    const broken = { [Symbol.asyncIterator]: () => ({ next: () => Promise.resolve(undefined) }) };
    await expect(lastValueFrom(pullEach(broken as unknown as AsyncIterable<number>, (value) => of(value)))).rejects.toBeInstanceOf(TypeError);
  });

  it('a return() that throws synchronously on unsubscribe: nothing escapes', async () => {
    const source: AsyncIterable<number> = {
      [Symbol.asyncIterator]: () => ({
        next: () => Promise.resolve({ value: 1, done: false }),
        return: () => {
          throw new Error('bad return');
        },
      }),
    };
    await expect(lastValueFrom(pullEach(source, (value) => of(value)).pipe(take(1)))).resolves.toBe(1);
  });
});

describe.each<[Transport, string]>([
  ['link', 'fast'],
  ['tcp', 'fast'],
  ['link', 'scheduler'],
  ['tcp', 'scheduler'],
])('request$ (%s, %s path)', (kind, path) => {
  async function rxPair(handle: (m: NodeMessage) => void): Promise<{ server: Node; client: Node }> {
    const server = node('hub', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0, ...(path === 'scheduler' ? { scheduler: asyncScheduler } : {}) });
    server.on('message', handle);
    await link(server, client, kind);
    return { server, client };
  }

  it('is cold: two subscriptions are two requests, each with every value', async () => {
    let asked = 0;
    const { client } = await rxPair((m) => {
      asked++;
      m.stream([1, 2, 3]);
    });
    const request = client.request$<number>('hub', 'go', { window: 2 });
    expect(asked).toBe(0);
    const [a, b] = await Promise.all([lastValueFrom(request.pipe(toArray())), lastValueFrom(request.pipe(toArray()))]);
    expect([a, b, asked]).toEqual([[1, 2, 3], [1, 2, 3], 2]);
    expect(client.stats().pendingRequests).toBe(0);
  });

  it('unsubscribing synchronously inside next, and take(1): CANCEL, the responder torn down, nothing pending', async () => {
    const { state, handle } = counting();
    const { server, client } = await rxPair(handle);
    const seen: number[] = [];
    const subscription: Subscription = client.request$<number>('hub', 'go', { window: 4 }).subscribe((value) => {
      seen.push(value);
      if (value === 1) subscription.unsubscribe();
    });
    await until(() => state.finished, 3000, "the generator's finally");
    expect(seen).toEqual([0, 1]);
    await drained(server, client);
    state.finished = false;
    await expect(lastValueFrom(client.request$<number>('hub', 'go', { window: 4 }).pipe(take(1)))).resolves.toBe(0);
    await until(() => state.finished, 3000, "the generator's finally");
    await drained(server, client);
  });

  it('receptive: false with a stream responder: one undefined, nothing left on either side', async () => {
    let streamed: boolean | undefined;
    let finalized = false;
    const { server, client } = await rxPair((m) => {
      streamed = m.stream(interval(5).pipe(finalize(() => (finalized = true))));
    });
    await expect(lastValueFrom(client.request$('hub', 'go', { receptive: false }).pipe(toArray()))).resolves.toEqual([undefined]);
    await until(() => streamed !== undefined);
    expect(streamed).toBe(false);
    expect(finalized).toBe(false); // never subscribed
    await drained(server, client);
  });

  it('timeout and idleTimeout fail with a typed ERR_IPC_TIMEOUT, and cancel the responder', async () => {
    let finalized = 0;
    const { server, client } = await rxPair((m) => {
      if (m.data === 'silent') m.stream(NEVER.pipe(finalize(() => finalized++)));
      else m.stream(concat(of(1), NEVER).pipe(finalize(() => finalized++)));
    });
    const first = await lastValueFrom(client.request$('hub', 'silent', { timeout: 40 })).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(IpcTimeoutError);
    expect(first).toMatchObject({ code: ErrorCode.TIMEOUT });
    const idle = await lastValueFrom(client.request$('hub', 'one', { idleTimeout: 40 })).catch((e: unknown) => e);
    expect(idle).toBeInstanceOf(IpcTimeoutError);
    expect(idle).toMatchObject({ code: ErrorCode.TIMEOUT });
    await until(() => finalized === 2);
    await drained(server, client);
  });

  it.each([0, -1, NaN, 1.5, 2 ** 32, Infinity, '16'])('window %p errors the subscription with a TypeError, nothing sent', async (window) => {
    let asked = 0;
    const { client } = await rxPair(() => asked++);
    const error = await lastValueFrom(client.request$('hub', 'go', { window: window as number })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect(asked).toBe(0);
  });

  it.each([2 ** 31, 2 ** 31 + 5, Infinity])('timeout and idleTimeout %p do not fire early', async (ms) => {
    const { client } = await rxPair((m) =>
      m.stream(
        (async function* () {
          await delay(30);
          yield 1;
          await delay(30);
          yield 2;
        })(),
      ),
    );
    await expect(lastValueFrom(client.request$('hub', 'x', { timeout: ms, idleTimeout: ms }).pipe(toArray()))).resolves.toEqual([1, 2]);
  });
});

describe.each<Transport>(['link', 'tcp'])('nothing left behind after close() (%s)', (kind) => {
  it('waiting and idle iterators, a pending request$ and a pullEach mid-work: all settle, no timer survives', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const { state, handle } = counting();
    const { server, client } = await pair(kind, (m) => (m.data === 'silent' ? m.stream(NEVER) : handle(m)));
    const options = { timeout: 60_000, idleTimeout: 60_000, window: 4 };
    const waiting = client.iterate('hub', 'silent', options).next();
    const idle = client.iterate<number>('hub', 'go', options);
    await idle.next();
    const request = lastValueFrom(client.request$('hub', 'silent', options));
    // A pull operator learns of the source's failure at its next pull, once the work in progress is done.
    let working = false;
    const pulled = lastValueFrom(pullEach(client.iterate<number>('hub', 'go', options), () => ((working = true), timer(100))));
    await until(() => server.stats().openStreams === 4 && working);
    await Promise.all([client.close(), server.close()]);
    await expect(waiting).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await expect(request).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await expect(pulled).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    let error: unknown;
    for (let i = 0; i < 10 && error === undefined; i++) error = await idle.next().then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCode.CLOSED });
    await until(() => state.finished, 3000, "the generators' finally");
    await until(() => timers() <= before, 3000, 'the timers to be cleared');
  });
});

describe.each<Transport>(['link', 'tcp'])('values through iterate and request$ streams come out as they went in (%s)', (kind) => {
  const widths = ['a', 'é', '€', '😀'];
  const texts = [
    '',
    ...widths,
    widths.join(''),
    // Around the text fast path's limit (2730 UTF-16 units) and the writer's packing limit (8 KiB), every width.
    ...widths.flatMap((c) => [2729, 2730, 2731, 4096, 8192].map((n) => c.repeat(Math.ceil(n / c.length)).slice(0, n - (n % c.length)))),
    '\uD83D', // a lone surrogate
    'x\uDE00y',
    '\u0000nul',
  ];
  const values: unknown[] = [
    ...texts,
    0,
    -0,
    NaN,
    Infinity,
    -Infinity,
    2 ** 53 + 2,
    -(2 ** 63),
    Number.MIN_VALUE,
    123n,
    -(2n ** 200n),
    true,
    false,
    null,
    undefined,
    Buffer.from([0, 1, 2, 255]),
    Buffer.alloc(0),
    Buffer.alloc(10_000, 7),
    new Uint8Array([9, 8, 7]),
    new Uint8Array(20_000).fill(3),
    Buffer.from('abcdef').subarray(2, 4),
    new Float64Array([-0, 1.5]),
    new Date(0),
    new Date(8.64e15),
    new Map<unknown, unknown>([[1, 'one'], ['-0', -0], [{ k: 1 }, [new Set([1])]]]),
    new Set(['a', 1, null]),
    /re+g/giu,
    { a: { b: { c: [1, 'é', null, { d: -0 }] } } },
    { nested: [undefined, 1] },
    [1, , 3], // eslint-disable-line no-sparse-arrays
    { big: 10n, when: new Date(5), bytes: Buffer.from([1]) },
    { '': '', ['__proto__']: 1 },
    Array.from({ length: 40 }).reduce<unknown>((inner) => ({ inner }), 'deep'),
  ];

  function expectSame(got: unknown[], sent: unknown[]): void {
    expect(got).toHaveLength(sent.length);
    sent.forEach((value, i) => {
      expect(got[i]).toStrictEqual(value);
      if (typeof value === 'number') expect(Object.is(got[i], value)).toBe(true);
      // By name: structured clone builds its objects in Node's realm, not in jest's.
      if (value !== null && typeof value === 'object') expect((got[i] as object)?.constructor.name).toBe(value.constructor.name);
    });
  }

  it('streamed back by the responder, through iterate and request$', async () => {
    const { client } = await pair(kind, (m) => m.stream(values));
    const iterated: unknown[] = [];
    for await (const value of client.iterate('hub', 'all', { window: 3 })) iterated.push(value);
    expectSame(iterated, values);
    expectSame(await lastValueFrom(client.request$('hub', 'all', { window: 3 }).pipe(toArray())), values);
  });

  it('a pulled source that refills one large buffer for each value: every value arrives as it was yielded', async () => {
    const { client } = await pair(kind, (m) =>
      m.stream(
        (function* () {
          const chunk = m.data === 'u8' ? new Uint8Array(64 * 1024) : Buffer.alloc(64 * 1024);
          for (let i = 0; i < 40; i++) yield chunk.fill(i);
        })(),
      ),
    );
    const wrong = (chunks: Uint8Array[]) => chunks.flatMap((chunk, i) => (chunk.length === 64 * 1024 && chunk.every((b) => b === i) ? [] : [i]));
    for (const data of ['buffer', 'u8']) {
      const iterated: Uint8Array[] = [];
      for await (const chunk of client.iterate<Uint8Array>('hub', data, { window: 64 })) iterated.push(chunk);
      expect(wrong(iterated)).toEqual([]);
      expect(iterated).toHaveLength(40);
      const pushed = await lastValueFrom(client.request$<Uint8Array>('hub', data, { window: 64 }).pipe(toArray()));
      expect(wrong(pushed)).toEqual([]);
      expect(pushed).toHaveLength(40);
    }
  });

  it('large values: a 1 MiB string of every width, a 3 MiB Buffer, a large structured-clone object', async () => {
    const large = [
      widths.join('').repeat(2 ** 18 / 2),
      Buffer.alloc(3 * 2 ** 20, 0xab),
      { rows: Array.from({ length: 20_000 }, (_, i) => ({ i, when: new Date(i), tag: `é${i}` })) },
    ];
    const { client } = await pair(kind, (m) => m.stream(m.data === 'all' ? large : [m.data]));
    const iterated: unknown[] = [];
    for await (const value of client.iterate('hub', 'all', { window: 1 })) iterated.push(value);
    expectSame(iterated, large);
    expectSame(await lastValueFrom(client.request$('hub', large[0]).pipe(toArray())), [large[0]]);
  });

  it('what cannot be encoded fails with ERR_IPC_ENCODE, as request data or as a streamed value', async () => {
    const { client } = await pair(kind, (m) => m.stream([1, () => 2, 3]));
    for (const bad of [() => 1, Symbol('s'), { f: () => 1 }]) {
      await expect(client.iterate('hub', bad).next()).rejects.toMatchObject({ code: ErrorCode.ENCODE });
      await expect(lastValueFrom(client.request$('hub', bad))).rejects.toMatchObject({ code: ErrorCode.ENCODE });
    }
    const iterator = client.iterate('hub', 'go');
    await expect(iterator.next()).resolves.toEqual({ value: 1, done: false });
    await expect(iterator.next()).rejects.toMatchObject({ code: ErrorCode.REMOTE, remoteCode: ErrorCode.ENCODE });
    expect(client.stats().pendingRequests).toBe(0);
  });

  it('sent as the request data of iterate and request$, echoed back', async () => {
    const { client } = await pair(kind, (m) => m.stream([m.data]));
    const iterated: unknown[] = [];
    const pushed: unknown[] = [];
    for (const value of values) {
      for await (const echoed of client.iterate('hub', value, { window: 7 })) iterated.push(echoed);
      pushed.push(await lastValueFrom(client.request$('hub', value, { window: 7 })));
    }
    expectSame(iterated, values);
    expectSame(pushed, values);
  });
});

describe.each(['tcp', 'unix'])('the responder process killed mid-stream (%s)', (kind) => {
  afterEach(killChildren);

  it('iterate, request$ and pullEach reject with ERR_IPC_PEER_DISCONNECTED, nothing pending', async () => {
    const hub = node('hub', { heartbeatInterval: 0 });
    let where: unknown[];
    if (kind === 'unix') {
      const path = socketPath();
      hub.serve('hub', path);
      await new Promise((resolve) => hub.once('listening', resolve));
      where = [path];
    } else where = [await serveTcp(hub), '127.0.0.1'];
    // The built package, as a user runs it; an endless stream for every request.
    const child = spawnNode([
      '-e',
      `const { Node } = require('./dist');
       const node = new Node('worker', { maxRetries: 0, heartbeatInterval: 0 });
       node.on('message', (m) => m.stream((function* () { for (let i = 0; ; i++) yield i; })()));
       node.connectTo('hub', ...${JSON.stringify(where)}).then(() => console.log('ready'));`,
    ]);
    await child.waitFor('ready');
    const iterator = hub.iterate<number>('worker', 'go', { window: 4 });
    await expect(iterator.next()).resolves.toEqual({ value: 0, done: false });
    const pushed = new Promise<unknown>((resolve) => {
      const values: unknown[] = [];
      hub.request$('worker', 'go', { window: 4 }).subscribe({ next: (v) => values.push(v), error: resolve, complete: () => resolve('completed') });
    });
    const pulled = lastValueFrom(pullEach(hub.iterate<number>('worker', 'go', { window: 4 }), (value) => timer(5).pipe(map(() => value)))).catch((e: unknown) => e);
    await delay(30);
    child.process.kill('SIGKILL');
    let error: unknown;
    for (let i = 0; i < 10 && error === undefined; i++) error = await iterator.next().then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCode.PEER_DISCONNECTED });
    await expect(pushed).resolves.toMatchObject({ code: ErrorCode.PEER_DISCONNECTED });
    await expect(pulled).resolves.toMatchObject({ code: ErrorCode.PEER_DISCONNECTED });
    expect(hub.stats().pendingRequests).toBe(0);
  });
});
