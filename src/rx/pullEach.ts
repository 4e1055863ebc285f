import type { Observable, ObservableInput, Subscription } from 'rxjs';
import { Observable as RxObservable } from 'rxjs/internal/Observable';
import { from } from './lazy';

/**
 * `concatMap` over an `AsyncIterable` that pulls the next value only once the previous value's work completed:
 * RxJS operators and backpressure together. `from(iterable).pipe(concatMap(work))` is *not* bounded — `from`
 * drains the iterator as fast as it yields and `concatMap` buffers — while `pullEach(iterable, work)` holds one
 * value at a time, so a pulled source (`node.iterate(…)`) runs at most its window ahead of `work`.
 * Unsubscribing returns the iterator (for `node.iterate`: CANCEL to the responder) and unsubscribes the work in
 * progress.
 *
 * @example
 * pullEach(node.iterate('db', 'rows', { window: 16 }), (row) => from(store(row))).pipe(count()).subscribe(…);
 */
export function pullEach<T, R>(source: AsyncIterable<T>, work: (value: T, index: number) => ObservableInput<R>): Observable<R> {
  return new RxObservable<R>((subscriber) => {
    const iterator = source[Symbol.asyncIterator]();
    let current: Subscription | null = null;
    let index = 0;
    let left = false;
    const pull = (): void => {
      iterator.next().then(
        ({ value, done }) => {
          if (left) return;
          if (done) return subscriber.complete();
          let inner;
          try {
            inner = from(work(value, index++));
          } catch (error) {
            return subscriber.error(error);
          }
          current = inner.subscribe({
            next: (result) => subscriber.next(result),
            error: (error: unknown) => subscriber.error(error),
            complete: () => {
              current = null;
              pull();
            },
          });
        },
        (error: unknown) => {
          if (!left) subscriber.error(error);
        },
      );
    };
    pull();
    return () => {
      left = true;
      current?.unsubscribe();
      void Promise.resolve(iterator.return?.()).catch(() => undefined);
    };
  });
}
