/**
 * The RxJS functions that only some paths use — streamed answers, `pullEach`, `stats$`, timeouts on an RxJS
 * scheduler — loaded on their first call, so that `require('ipc-link-core')` loads ~25 of RxJS's modules, not ~60
 * (issue 13: a forked child's first reply is mostly module loading). Each is the very function RxJS exports, from
 * the same module file as the user's `require('rxjs')` re-exports; `defer` is RxJS's own three lines with
 * `innerFrom` loaded on subscribe.
 */
import type { Observable, ObservableInput, ObservedValueOf, SchedulerLike } from 'rxjs';
import { Observable as RxObservable } from 'rxjs/internal/Observable';

/** `load()`'s function, loaded on the first call. */
function lazy<F extends (...args: never[]) => unknown>(load: () => F): F {
  let loaded: F | undefined;
  return ((...args: Parameters<F>) => (loaded ??= load())(...args)) as F;
}

export const innerFrom = lazy(() => (require('rxjs/internal/observable/innerFrom') as typeof import('rxjs/internal/observable/innerFrom')).innerFrom);
export const from = lazy(() => (require('rxjs/internal/observable/from') as typeof import('rxjs/internal/observable/from')).from);
export const timer = lazy(() => (require('rxjs/internal/observable/timer') as typeof import('rxjs/internal/observable/timer')).timer);
export const throwError = lazy(() => (require('rxjs/internal/observable/throwError') as typeof import('rxjs/internal/observable/throwError')).throwError);
export const map = lazy(() => (require('rxjs/internal/operators/map') as typeof import('rxjs/internal/operators/map')).map);
export const takeUntil = lazy(() => (require('rxjs/internal/operators/takeUntil') as typeof import('rxjs/internal/operators/takeUntil')).takeUntil);
export const timeout = lazy(() => (require('rxjs/internal/operators/timeout') as typeof import('rxjs/internal/operators/timeout')).timeout);

/** RxJS's `asyncScheduler`. */
export function asyncScheduler(): SchedulerLike {
  return (require('rxjs/internal/scheduler/async') as typeof import('rxjs/internal/scheduler/async')).asyncScheduler;
}

/** RxJS's `defer`: `factory` runs on each subscribe, and what it returns is subscribed to. */
export function defer<R extends ObservableInput<unknown>>(factory: () => R): Observable<ObservedValueOf<R>> {
  return new RxObservable<ObservedValueOf<R>>((subscriber) => {
    innerFrom(factory()).subscribe(subscriber);
  });
}
