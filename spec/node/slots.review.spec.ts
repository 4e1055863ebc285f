import { Readable } from 'node:stream';
import { config, lastValueFrom, Observable, toArray } from 'rxjs';
import { RemoteError } from '../../src';
import { closeAll, link, node, until, type Transport } from '../helpers/net';

// Slots, streams and closes on the responder's side that a careless source or consumer could leave open.

afterEach(closeAll);

async function pair(transport: Transport) {
  const server = node('server', { heartbeatInterval: 0 });
  const client = node('client', { heartbeatInterval: 0 });
  await link(server, client, transport);
  return { server, client };
}

/** An Observable that emits 1 then ends (`complete`, or `error`) on a timer, and whose teardown throws. */
function throwingTeardown(end: 'complete' | 'error'): Observable<number> {
  return new Observable<number>((subscriber) => {
    const timer = setTimeout(() => {
      subscriber.next(1);
      if (end === 'complete') subscriber.complete();
      else subscriber.error(new Error('source failed'));
    }, 5);
    return () => {
      clearTimeout(timer);
      throw new Error('teardown failed');
    };
  });
}

describe.each(['tcp', 'link'] as Transport[])('a streamed Observable whose teardown throws, over %s', (transport) => {
  const unhandled: unknown[] = [];
  beforeEach(() => {
    unhandled.length = 0;
    config.onUnhandledError = (error) => unhandled.push(error);
  });
  afterEach(() => {
    config.onUnhandledError = null;
  });

  // Before: end() unsubscribed the source first, and the teardown's throw (an UnsubscriptionError) skipped the
  // release of the request: openStreams stayed 1 and the peer's slot held until the connection ended — a
  // close({ drain }) then waited its whole deadline for it.
  it.each(['complete', 'error'] as const)('a source that ends (%s) still frees its slot; the throw is RxJS’s to report', async (end) => {
    const { server, client } = await pair(transport);
    server.on('message', (m) => m.stream(throwingTeardown(end)));
    const answer = lastValueFrom(client.request$('server', 'go', { timeout: 2000 }).pipe(toArray()));
    if (end === 'complete') await expect(answer).resolves.toEqual([1]);
    else await expect(answer).rejects.toThrow(RemoteError);
    await until(() => unhandled.length === 1, 2000, 'the teardown error reported');
    expect(server.stats().openStreams).toBe(0);
    const started = Date.now();
    await server.close({ drain: 5000 });
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe.each(['tcp', 'link'] as Transport[])('an async generator cancelled while it awaits inside its body, over %s', (transport) => {
  // JavaScript queues an async generator's return() behind its pending next(): the library cannot run its
  // `finally` sooner. What it must do (and the README says): free the slot at once, never wait for the generator.
  it('frees the slot and closes at once; its finally runs once that await settles', async () => {
    const { server, client } = await pair(transport);
    let release!: () => void;
    const wait = new Promise<void>((resolve) => (release = resolve));
    let finalized = false;
    server.on('message', (m) =>
      m.stream(
        (async function* () {
          try {
            yield 1;
            await wait; // a query that does not come back
            yield 2;
          } finally {
            finalized = true;
          }
        })(),
      ),
    );
    const iterator = client.iterate('server', 'rows', { window: 4 });
    await expect(iterator.next()).resolves.toEqual({ value: 1, done: false });
    await until(() => server.stats().openStreams === 1, 1000, 'the stream open');
    await iterator.return!();
    await until(() => server.stats().openStreams === 0, 1000, 'the slot freed');
    expect(finalized).toBe(false);
    const started = Date.now();
    await server.close({ drain: 5000 });
    expect(Date.now() - started).toBeLessThan(2000);
    release();
    await until(() => finalized, 1000, 'the finally run');
  });
});

describe.each(['tcp', 'link'] as Transport[])('message.stream(source) called again with the source it streams, over %s', (transport) => {
  // The second call returns false (the message is answered) and released its source "as a cancelled stream's
  // would be": the very source the first call was streaming. Before, the requester got [0] and a completion from
  // the generator (returned under the stream's feet), and 'Premature close' from the Readable (destroyed).
  it.each([
    ['an async generator', () => (async function* () { for (let i = 0; i < 5; i++) yield await new Promise<number>((resolve) => setTimeout(() => resolve(i), 1)); })()],
    ['a Readable', () => Readable.from([0, 1, 2, 3, 4])],
  ])('%s: the second call returns false and the first stream goes on whole', async (_, make) => {
    const { server, client } = await pair(transport);
    const answers: boolean[] = [];
    server.on('message', (m) => {
      const source = make();
      answers.push(m.stream(source), m.stream(source));
    });
    await expect(lastValueFrom(client.request$('server', 'rows', { timeout: 2000 }).pipe(toArray()))).resolves.toEqual([0, 1, 2, 3, 4]);
    expect(answers).toEqual([true, false]);
    await until(() => server.stats().openStreams === 0, 1000, 'the stream ended');
  });

  it('another source handed to an answered message is still released (its finally runs)', async () => {
    const { server, client } = await pair(transport);
    let finalized = false;
    let answer: boolean | undefined;
    server.on('message', (m) => {
      m.stream([1, 2]);
      const late = (function* () {
        try {
          yield 1;
        } finally {
          finalized = true;
        }
      })();
      late.next();
      answer = m.stream(late);
    });
    await expect(lastValueFrom(client.request$('server', 'rows', { timeout: 2000 }).pipe(toArray()))).resolves.toEqual([1, 2]);
    expect(answer).toBe(false);
    expect(finalized).toBe(true);
  });
});
