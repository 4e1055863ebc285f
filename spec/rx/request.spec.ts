import { firstValueFrom } from 'rxjs';
import { ErrorCode, IpcTimeoutError, request$, RequestRegistry } from '../../src';
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
