import type { TLSSocket } from 'node:tls';
import { TlsError } from '../errors';
import { MAX_TIMER_DELAY } from '../limits';
import type { TlsSettings } from './transport';

/**
 * The codes of certificate verification failures (OpenSSL's `X509_V_ERR_*`, as node:tls names them) that no
 * broader pattern of {@link isTlsFailure} matches: a certificate for the wrong purpose (a client-only certificate
 * on a server), a CA certificate that is not one, a chain longer than allowed, revocation lists…
 */
const VERIFY_CODES = /^(?:INVALID_PURPOSE|INVALID_CA|PATH_LENGTH_EXCEEDED|HOSTNAME_MISMATCH|\w*CRL\w*)$/;

/** OpenSSL's errors for a peer whose bytes are no TLS records (a plain client or server, an HTTP one). */
const NOT_TLS = /wrong version number|packet length too long|http request/i;

/**
 * True for the errors of a TLS refusal: certificate verification, handshake alerts, TLS protocol errors — also
 * OpenSSL's `EPROTO` (a peer that does not speak TLS, or answers with an alert: "wrong version number", "alert
 * handshake failure"…).
 */
export function isTlsFailure(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  return (
    /CERT|SSL|TLS|UNABLE_TO_|SELF_SIGNED|ERR_TLS/.test(code) ||
    VERIFY_CODES.test(code) ||
    (code === 'EPROTO' && /SSL routines/.test(error.message))
  );
}

/**
 * `error` as an `ERR_IPC_TLS` {@link TlsError} (the original kept as `cause`) when it is a TLS refusal, else null.
 * @param where who refused whom, for the message (e.g. `the connection to "hub"`).
 */
export function tlsErrorOf(error: Error, where: string): TlsError | null {
  if (error instanceof TlsError) return error;
  if (!isTlsFailure(error)) return null;
  const code = (error as NodeJS.ErrnoException).code;
  // OpenSSL's words for bytes that are no TLS record say nothing of the usual cause: TLS on one side only.
  const plain = NOT_TLS.test(error.message) ? 'it does not speak TLS (give both nodes options.tls, or neither): ' : '';
  return new TlsError(`TLS refused ${where}: ${plain}${error.message.trim()}${code ? ` (${code})` : ''}`, { cause: error });
}

/**
 * The settings `tls.createServer` gets from a node's TLS settings. A server that demands a verified client
 * certificate (`requestCert`, `rejectUnauthorized` not false) checks it itself ({@link unverifiedClient}): with
 * TLS 1.3 the client is done with TLS before the server verifies its certificate, and node:tls then destroys the
 * socket without a word — the client saw a peer that hung up, and dialled again for ever. Checked by the node, the
 * refusal reaches the client as a CLOSE frame (`ERR_IPC_TLS`, final) before anything of it is read.
 */
export function serverTlsSettings(settings: TlsSettings): TlsSettings {
  const verified = verifiesClients(settings) ? { ...settings, rejectUnauthorized: false } : settings;
  // node:tls arms `handshakeTimeout` with socket.setTimeout, which takes finite values up to 2^31-1 ms: `Infinity`
  // (the node's own word for "none") threw a RangeError out of the server at the first client, and a longer finite
  // one drew a TimeoutOverflowWarning. The longest timer Node has stands for them (about 24.8 days: no timeout).
  const { handshakeTimeout } = verified;
  return typeof handshakeTimeout === 'number' && handshakeTimeout > MAX_TIMER_DELAY ? { ...verified, handshakeTimeout: MAX_TIMER_DELAY } : verified;
}

function verifiesClients(settings: TlsSettings | undefined): boolean {
  return settings?.requestCert === true && settings.rejectUnauthorized !== false;
}

/**
 * Why a client of a server created with {@link serverTlsSettings} must be refused: no certificate, or one that
 * failed verification; null when it may go on (or the server does not verify clients).
 */
export function unverifiedClient(settings: TlsSettings | undefined, socket: unknown): TlsError | null {
  const tlsSocket = socket as Partial<TLSSocket>;
  if (!verifiesClients(settings) || typeof tlsSocket.getPeerCertificate !== 'function' || tlsSocket.authorized === true) return null;
  const certificate = tlsSocket.getPeerCertificate();
  const code = String(tlsSocket.authorizationError ?? 'UNAUTHORIZED');
  const none = !certificate || Object.keys(certificate).length === 0;
  const why = none ? 'it sent no certificate' : `its certificate failed verification (${code})`;
  return new TlsError(`TLS refused a client: ${why}`, { cause: Object.assign(new Error(why), { code: none ? 'NO_CERTIFICATE' : code }) });
}
