import { inspect } from 'node:util';

/**
 * `value` as an Error: itself when it looks like one (an Error of this realm or another), else a new Error that
 * says what was thrown instead (`throw undefined`, `Promise.reject()`, `throwError(() => null)`…), so that an
 * answer can always be built from it.
 */
export function asError(value: unknown): Error {
  if (value instanceof Error) return value;
  const candidate = value as { name?: unknown; message?: unknown } | null;
  if (typeof candidate === 'object' && candidate !== null && typeof candidate.message === 'string' && typeof candidate.name === 'string') {
    return candidate as Error;
  }
  return new Error(`Failed with a value that is not an Error: ${inspect(value, { depth: 1, breakLength: Infinity }).slice(0, 200)}`);
}
