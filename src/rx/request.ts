import type { MonoTypeOperatorFunction, Observable, Observer, SchedulerLike } from 'rxjs';
import { Observable as RxObservable } from 'rxjs/internal/Observable';
import { Subscriber } from 'rxjs/internal/Subscriber';
import { Subscription } from 'rxjs/internal/Subscription';
import { IpcTimeoutError } from '../errors';
import { MAX_COUNTED_DELAY, MAX_TIMER_DELAY } from '../limits';
import { asyncScheduler, throwError, timeout as rxTimeout } from './lazy';
import type { RequestRegistry } from './RequestRegistry';

/** Options of {@link request$}. */
export interface RequestOptions {
  /** Milliseconds to wait for the first answer; `Infinity` waits for ever. */
  timeout: number;
  /** Milliseconds allowed between two values of a stream (after the first); default: no limit. */
  idleTimeout?: number;
  /** Scheduler of the timeouts (a `TestScheduler` in marble tests). */
  scheduler?: SchedulerLike;
  /** Describes the request in the timeout error's message. */
  label?: string;
  /** Called when the subscriber leaves before the answer completed (unsubscribe, take(n), timeout…). */
  cancel?: (id: number) => void;
  /** Credits granted up front; `grant(id, n)` is called each time the subscriber has consumed half of them. */
  window?: number;
  grant?: (id: number, n: number) => void;
}

/**
 * A cold Observable of the answer(s) to one request. On subscribe it registers an id in `registry` and calls
 * `send(id)`; the dispatcher delivers the answer through the registry: `registry.take(id)` then next/complete
 * for a single reply, `registry.get(id)` + next per stream value and `take` at the end. Every exit — answer,
 * timeout, unsubscribe, a `send` that throws — removes the id, so a late answer finds nothing and is dropped;
 * leaving before the end calls `cancel(id)` (the node sends a CANCEL frame). Credits: `grant` tops up the
 * responder's window as values are consumed.
 */
export function request$<T>(registry: RequestRegistry, send: (id: number) => void, options: RequestOptions): Observable<T> {
  const { cancel, grant } = options;
  const half = Math.max(1, Math.ceil((options.window ?? 1) / 2));
  const source = new RxObservable<T>((subscriber) => {
    let consumed = 0;
    let id = 0;
    const observer: Observer<unknown> = {
      next(value) {
        subscriber.next(value as T);
        // A single REPLY was already taken out of the table: nothing to grant credits for.
        if (grant && !subscriber.closed && ++consumed >= half && registry.get(id) === observer) {
          grant(id, consumed);
          consumed = 0;
        }
      },
      error: (error) => subscriber.error(error),
      complete: () => subscriber.complete(),
    };
    id = registry.register(observer);
    try {
      send(id);
    } catch (error) {
      registry.remove(id);
      subscriber.error(error);
      return;
    }
    return () => {
      if (registry.take(id) !== undefined) cancel?.(id);
    };
  });
  return withTimeout(source, options);
}

/**
 * Applies the request timeouts (to the first value, and between values) with a typed `ERR_IPC_TIMEOUT`: RxJS
 * `timeout` for the first value, {@link idleAfterFirst} between values — RxJS's `each` ignores 0 (no limit at
 * all), where 0 is no time at all here, as in the node's own timeout queue.
 */
export function withTimeout<T>(source: Observable<T>, options: RequestOptions): Observable<T> {
  const first = options.timeout;
  const each = options.idleTimeout;
  const hasFirst = Number.isFinite(first);
  const hasEach = each !== undefined && Number.isFinite(each);
  if (!hasFirst && !hasEach) return source;
  const scheduler = options.scheduler ?? asyncScheduler();
  const label = options.label ?? 'The request';
  const on = (delay: number) => (delay > MAX_TIMER_DELAY ? longDelays(scheduler) : scheduler);
  let timed = source;
  if (first === 0) timed = timed.pipe(answeredAtOnce(label));
  else if (hasFirst) {
    timed = timed.pipe(
      rxTimeout({ first, scheduler: on(first), with: () => throwError(() => new IpcTimeoutError(`${label} got no answer within ${first} ms`)) }),
    );
  }
  return hasEach ? timed.pipe(idleAfterFirst(each, on(each), label)) : timed;
}

/**
 * `scheduler`, except that a delay above 2^31-1 ms is reached in steps of at most that much. RxJS's async
 * scheduler hands the delay of `timeout` to `setInterval`, which takes anything longer for 1 ms: a 25-day
 * timeout would fire at once. Each step is an ordinary action of `scheduler` (so a `TestScheduler` still drives
 * it in virtual time), the last one runs `work` itself; unsubscribing the returned Subscription cancels
 * whichever step is pending. A delay above {@link MAX_COUNTED_DELAY} (2^53-1 ms, about 285,000 years) is never,
 * as `Infinity`: nothing is scheduled (counted down, `1e300 - (2^31-1) === 1e300` made a step every 24.8 days for
 * ever), as the node's own timeout queue treats it.
 */
export function longDelays(scheduler: SchedulerLike): SchedulerLike {
  return {
    now: () => scheduler.now(),
    schedule<S>(work: Parameters<SchedulerLike['schedule']>[0], delay = 0, state?: S): Subscription {
      if (!(delay > MAX_TIMER_DELAY)) return scheduler.schedule(work as never, delay, state);
      if (delay > MAX_COUNTED_DELAY) return new Subscription();
      const steps = new Subscription();
      const step = (remaining: number): void => {
        steps.add(
          remaining > MAX_TIMER_DELAY
            ? scheduler.schedule(() => step(remaining - MAX_TIMER_DELAY), MAX_TIMER_DELAY)
            : scheduler.schedule(work as never, remaining, state),
        );
      };
      step(delay);
      return steps;
    },
  };
}

/**
 * A first `timeout` of 0, no time at all: errors with `ERR_IPC_TIMEOUT` unless a value (or the end) came within
 * `subscribe` — as an in-memory link answers. RxJS `timeout` would race a timer of about 1 ms against the reply.
 */
function answeredAtOnce<T>(label: string): MonoTypeOperatorFunction<T> {
  return (source) =>
    new RxObservable<T>((subscriber) => {
      let seen = false;
      const upstream = new Subscriber<T>({
        next(value) {
          seen = true;
          subscriber.next(value);
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      });
      subscriber.add(upstream);
      source.subscribe(upstream);
      if (!seen && !subscriber.closed) subscriber.error(new IpcTimeoutError(`${label} got no answer within 0 ms`));
    });
}

/** Errors with `ERR_IPC_TIMEOUT` when `each` ms pass between two values, counting from the first value on. */
function idleAfterFirst<T>(each: number, scheduler: SchedulerLike, label = 'The request'): MonoTypeOperatorFunction<T> {
  return (source) =>
    new RxObservable<T>((subscriber) => {
      let timer: Subscription | null = null;
      const fail = () => subscriber.error(new IpcTimeoutError(`${label} sent no value for ${each} ms`));
      // A Subscriber added to `subscriber`, not a plain observer: leaving from within next (take(1)) closes it at
      // once, so a source that emits synchronously on subscribe stops there instead of being fed to its end.
      const upstream = new Subscriber<T>({
        next(value) {
          timer?.unsubscribe();
          subscriber.next(value);
          // Again after next: a value that arrived within it (synchronously) armed a timer of its own.
          timer?.unsubscribe();
          timer = subscriber.closed ? null : scheduler.schedule(fail, each);
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      });
      subscriber.add(() => timer?.unsubscribe());
      subscriber.add(upstream);
      source.subscribe(upstream);
    });
}
