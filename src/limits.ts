/**
 * Limits of the platform that every layer may need (this module imports nothing, like `errors.ts`).
 */

/**
 * The longest delay Node's timers accept: 2^31-1 ms (about 24.8 days). A longer delay given to `setTimeout` or
 * `setInterval` is silently replaced by 1 ms, so longer timers are armed in chunks of at most this much.
 */
export const MAX_TIMER_DELAY = 2 ** 31 - 1;

/**
 * The longest delay a timer counts down: 2^53-1 ms (about 285,000 years), the last whole millisecond a double
 * holds exactly. A longer finite delay is treated as never, as `Infinity`: no timer is armed at all. Counted down
 * in 2^31-1 ms steps, such a delay did not shrink (`1e300 - (2^31-1) === 1e300`): a step every 24.8 days for ever,
 * and a timeout that never fired either way.
 */
export const MAX_COUNTED_DELAY = Number.MAX_SAFE_INTEGER;
