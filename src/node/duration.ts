/**
 * Timers for any duration. Node's `setTimeout`/`setInterval` take at most 2^31-1 ms (about 24.8 days): a longer
 * delay is silently replaced by 1 ms (with a `TimeoutOverflowWarning`), so a "25-day" timeout fires at once and
 * a "25-day" heartbeat ticks every millisecond. These helpers split a long delay into equal chunks of at most
 * 2^31-1 ms on one `setInterval` and act after the last chunk, so they return an ordinary `NodeJS.Timeout`
 * (`clearTimeout`/`clearInterval`, `unref` work on it as usual). Chunks are whole milliseconds, rounded up: a long
 * timer is never early, and late by less than 1 ms per 24.8 days.
 */

import { MAX_COUNTED_DELAY, MAX_TIMER_DELAY } from '../limits';

export { MAX_COUNTED_DELAY, MAX_TIMER_DELAY };

/**
 * Like `setTimeout(callback, ms)`, for any `ms` ≥ 0. Returns null (and never calls back) when `ms` is
 * `Infinity`, or above {@link MAX_COUNTED_DELAY} (2^53-1 ms, about 285,000 years: never, as `Infinity`): no timer
 * at all, nothing to clear.
 */
export function setLongTimeout(callback: () => void, ms: number): NodeJS.Timeout | null {
  if (ms > MAX_COUNTED_DELAY) return null;
  if (!(ms > MAX_TIMER_DELAY)) return setTimeout(callback, ms);
  const chunks = Math.ceil(ms / MAX_TIMER_DELAY);
  let elapsed = 0;
  const timer = setInterval(() => {
    if (++elapsed < chunks) return;
    clearInterval(timer);
    callback();
  }, chunkOf(ms, chunks));
  return timer;
}

/** Like `setInterval(callback, ms)`, for any finite `ms` > 0. */
export function setLongInterval(callback: () => void, ms: number): NodeJS.Timeout {
  if (!(ms > MAX_TIMER_DELAY)) return setInterval(callback, ms);
  const chunks = Math.ceil(ms / MAX_TIMER_DELAY);
  let elapsed = 0;
  return setInterval(() => {
    if (++elapsed < chunks) return;
    elapsed = 0;
    callback();
  }, chunkOf(ms, chunks));
}

/**
 * One of `chunks` equal whole-ms chunks of `ms`: never above {@link MAX_TIMER_DELAY}, though `ms / chunks` rounds
 * up past it for some huge durations (1e25 ms: 2^31, which Node replaces by 1 ms — a timer that ticked every
 * millisecond for ever). Cut to 2^31-1 there, the whole is early by a few parts in 10^16, never by a whole chunk.
 */
function chunkOf(ms: number, chunks: number): number {
  return Math.min(Math.ceil(ms / chunks), MAX_TIMER_DELAY);
}

/**
 * `promise`, or a rejection with `timedOut()` when it has not settled within `ms` (`Infinity`: `promise` itself).
 * The timer is cleared as soon as `promise` settles.
 */
export function within<T>(promise: Promise<T>, ms: number, timedOut: () => Error): Promise<T> {
  if (ms === Infinity) return promise;
  return new Promise<T>((resolve, reject) => {
    const timer = setLongTimeout(() => reject(timedOut()), ms);
    const settle = () => clearTimeout(timer!);
    promise.then(settle, settle);
    promise.then(resolve, reject);
  });
}

/**
 * Like {@link setLongTimeout}, for a timer that declares something lost (a timeout): `callback` runs once the I/O
 * of the turn in which the timer fired has been read (`setImmediate`, after the poll phase). Node runs due timers
 * before it polls the sockets: after the event loop was blocked past the deadline, what arrived meanwhile (the
 * awaited answer) still sits unread. While `busy()` (its connection still handles frames it read: the answer may be
 * among them), it waits on, re-checking every `every` ms, for at most `maxWait` ms (as a TimeoutQueue entry's
 * `busy()`, `MAX_CATCH_UP`). Returns the function that disarms it (timer and pending callback).
 */
export function setLongTimeoutAfterIO(callback: () => void, ms: number, busy?: () => boolean, maxWait = 0, every = 10): () => void {
  let wake: NodeJS.Immediate | null = null;
  let retry: NodeJS.Timeout | null = null;
  let since = NaN;
  const check = () => {
    wake = retry = null;
    const now = performance.now();
    if (Number.isNaN(since)) since = now;
    if (busy?.() && now - since < maxWait) {
      retry = setTimeout(() => (wake = setImmediate(check)), every);
      return;
    }
    callback();
  };
  const timer = setLongTimeout(() => (wake = setImmediate(check)), ms);
  return () => {
    if (timer !== null) clearTimeout(timer);
    if (wake !== null) clearImmediate(wake);
    if (retry !== null) clearTimeout(retry);
  };
}
