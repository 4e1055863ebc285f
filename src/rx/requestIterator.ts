import type { Observer } from 'rxjs';
import { IpcTimeoutError } from '../errors';
import type { RequestRegistry } from './RequestRegistry';

/** Options of {@link requestIterator}. */
export interface RequestIteratorOptions {
  /** Credits granted up front; topped up by half of it each time the consumer has pulled that many values. */
  window: number;
  /** Ms to wait for the first value (`Infinity`: for ever). */
  timeout: number;
  /** Ms to wait for each later value while the consumer waits (`Infinity`: for ever). */
  idleTimeout: number;
  /** Describes the request in timeout messages. */
  label: string;
  /** Grants the responder `n` more values. */
  grant(id: number, n: number): void;
  /** Tells the responder to stop (the consumer left early). */
  cancel(id: number): void;
  /** Arms a timer; returns its disarm. */
  schedule(callback: () => void, ms: number): () => void;
}

/**
 * The answer(s) to one request as an `AsyncIterableIterator`, with credits granted as the consumer *pulls*
 * (not as values arrive): the responder never runs more than `window` values ahead of the consumer, and at most
 * `window` values wait here. Nothing is sent before the first `next()`. `return()` (a `break` out of `for await`)
 * removes the request and sends CANCEL: the responder's source is torn down. The same pending table (`registry`)
 * and dispatch as `request$`.
 */
export function requestIterator<T>(registry: RequestRegistry, send: (id: number) => void, options: RequestIteratorOptions): AsyncIterableIterator<T> {
  const half = Math.max(1, Math.floor(options.window / 2));
  const queue: T[] = [];
  let id = 0;
  let started = false;
  let finished = false;
  let failure: unknown = null;
  let consumed = 0;
  let seen = 0;
  let waiter: { resolve(result: IteratorResult<T>): void; reject(error: unknown): void } | null = null;
  let disarm: (() => void) | null = null;

  const settle = () => {
    if (!waiter) return;
    const { resolve, reject } = waiter;
    if (queue.length > 0) resolve({ value: take(), done: false });
    else if (failure !== null) reject(failure);
    else if (finished) resolve({ value: undefined, done: true });
    else return;
    waiter = null;
    disarm?.();
    disarm = null;
  };
  /** One value handed to the consumer: credits follow the pulls. */
  const take = (): T => {
    const value = queue.shift() as T;
    if (!finished && ++consumed >= half) {
      options.grant(id, consumed);
      consumed = 0;
    }
    return value;
  };
  const observer: Observer<unknown> = {
    next(value) {
      seen++;
      queue.push(value as T);
      settle();
    },
    error(error) {
      finished = true;
      failure = error;
      settle();
    },
    complete() {
      finished = true;
      settle();
    },
  };
  const stop = () => {
    if (!finished && registry.take(id) !== undefined) options.cancel(id);
    finished = true;
    queue.length = 0;
  };
  const start = () => {
    started = true;
    id = registry.register(observer);
    try {
      send(id);
    } catch (error) {
      registry.remove(id);
      finished = true;
      failure = error;
    }
  };
  const arm = () => {
    const ms = seen === 0 ? options.timeout : options.idleTimeout;
    if (!Number.isFinite(ms)) return;
    disarm = options.schedule(() => {
      disarm = null;
      stop();
      const message = seen === 0 ? `${options.label} got no answer within ${ms} ms` : `${options.label} sent no value for ${ms} ms`;
      failure = new IpcTimeoutError(message);
      settle();
    }, ms);
  };

  return {
    next(): Promise<IteratorResult<T>> {
      if (!started) start();
      if (waiter) return Promise.reject(new TypeError('next() called again before the previous one settled'));
      return new Promise((resolve, reject) => {
        waiter = { resolve, reject };
        settle();
        if (waiter) arm();
      });
    },
    return(): Promise<IteratorResult<T>> {
      if (started) stop();
      else finished = true;
      waiter?.resolve({ value: undefined, done: true });
      waiter = null;
      disarm?.();
      return Promise.resolve({ value: undefined, done: true });
    },
    throw(error?: unknown): Promise<IteratorResult<T>> {
      if (started) stop();
      finished = true;
      return Promise.reject(error);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
