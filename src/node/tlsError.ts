import { TlsError } from '../errors';

/**
 * True for the errors of a TLS refusal: certificate verification, handshake alerts, TLS protocol errors — also
 * OpenSSL's `EPROTO` (a peer that does not speak TLS, or answers with an alert: "wrong version number", "alert
 * handshake failure"…).
 */
export function isTlsFailure(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  return /CERT|SSL|TLS|UNABLE_TO_|SELF_SIGNED|ERR_TLS/.test(code) || (code === 'EPROTO' && /SSL routines/.test(error.message));
}

/**
 * `error` as an `ERR_IPC_TLS` {@link TlsError} (the original kept as `cause`) when it is a TLS refusal, else null.
 * @param where who refused whom, for the message (e.g. `the connection to "hub"`).
 */
export function tlsErrorOf(error: Error, where: string): TlsError | null {
  if (error instanceof TlsError) return error;
  if (!isTlsFailure(error)) return null;
  const code = (error as NodeJS.ErrnoException).code;
  return new TlsError(`TLS refused ${where}: ${error.message}${code ? ` (${code})` : ''}`, { cause: error });
}
