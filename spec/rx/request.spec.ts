import { firstValueFrom, take } from 'rxjs';
import { ErrorCode, IpcTimeoutError } from '../../src';
import { request$, RequestRegistry } from '../../src/internal';
import { testScheduler } from '../helpers/marbles';

/** Delivers `value` as the answer to the request sent with `id`; returns whether anyone was waiting. */
function answer(registry: RequestRegistry, id: number, value: unknown): boolean {
  const observer = registry.take(id);
  observer?.next(value);
  observer?.complete();
  return observer !== undefined;
}

describe('request$ (marbles)', () => {
  it('sends on subscribe and emits the reply', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const registry = new RequestRegistry();
      const sent: number[] = [];
      const reply$ = request$(registry, (id) => sent.push(id), { timeout: 10 });
      expect(sent).toEqual([]); // cold: nothing sent before subscription
      cold('---r').subscribe(() => answer(registry, sent[0], 'pong'));
      expectObservable(reply$).toBe('---(a|)', { a: 'pong' });
    });
  });

  it('fails with ERR_IPC_TIMEOUT and forgets the id; the late reply is dropped', () => {
    testScheduler().run(({ cold, expectObservable, flush }) => {
      const registry = new RequestRegistry();
      const sent: number[] = [];
      const lateAnswerTaken: boolean[] = [];
      const reply$ = request$(registry, (id) => sent.push(id), { timeout: 5, label: 'Ask' });
      cold('-------r').subscribe(() => lateAnswerTaken.push(answer(registry, sent[0], 'late')));
      expectObservable(reply$).toBe('-----#', undefined, new IpcTimeoutError('Ask got no answer within 5 ms'));
      flush();
      expect(lateAnswerTaken).toEqual([false]);
      expect(registry.size).toBe(0);
    });
  });

  it('unsubscribing before the reply deregisters: the late reply is dropped', () => {
    testScheduler().run(({ cold, expectObservable, flush }) => {
      const registry = new RequestRegistry();
      const sent: number[] = [];
      const taken: boolean[] = [];
      const reply$ = request$(registry, (id) => sent.push(id), { timeout: 100 });
      cold('-----r').subscribe(() => taken.push(answer(registry, sent[0], 'late')));
      expectObservable(reply$, '^--!').toBe('----');
      flush();
      expect(taken).toEqual([false]);
      expect(registry.size).toBe(0);
    });
  });

  it('each subscription is its own request with its own id', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const registry = new RequestRegistry();
      const sent: number[] = [];
      const reply$ = request$(registry, (id) => sent.push(id), { timeout: 100 });
      cold('--a-b').subscribe({ next: (k) => answer(registry, sent[k === 'a' ? 1 : 0], `for ${k}`) });
      expectObservable(reply$).toBe('----(b|)', { b: 'for b' });
      expectObservable(reply$).toBe('--(a|)', { a: 'for a' });
    });
  });

  it('a send that throws fails the request and registers nothing', async () => {
    const registry = new RequestRegistry();
    const reply$ = request$(registry, () => {
      throw new Error('socket gone');
    }, { timeout: Infinity });
    await expect(firstValueFrom(reply$)).rejects.toThrow('socket gone');
    expect(registry.size).toBe(0);
  });

  it('the timeout error has the stable code', () => {
    expect(new IpcTimeoutError('x').code).toBe(ErrorCode.TIMEOUT);
  });
});

describe('RequestRegistry', () => {
  it('numbers ids from 1, skips pending ids and 0 on wrap-around', () => {
    const registry = new RequestRegistry();
    const noop = { next() {}, error() {}, complete() {} };
    expect(registry.register(noop)).toBe(1);
    expect(registry.register(noop)).toBe(2);
    (registry as unknown as { lastId: number }).lastId = 0xfffffffe;
    expect(registry.register(noop)).toBe(0xffffffff);
    expect(registry.register(noop)).toBe(3); // wraps past 0, 1 and 2 (pending)
  });

  it('rejectAll fails every pending request once', () => {
    const registry = new RequestRegistry();
    const errors: unknown[] = [];
    for (let i = 0; i < 3; i++) registry.register({ next() {}, complete() {}, error: (e) => errors.push(e) });
    registry.rejectAll(new Error('gone'));
    registry.rejectAll(new Error('again'));
    expect(errors.map((e) => (e as Error).message)).toEqual(['gone', 'gone', 'gone']);
    expect(registry.size).toBe(0);
  });
});

describe('request$ streams (marbles): credits, cancellation, idle timeout', () => {
  /** A fake wire: records what the requester sends, lets the test play the responder. */
  function wire() {
    const registry = new RequestRegistry();
    const log: string[] = [];
    let id = 0;
    return {
      registry,
      log,
      send: (requestId: number) => {
        id = requestId;
        log.push(`request ${requestId}`);
      },
      grant: (requestId: number, n: number) => log.push(`grant ${requestId} ${n}`),
      cancel: (requestId: number) => log.push(`cancel ${requestId}`),
      next: (value: unknown) => registry.get(id)?.next(value),
      complete: () => registry.take(id)?.complete(),
    };
  }

  it('emits each streamed value and tops up credits every half window', () => {
    testScheduler().run(({ cold, expectObservable, flush }) => {
      const w = wire();
      const values$ = request$(w.registry, w.send, { timeout: 100, window: 4, grant: w.grant, cancel: w.cancel });
      cold('-a-b-c-d-e-|').subscribe({ next: (v) => w.next(v), complete: () => w.complete() });
      expectObservable(values$).toBe('-a-b-c-d-e-|');
      flush();
      expect(w.log).toEqual(['request 1', 'grant 1 2', 'grant 1 2']);
    });
  });

  it('take(2) cancels the stream once, and later values are dropped', () => {
    testScheduler().run(({ cold, expectObservable, flush }) => {
      const w = wire();
      const values$ = request$(w.registry, w.send, { timeout: 100, window: 8, grant: w.grant, cancel: w.cancel });
      cold('-a-b-c-d|').subscribe({ next: (v) => w.next(v), complete: () => w.complete() });
      expectObservable(values$.pipe(take(2))).toBe('-a-(b|)');
      flush();
      expect(w.log).toEqual(['request 1', 'cancel 1']);
      expect(w.registry.size).toBe(0);
    });
  });

  it('idleTimeout fails a stalled stream and cancels it', () => {
    testScheduler().run(({ cold, expectObservable, flush }) => {
      const w = wire();
      const values$ = request$(w.registry, w.send, { timeout: 100, idleTimeout: 5, label: 'Feed', cancel: w.cancel });
      cold('-a 20ms b').subscribe((v) => w.next(v));
      expectObservable(values$).toBe('-a 4ms #', { a: 'a' }, new IpcTimeoutError('Feed sent no value for 5 ms'));
      flush();
      expect(w.log).toEqual(['request 1', 'cancel 1']);
    });
  });
});
