import { Observable, throwError, timeout as rxTimeout, type Observer, type SchedulerLike } from 'rxjs';
import { IpcTimeoutError } from '../errors';
import type { RequestRegistry } from '../node/RequestRegistry';

/** Options of {@link request$}. */
export interface RequestOptions {
  /** Milliseconds to wait for the first answer; `Infinity` waits for ever. */
  timeout: number;
  /** Scheduler of the timeout (a `TestScheduler` in marble tests). */
  scheduler?: SchedulerLike;
  /** Describes the request in the timeout error's message. */
  label?: string;
}

/**
 * A cold Observable of the answer(s) to one request. On subscribe it registers an id in `registry` and calls
 * `send(id)`; the dispatcher delivers the answer by `registry.take(id)`. Every exit — answer, timeout,
 * unsubscribe, a `send` that throws — removes the id, so a late answer finds nothing and is dropped.
 */
export function request$<T>(registry: RequestRegistry, send: (id: number) => void, options: RequestOptions): Observable<T> {
  const source = new Observable<T>((subscriber) => {
    const id = registry.register(subscriber as Observer<unknown>);
    try {
      send(id);
    } catch (error) {
      registry.remove(id);
      subscriber.error(error);
      return;
    }
    return () => registry.remove(id);
  });
  return withTimeout(source, options);
}

/** Applies the request timeout (time to the first value) with a typed `ERR_IPC_TIMEOUT` error. */
export function withTimeout<T>(source: Observable<T>, options: RequestOptions): Observable<T> {
  const ms = options.timeout;
  if (!Number.isFinite(ms)) return source;
  return source.pipe(
    rxTimeout({
      first: ms,
      scheduler: options.scheduler,
      with: () => throwError(() => new IpcTimeoutError(`${options.label ?? 'The request'} got no answer within ${ms} ms`)),
    }),
  );
}
