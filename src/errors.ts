/**
 * Every error ipc-link-core creates is an {@link IpcError} with a stable `code`, except a wrong argument or
 * option, which is a `TypeError` naming it. Match on `code` (or `instanceof`), never on the message text.
 */

/** The stable error codes. */
export const ErrorCode = {
  /** A request got no reply within its timeout. */
  TIMEOUT: 'ERR_IPC_TIMEOUT',
  /** The target is unknown, or its connection is down (nothing is queued). */
  NOT_CONNECTED: 'ERR_IPC_NOT_CONNECTED',
  /** The peer's connection was lost while a request waited for its reply. */
  PEER_DISCONNECTED: 'ERR_IPC_PEER_DISCONNECTED',
  /**
   * A frame declared a payload larger than `maxFrameSize` (the connection closes), a value to send exceeds the
   * peer's `maxFrameSize` (that one send fails, nothing is written), or a payload that decodes into objects is
   * larger than `maxDecodedSize` (that one message fails, the connection stays up).
   */
  FRAME_TOO_LARGE: 'ERR_IPC_FRAME_TOO_LARGE',
  /**
   * The bytes received are not this protocol (bad magic, version or type, a malformed control frame), or a throw
   * while a frame was handled. A stream that ends inside a frame is `PEER_DISCONNECTED`.
   */
  PROTOCOL: 'ERR_IPC_PROTOCOL',
  /** The handshake failed or was refused (wrong name, timeout, refused by the peer). */
  HANDSHAKE: 'ERR_IPC_HANDSHAKE',
  /** Authentication failed: wrong or missing secret, or a replayed handshake. Final, never retried. */
  AUTH: 'ERR_IPC_AUTH',
  /** The peer refused us because another peer already uses our name. */
  NAME_IN_USE: 'ERR_IPC_NAME_IN_USE',
  /** The peer could not be reached within the configured retries, or this process may not connect there (EACCES/EPERM, final). */
  CONNECT: 'ERR_IPC_CONNECT',
  /** The node (or that connection) was closed on purpose. */
  CLOSED: 'ERR_IPC_CLOSED',
  /** A value could not be encoded by the codec. */
  ENCODE: 'ERR_IPC_ENCODE',
  /** A payload received could not be decoded by the codec. */
  DECODE: 'ERR_IPC_DECODE',
  /** The responder answered with an error. */
  REMOTE: 'ERR_IPC_REMOTE',
  /** A request awaiting one value (`sendTo`) was answered by a stream that completed without a value. */
  EMPTY_REPLY: 'ERR_IPC_EMPTY_REPLY',
  /** Too many requests await an answer on one connection (`maxPendingRequests`). */
  TOO_MANY_REQUESTS: 'ERR_IPC_TOO_MANY_REQUESTS',
  /** The connection's write buffer is over `maxWriteBuffer`: the peer does not read fast enough. */
  WRITE_BUFFER_FULL: 'ERR_IPC_WRITE_BUFFER_FULL',
  /** A pushed (Observable) stream got too far ahead of the requester's credits (`streamBuffer`). */
  STREAM_OVERFLOW: 'ERR_IPC_STREAM_OVERFLOW',
  /**
   * TLS refused the connection: the peer's certificate failed verification (untrusted, self-signed, wrong host,
   * expired…), the peer does not speak TLS (`EPROTO`), or a client presented none or an untrusted one. Final, never
   * retried; `cause` is Node's error.
   */
  TLS: 'ERR_IPC_TLS',
  /**
   * A transport (`NodeOptions.transport`) cannot work: its client package is not installed, or it cannot reach
   * its servers (NATS down or refusing our credentials).
   */
  TRANSPORT: 'ERR_IPC_TRANSPORT',
  /** `connectTo` a name we are already connected (or connecting) to, or `serve` twice. */
  ALREADY_CONNECTED: 'ERR_IPC_ALREADY_CONNECTED',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every error of this library. */
export class IpcError extends Error {
  /** Stable, documented error code. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/** A request timed out (`ERR_IPC_TIMEOUT`). */
export class IpcTimeoutError extends IpcError {
  constructor(message: string) {
    super(ErrorCode.TIMEOUT, message);
  }
}

/** The target is unknown or not connected (`ERR_IPC_NOT_CONNECTED`). */
export class NotConnectedError extends IpcError {
  constructor(message: string) {
    super(ErrorCode.NOT_CONNECTED, message);
  }
}

/** The peer went away while we waited for it (`ERR_IPC_PEER_DISCONNECTED`). */
export class PeerDisconnectedError extends IpcError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.PEER_DISCONNECTED, message, options);
  }
}

/**
 * Bytes that break the wire protocol (`ERR_IPC_PROTOCOL`), or a payload over a size limit
 * (`ERR_IPC_FRAME_TOO_LARGE`: above `maxFrameSize` it closes the connection, above `maxDecodedSize` it fails
 * that one message).
 */
export class ProtocolError extends IpcError {
  constructor(code: typeof ErrorCode.PROTOCOL | typeof ErrorCode.FRAME_TOO_LARGE, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** The handshake failed or was refused: `ERR_IPC_HANDSHAKE`, `ERR_IPC_AUTH` or `ERR_IPC_NAME_IN_USE`. */
export class HandshakeError extends IpcError {
  /** Whether trying again later may succeed (a name in use may be freed); other refusals are final. */
  readonly retryable: boolean;

  constructor(
    code: typeof ErrorCode.HANDSHAKE | typeof ErrorCode.AUTH | typeof ErrorCode.NAME_IN_USE,
    message: string,
    options?: { cause?: unknown; retryable?: boolean },
  ) {
    super(code, message, options);
    this.retryable = options?.retryable ?? false;
  }
}

/**
 * The peer could not be reached (`ERR_IPC_CONNECT`): retries ran out, or this process may not connect there at all
 * (`EACCES`/`EPERM`, final); `cause` holds the last socket error.
 */
export class ConnectError extends IpcError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.CONNECT, message, options);
  }
}

/**
 * TLS refused the connection (`ERR_IPC_TLS`): a certificate failed verification on either side. `cause` is the
 * error of `node:tls` (its `code`, e.g. `DEPTH_ZERO_SELF_SIGNED_CERT`, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`). Final:
 * a client does not retry.
 */
export class TlsError extends IpcError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.TLS, message, options);
  }
}

/** The node or connection was closed on purpose (`ERR_IPC_CLOSED`). */
export class ClosedError extends IpcError {
  constructor(message: string) {
    super(ErrorCode.CLOSED, message);
  }
}

/** A value could not be encoded (`ERR_IPC_ENCODE`) or a payload decoded (`ERR_IPC_DECODE`). */
export class CodecError extends IpcError {
  constructor(code: typeof ErrorCode.ENCODE | typeof ErrorCode.DECODE, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * The responder failed the request (`ERR_IPC_REMOTE`). `remoteName`, `message` and `remoteCode`
 * describe the error on the other side.
 */
export class RemoteError extends IpcError {
  /** `name` of the error thrown on the remote side. */
  readonly remoteName: string;
  /** `code` of the error on the remote side, when it had one (a number, such as a gRPC status, as its decimal string). */
  readonly remoteCode: string | undefined;
  /** The remote stack, when the responder allows it (`exposeErrorStack`). */
  readonly remoteStack: string | undefined;

  constructor(remoteName: string, message: string, remoteCode?: string, remoteStack?: string) {
    super(ErrorCode.REMOTE, message);
    this.remoteName = remoteName;
    this.remoteCode = remoteCode;
    this.remoteStack = remoteStack;
  }
}
