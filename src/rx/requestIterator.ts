import type { Observer } from 'rxjs';
import { Fifo } from '../Fifo';
import { ErrorCode, IpcTimeoutError, ProtocolError } from '../errors';
import type { RequestRegistry } from './RequestRegistry';

/** Options of {@link requestIterator}. */
export interface RequestIteratorOptions {
  /** Credits granted up front; topped up by half of it each time the consumer has pulled that many values. */
  window: number;
  /** Ms to wait for the first value (`Infinity`: for ever). */
  timeout: number;
  /**
   * Ms to wait for each later value while the consumer waits (`Infinity`: for ever; `0`: it must come in the same
   * turn of the event loop as that `next()` call, checked on `setImmediate`).
   */
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
 * Iterators dropped without `return()`: once one is garbage-collected, its request is cancelled (registered at the
 * end of {@link requestIterator}). Best effort — GC decides when — for the careless case only (`await node.iterate(…).next()`
 * for the first value): before this, the request and the responder's stream (a database cursor…) stayed open for
 * the life of the connection, with a pending slot on each side.
 */
const dropped = new FinalizationRegistry<() => void>((abandon) => abandon());

/** A `next()` call waiting for its result. */
interface Waiter<T> {
  resolve(result: IteratorResult<T>): void;
  reject(error: unknown): void;
}

/**
 * The answer(s) to one request as an `AsyncIterableIterator`, with credits granted as the consumer *pulls*
 * (not as values arrive): the responder never runs more than `window` values ahead of the consumer, and at most
 * `window` values wait here. Nothing is sent before the first `next()`. `return()` (a `break` out of `for await`)
 * removes the request and sends CANCEL: the responder's source is torn down. The same pending table (`registry`)
 * and dispatch as `request$`.
 *
 * It behaves as an async generator would: `next()` may be called again before the previous call settled (the
 * calls settle in order, one value each); an error (remote, timeout, lost connection) rejects one `next()`, and
 * every later one resolves `done`; `return()` and `throw(error)` end it — pending `next()` calls resolve `done`,
 * `throw` rejects with `error` — and a later `next()` resolves `done`.
 */
export function requestIterator<T>(registry: RequestRegistry, send: (id: number) => void, options: RequestIteratorOptions): AsyncIterableIterator<T> {
  const half = Math.max(1, Math.floor(options.window / 2));
  // Fifos, not arrays: with a large window (up to 2³²-1 credits) Array#shift would move the whole queue per value.
  const queue = new Fifo<T>();
  const waiters = new Fifo<Waiter<T>>();
  let id = 0;
  let started = false;
  /** No value will arrive any more (answered, failed, cancelled). */
  let finished = false;
  /** Why it failed, until a `next()` reported it. */
  let failure: unknown = null;
  let consumed = 0;
  let seen = 0;
  let disarm: (() => void) | null = null;
  /** The iterator was garbage-collected: nobody can pull any more, so it stops once no `next()` waits. */
  let orphaned = false;

  const stopTimer = () => {
    disarm?.();
    disarm = null;
  };
  /** Within settle(): a value it hands out may grant credits, and over an in-memory link the next values come back at once. */
  let settling = false;
  /** Hands what is here to the waiting `next()` calls, in order; arms the timeout while some still wait. */
  const settle = () => {
    if (settling) return; // the loop below picks up what arrived meanwhile
    settling = true;
    let delivered = false;
    while (waiters.length > 0) {
      if (queue.length > 0) {
        waiters.shift()!.resolve({ value: queue.shift() as T, done: false });
        delivered = true;
        pulled();
      } else if (failure !== null) {
        const error = failure;
        failure = null;
        waiters.shift()!.reject(error);
      } else if (finished) waiters.shift()!.resolve({ value: undefined, done: true });
      else break;
    }
    settling = false;
    if (orphaned && waiters.length === 0) stop();
    if (delivered || waiters.length === 0 || finished) stopTimer();
    if (waiters.length > 0 && !finished && disarm === null) arm();
  };
  /** One value was handed to the consumer: credits follow the pulls. */
  const pulled = () => {
    // A single REPLY was already taken out of the table: nothing to grant credits for.
    if (!finished && ++consumed >= half && registry.get(id) === observer) {
      options.grant(id, consumed);
      consumed = 0;
    }
  };
  const observer: Observer<unknown> = {
    next(value) {
      seen++;
      // Credits follow the pulls, so a responder that keeps to them never has more than `window` values waiting
      // here. One that ignores them (a hostile or broken peer) made this queue grow without bound while the
      // consumer was slow (100,000 values queued for a window of 4): its request fails instead, after the values
      // that were owed (the responder is told to stop).
      if (queue.length >= options.window) {
        if (registry.take(id) !== undefined) options.cancel(id);
        finished = true;
        failure = new ProtocolError(ErrorCode.PROTOCOL, `${options.label} was sent more values than the ${options.window} credits it was granted`);
        settle();
        return;
      }
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
  /** Leaves early: the request is forgotten here and cancelled at the responder. */
  const stop = () => {
    if (started && !finished && registry.take(id) !== undefined) options.cancel(id);
    finished = true;
    queue.clear();
  };
  /** Ends it for the consumer (`return`, `throw`): what waits resolves done, nothing is reported any more. */
  const end = () => {
    stop();
    failure = null;
    settle();
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
    const expire = () => {
      disarm = null;
      stop();
      const message = seen === 0 ? `${options.label} got no answer within ${ms} ms` : `${options.label} sent no value for ${ms} ms`;
      failure = new IpcTimeoutError(message);
      settle();
    };
    // 0 is no time at all. The first answer: what did not come within send (an in-memory link answers there) is
    // late. A later value: it must come in this same turn of the event loop (checked once its I/O is handled, on
    // setImmediate), as request$ has it — expiring at once failed a stream over an in-memory link after its first
    // value, its next values being on their way in the same turn.
    if (ms === 0 && seen === 0) return expire();
    if (ms === 0) {
      const check = setImmediate(expire);
      disarm = () => clearImmediate(check);
      return;
    }
    disarm = options.schedule(expire, ms);
  };

  // Not referenced by any closure here (its methods use `this`): the registry's callback must not keep it alive.
  const iterator: AsyncIterableIterator<T> = {
    next(): Promise<IteratorResult<T>> {
      if (!started && !finished) start();
      return new Promise((resolve, reject) => {
        waiters.push({ resolve, reject });
        settle();
      });
    },
    return(): Promise<IteratorResult<T>> {
      end();
      return Promise.resolve({ value: undefined, done: true });
    },
    throw(error?: unknown): Promise<IteratorResult<T>> {
      end();
      return Promise.reject(error);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  // A `next()` still waiting (its Promise awaited, the iterator itself dropped) gets its value first.
  dropped.register(iterator, () => {
    orphaned = true;
    if (waiters.length === 0) stop();
  });
  return iterator;
}
