import type { Observable, ObservableInput, Subscription } from 'rxjs';
import { Observable as RxObservable } from 'rxjs/internal/Observable';
import { Subject } from 'rxjs/internal/Subject';
import { from, takeUntil } from './lazy';

/**
 * `concatMap` over an `AsyncIterable` that pulls the next value only once the previous value's work completed:
 * RxJS operators and backpressure together. `from(iterable).pipe(concatMap(work))` is *not* bounded — `from`
 * drains the iterator as fast as it yields and `concatMap` buffers — while `pullEach(iterable, work)` holds one
 * value at a time, so a pulled source (`node.iterate(…)`) runs at most its window ahead of `work`.
 * Unsubscribing returns the iterator (for `node.iterate`: CANCEL to the responder) and unsubscribes the work in
 * progress — also from inside a value that work emits synchronously (`take(1)` downstream). An error of `work`
 * (thrown, rejected, or not an `ObservableInput`) or of the iterator (a rejecting or throwing `next()`, a result
 * that is not an object) errors the Observable, and the iterator is returned. Being pulled, the source reports
 * its own failure (a `RemoteError`, a lost connection) at the next pull: once the work in progress completed.
 *
 * An iterator is single-use — `node.iterate(…)`, an async generator: its `[Symbol.asyncIterator]()` is itself.
 * Subscribing again to a `pullEach` over one (`retry`, `repeat`, a second subscriber) errors with a `TypeError`
 * instead of completing empty (a `retry` swallowed the error and the values never sent) or splitting the values
 * between two subscribers: make a new request per subscription, `defer(() => pullEach(node.iterate(…), work))`.
 *
 * @example
 * pullEach(node.iterate('db', 'rows', { window: 16 }), (row) => from(store(row))).pipe(count()).subscribe(…);
 */
export function pullEach<T, R>(source: AsyncIterable<T>, work: (value: T, index: number) => ObservableInput<R>): Observable<R> {
  /** The iterator the latest subscription took: one that comes again is single-use, and taken already. */
  let taken: AsyncIterator<T> | null = null;
  return new RxObservable<R>((subscriber) => {
    const iterator = source[Symbol.asyncIterator]();
    if (iterator === taken) {
      const what = 'pullEach(iterable, work): the iterable is single-use (an iterator, e.g. node.iterate(…) or an async generator) and an earlier subscription took it';
      subscriber.error(new TypeError(`${what}; to subscribe again (retry, repeat, a second subscriber), make a new one each time: defer(() => pullEach(node.iterate(…), work))`));
      return;
    }
    taken = iterator;
    /** Emits when the subscriber leaves: stops the work in progress even while it emits synchronously. */
    const left$ = new Subject<void>();
    let current: Subscription | null = null;
    let index = 0;
    let left = false;
    const fail = (error: unknown): void => {
      if (!left) subscriber.error(error);
    };
    const step = (result: IteratorResult<T>): void => {
      if (left) return;
      if (result === null || typeof result !== 'object') return fail(new TypeError(`The iterator's next() resolved with ${String(result)}, not an object`));
      if (result.done) return subscriber.complete();
      let inner;
      try {
        inner = from(work(result.value, index++));
      } catch (error) {
        return fail(error);
      }
      current = inner.pipe(takeUntil(left$)).subscribe({
        next: (value) => subscriber.next(value),
        error: fail,
        complete: () => {
          current = null;
          pull();
        },
      });
    };
    const pull = (): void => {
      if (left) return;
      let next;
      try {
        // Promise.resolve: an iterator whose next() returns a plain result works, as with `for await`.
        next = Promise.resolve(iterator.next());
      } catch (error) {
        return fail(error);
      }
      next.then(step, fail);
    };
    pull();
    return () => {
      left = true;
      left$.next();
      current?.unsubscribe();
      try {
        void Promise.resolve(iterator.return?.()).catch(() => undefined);
      } catch {
        // a return() that throws: we are leaving all the same
      }
    };
  });
}
