/**
 * Limits of the platform that every layer may need (this module imports nothing, like `errors.ts`).
 */

/**
 * The longest delay Node's timers accept: 2^31-1 ms (about 24.8 days). A longer delay given to `setTimeout` or
 * `setInterval` is silently replaced by 1 ms, so longer timers are armed in chunks of at most this much.
 */
export const MAX_TIMER_DELAY = 2 ** 31 - 1;
