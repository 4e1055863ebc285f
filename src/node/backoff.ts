/**
 * Smallest base the backoff grows from, in ms. A `retryTime` below it (0: retry at once) still sets the first
 * retry; from the second on, the delay doubles from this floor. Without it, 0 doubled stays 0: a client whose
 * server is down redialled about every millisecond for ever (a refused connection on loopback fails at once).
 */
export const MIN_BACKOFF_BASE = 1;

/**
 * Delay before reconnection attempt `attempt` (1, 2, 3…): exponential from `base` (from {@link MIN_BACKOFF_BASE}
 * after the first attempt when `base` is smaller), capped at `cap`, with "equal jitter" — a random point in the
 * upper half — so that many clients that lost the same server do not come back in the same millisecond.
 */
export function backoffDelay(attempt: number, base: number, cap: number, random: () => number = Math.random): number {
  const grown = attempt === 1 ? base : Math.max(base, MIN_BACKOFF_BASE) * 2 ** Math.min(attempt - 1, 30);
  // At most the largest finite number: a huge (finite) `retryTime` doubled with no cap (`maxRetryTime: Infinity`)
  // overflowed to Infinity, which `setLongTimeout` takes for "never": no further attempt, and no giving up either.
  const ceiling = Math.min(cap, grown, Number.MAX_VALUE);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
