/**
 * Delay before reconnection attempt `attempt` (1, 2, 3…): exponential from `base`, capped at `cap`, with
 * "equal jitter" — a random point in the upper half — so that many clients that lost the same server do not
 * come back in the same millisecond.
 */
export function backoffDelay(attempt: number, base: number, cap: number, random: () => number = Math.random): number {
  // At most the largest finite number: a huge (finite) `retryTime` doubled with no cap (`maxRetryTime: Infinity`)
  // overflowed to Infinity, which `setLongTimeout` takes for "never": no further attempt, and no giving up either.
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt - 1, 30), Number.MAX_VALUE);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
