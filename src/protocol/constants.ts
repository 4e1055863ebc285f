/**
 * Wire constants of the ipc-link-core protocol. PROTOCOL.md describes the same numbers; change both together.
 */

/** First two bytes of every frame: ASCII "IL". */
export const MAGIC = 0x494c;
/** Protocol version spoken by this implementation (header byte 2). */
export const PROTOCOL_VERSION = 2;
/** Size of the fixed frame header in bytes. */
export const HEADER_SIZE = 16;
/** Largest payload length the header can express (u32). */
export const MAX_PAYLOAD_LENGTH = 0xffff_ffff;

/** Header byte 3: what a frame is. */
export const FrameType = {
  /** A message; a request when the RECEPTIVE flag is set. */
  MESSAGE: 0x01,
  /** The successful answer to a receptive MESSAGE with the same id. */
  REPLY: 0x02,
  /** The failed answer to a receptive MESSAGE with the same id (payload: JSON error description). */
  ERROR: 0x03,
  /** One step of the connection handshake (payload: JSON). */
  HANDSHAKE: 0x04,
  /** Liveness probe; answered by a PONG with the same id. */
  PING: 0x05,
  /** Answer to a PING. */
  PONG: 0x06,
  /** The sender is closing this connection (payload: JSON reason). */
  CLOSE: 0x07,
  /** One value of a streamed reply. */
  STREAM_NEXT: 0x08,
  /** The streamed reply completed. */
  STREAM_COMPLETE: 0x09,
  /** The streamed reply failed (payload: JSON error description). */
  STREAM_ERROR: 0x0a,
  /** The requester gives up on request `id` (stops its stream, frees its slot). */
  CANCEL: 0x0b,
  /** The requester grants more credits (payload: u32). */
  REQUEST_N: 0x0c,
  /**
   * The sender drains before closing: it answers the requests it has and refuses new ones (`ERR_IPC_CLOSED`);
   * send them elsewhere. Empty payload, id 0.
   */
  GOAWAY: 0x0d,
} as const;

export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Header byte 4: flag bits. */
export const FrameFlags = {
  NONE: 0,
  /** The sender of a MESSAGE awaits a REPLY or ERROR with the same id. */
  RECEPTIVE: 0x01,
  /**
   * With RECEPTIVE: the payload starts with a u32, the credits granted up front for a streamed answer (as
   * RSocket's REQUEST_STREAM carries `requestN`); the value follows. Without it the responder starts with one.
   */
  WINDOW: 0x02,
} as const;

/**
 * Header byte 5: how the payload is encoded. 0–127 belong to the built-in codecs, 128–255 are free for
 * user codecs.
 */
export const Encoding = {
  /** Raw bytes, decoded as a Buffer. */
  BUFFER: 0x00,
  /** Raw bytes, decoded as a plain Uint8Array. */
  UINT8ARRAY: 0x01,
  /** UTF-8 text, decoded as a string. */
  STRING: 0x02,
  /** An IEEE-754 float64, big-endian (8 bytes), decoded as a number. */
  NUMBER: 0x03,
  /** `node:v8` structured-clone serialization. */
  V8: 0x04,
  /** UTF-8 JSON (control frames, and the JSON codec). */
  JSON: 0x05,
  /** An Error object: its name, message, stack, cause and own properties, through `node:v8`. */
  ERROR: 0x06,
} as const;

/**
 * Longest node name, in UTF-16 code units (`name.length`), ours and the peers' alike. A name travels in the
 * handshake, whose frames are limited to 16 KiB (`HANDSHAKE_MAX_FRAME_SIZE`); 256 units are at most 1,536 bytes of
 * JSON whatever the characters, so a name that passes this check always fits.
 */
export const MAX_NAME_LENGTH = 256;

/**
 * What a node name may not contain, ours and the peers' alike: control characters (U+0000–U+001F, U+007F). A name
 * is one line of the text that the handshake's HMAC signs (PROTOCOL.md, "Authentication"): with a line feed in
 * names, two different pairs of names could sign the same text — a client named "a" that dials a server it
 * believes is "b\nc" could be passed off to a real server "c" as a client named "a\nb".
 */
export const NAME_CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

/**
 * A lone surrogate (U+D800–U+DFFF not part of a pair: with the `u` flag, a pair is one code point and does not
 * match). The HMAC signs the names as UTF-8, where every lone surrogate becomes U+FFFD: "x\uD800", "x\uDC00" and
 * "x\uFFFD" signed the same text, so a relay could pass a client named "x\uD800" off as "x\uFFFD" (and a NATS
 * subject, UTF-8 too, would merge such names). Refused in names, ours and the peers', as control characters are.
 */
export const NAME_LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Payload limit used until the handshake completes. */
export const HANDSHAKE_MAX_FRAME_SIZE = 16 * 1024;

/**
 * The smallest `maxFrameSize` a node may have (and a peer may announce): every ERROR and CLOSE body fits in it, so
 * a failure can always be told.
 */
export const MIN_FRAME_SIZE = 1024;

/** Default largest payload accepted after the handshake: 64 MiB. */
export const DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024;

/** Default largest payload decoded into objects (`maxDecodedSize`): 4 MiB (SECURITY.md: "One frame's cost"). */
export const DEFAULT_MAX_DECODED_SIZE = 4 * 1024 * 1024;
