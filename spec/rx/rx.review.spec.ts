// Review of the RxJS surface (messages$, stats$, request$, pullEach, the scheduler option) used as RxJS users do:
// every probe here once failed. Over the in-memory link and a real TCP connection.
import { Readable } from 'node:stream';
import { asyncScheduler, defer, interval, lastValueFrom, map, of, repeat, retry, Subject, take, toArray } from 'rxjs';
import { defaultCodec, ErrorCode, pullEach, type NodeMessage } from '../../src';
import { StreamResponder } from '../../src/node/StreamResponder';
import { testScheduler } from '../helpers/marbles';
import { closeAll, delay, link, node, until, type Transport } from '../helpers/net';

afterEach(closeAll);
afterEach(() => jest.restoreAllMocks());

async function pair(kind: Transport, handle?: (m: NodeMessage) => void, clientOptions = {}) {
  const server = node('hub', { heartbeatInterval: 0 });
  const client = node('client', { heartbeatInterval: 0, ...clientOptions });
  if (handle) server.on('message', handle);
  await link(server, client, kind);
  return { server, client };
}

describe('stats$', () => {
  it('emits its first snapshot at once (synchronously, as the README says), then every second', async () => {
    const { client } = await pair('link');
    const seen: number[] = [];
    const subscription = client.stats$.subscribe((s) => seen.push(s.pendingRequests));
    expect(seen).toEqual([0]);
    subscription.unsubscribe();
    let latest: unknown = null;
    client.stats$.pipe(take(1)).subscribe((s) => (latest = s));
    const closed = client.close();
    expect(latest).toMatchObject({ pendingRequests: 0 });
    await closed;
    testScheduler().run(({ expectObservable }) => {
      const n = node('virtual', { heartbeatInterval: 0 });
      expectObservable(n.stats$.pipe(map((s) => s.framesIn), take(3))).toBe('a 999ms b 999ms (c|)', { a: 0, b: 0, c: 0 });
    });
  });

  it('any number of subscribers adds no listener to the node: no MaxListenersExceededWarning, removeAllListeners() does not keep them ticking', async () => {
    const { client } = await pair('link');
    const warn = jest.spyOn(process, 'emitWarning');
    const all = Array.from({ length: 20 }, () => lastValueFrom(client.stats$.pipe(toArray())));
    expect(client.listenerCount('close')).toBe(0);
    client.removeAllListeners();
    await client.close();
    // Every subscriber completed with close().
    expect((await Promise.all(all)).length).toBe(20);
    expect(warn).not.toHaveBeenCalled();
  });
});

describe('the scheduler option (timeouts through RxJS, virtual time)', () => {
  it('idleTimeout: 0 fails a stream whose next value is not there at once, as without a scheduler (RxJS timeout ignores each: 0)', async () => {
    for (const scheduler of [undefined, asyncScheduler]) {
      const { client } = await pair('tcp', (m) => m.stream(interval(5).pipe(take(3))), { scheduler });
      await expect(lastValueFrom(client.request$('hub', 'x', { idleTimeout: 0 }))).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
      await closeAll();
    }
    const { client } = await pair('link', (m) => m.stream(interval(10).pipe(map((i) => `v${i}`))), { scheduler: asyncScheduler });
    testScheduler().run(({ expectObservable }) => {
      const error = expect.objectContaining({ code: ErrorCode.TIMEOUT, message: 'The request to "hub" sent no value for 0 ms' });
      expectObservable(client.request$('hub', 'x', { idleTimeout: 0 })).toBe('10ms (a#)', { a: 'v0' }, error);
      expectObservable(client.request$('hub', 'x', { timeout: Infinity, idleTimeout: 0 })).toBe('10ms (a#)', { a: 'v0' }, error);
    });
  });
});

describe.each<Transport>(['link', 'tcp'])('pullEach subscribed again (%s)', (kind) => {
  /** A responder streaming 1, 2, except that its streams number `failing` (from 1) fail after 1. */
  async function flaky(...failing: number[]) {
    let asked = 0;
    const { server, client } = await pair(kind, (m) => {
      const attempt = ++asked;
      m.stream(
        (async function* () {
          yield 1;
          if (failing.includes(attempt)) throw new Error('flaky');
          yield 2;
        })(),
      );
    });
    return { server, client, asked: () => asked };
  }

  it('retry over pullEach(node.iterate(…)) fails loudly: it completed empty, the error and the missing values swallowed', async () => {
    const { client, asked } = await flaky(1, 2);
    const values: number[] = [];
    const all = lastValueFrom(pullEach(client.iterate<number>('hub', 'x'), (v) => of(v)).pipe(retry(2), toArray()));
    await expect(all.then((v) => values.push(...v))).rejects.toThrow(/single-use.*defer/);
    expect(asked()).toBe(1);
    // The way to retry: a new request per subscription.
    await expect(lastValueFrom(defer(() => pullEach(client.iterate<number>('hub', 'x'), (v) => of(v))).pipe(retry(2), toArray()))).resolves.toEqual([1, 1, 2]);
  });

  it('repeat, or a second subscriber at once, fails too instead of splitting the values between them', async () => {
    const { server, client } = await flaky();
    await expect(lastValueFrom(pullEach(client.iterate<number>('hub', 'x'), (v) => of(v)).pipe(repeat(2), toArray()))).rejects.toThrow(/single-use/);
    const twice = pullEach(client.iterate<number>('hub', 'x'), (v) => of(v));
    const first = lastValueFrom(twice.pipe(toArray()));
    await expect(lastValueFrom(twice)).rejects.toBeInstanceOf(TypeError);
    await expect(first).resolves.toEqual([1, 2]);
    await until(() => client.stats().pendingRequests === 0 && server.stats().openStreams === 0);
  });
});

describe.each<Transport>(['link', 'tcp'])('message.stream(source) when nothing awaits the answer any more (%s)', (kind) => {
  it('releases the source as a cancellation would: a Readable is destroyed, a generator returned, an Observable never subscribed', async () => {
    const readable = new Readable({ read() {} });
    let generatorDone = false;
    const generator = (async function* () {
      try {
        yield 1;
      } finally {
        generatorDone = true;
      }
    })();
    await generator.next(); // started: its finally runs only if it is returned
    const hot = new Subject<number>();
    const outcomes: boolean[] = [];
    const { client } = await pair(kind, async (m) => {
      if (m.data === 'answered') m.reply('done');
      else await delay(30); // the requester gives up meanwhile
      outcomes.push(m.stream(readable), m.stream(generator), m.stream(hot));
    });
    await expect(lastValueFrom(client.request$('hub', 'late', { timeout: 5 }))).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
    await until(() => outcomes.length === 3);
    expect(outcomes).toEqual([false, false, false]);
    await until(() => readable.destroyed && generatorDone, 1000, 'the sources released');
    expect(hot.observed).toBe(false);
    // Already answered, or a one-way message: released too.
    const again = new Readable({ read() {} });
    client.removeAllListeners();
    const { client: other } = await pair(kind, (m) => {
      if (m.data === 'answered') m.reply('done');
      m.stream(again);
    });
    await expect(other.sendTo('hub', 'answered')).resolves.toBe('done');
    await until(() => again.destroyed, 1000, 'the Readable of an answered request destroyed');
  });
});

describe('a stream cancelled before its first pull', () => {
  it('destroys its Readable (returning the iterator of a Readable never pulled does nothing)', async () => {
    const readable = new Readable({ read() {} });
    const sink = {
      codec: defaultCodec,
      checkSize: () => undefined,
      trySendFrame: () => true,
      sendErrorIfOpen: () => undefined,
      release: () => undefined,
      tookValue: () => undefined,
      backlogged: true, // the socket is full: the first value waits for a drain
      drained: () => new Promise<void>(() => undefined),
    };
    const responder = new StreamResponder(sink, 1, 8, 8);
    responder.start(readable);
    responder.cancel();
    await until(() => readable.destroyed, 1000, 'the Readable destroyed');
  });
});
