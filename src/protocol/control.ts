/**
 * The bodies of control frames, laid out and read in one place (PROTOCOL.md, "Frame types"): HANDSHAKE (hello
 * and acknowledgements), CLOSE, ERROR and STREAM_ERROR, REQUEST_N, and the WINDOW prefix of a receptive MESSAGE. Pure: no sockets, timers or RxJS. Readers throw {@link ProtocolError} on a malformed body,
 * except {@link readError}, which tolerates one (a failure must reach the requester whatever its shape).
 */
import { ErrorCode, HandshakeError, ProtocolError } from '../errors';
import { Encoding, FrameFlags, FrameType, HANDSHAKE_MAX_FRAME_SIZE, MAX_NAME_LENGTH, MAX_PAYLOAD_LENGTH, MIN_FRAME_SIZE, NAME_CONTROL_CHARACTERS, NAME_LONE_SURROGATE, PROTOCOL_VERSION } from './constants';
import type { Frame } from './Frame';
import type { OutgoingFrame } from './FrameEncoder';
import { oversized } from './Serializer';

// ─── JSON bodies (HANDSHAKE, CLOSE, ERROR, STREAM_ERROR) ───────────────────────────────────────────────

/** A control frame of `type` whose payload is `body` as UTF-8 JSON. */
export function jsonFrame(type: number, id: number, body: unknown): OutgoingFrame {
  return { type, flags: 0, id, encoding: Encoding.JSON, payload: Buffer.from(JSON.stringify(body), 'utf8') };
}

/**
 * Reads the JSON body of a control frame, of at most `limit` bytes (default 16 KiB: a CLOSE or HANDSHAKE body
 * never needs more, and the size is checked before parsing costs anything).
 * @throws ProtocolError when it is larger, or not a JSON object.
 */
export function readJson(frame: Frame, limit = HANDSHAKE_MAX_FRAME_SIZE): Record<string, unknown> {
  if (frame.payload.length > limit) {
    throw new ProtocolError(ErrorCode.PROTOCOL, `Control frame (type 0x${frame.type.toString(16)}) of ${frame.payload.length} bytes: at most ${limit} are allowed`);
  }
  try {
    const body: unknown = JSON.parse(frame.payload.toString('utf8'));
    if (body !== null && typeof body === 'object' && !Array.isArray(body)) return body as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new ProtocolError(ErrorCode.PROTOCOL, `Malformed control frame (type 0x${frame.type.toString(16)}): expected a JSON object`);
}

// ─── HANDSHAKE ─────────────────────────────────────────────────────────────────────────────────────────

/** Protocol name carried in every hello. */
export const PROTOCOL_NAME = 'ipc-link-core';

/** Longest instance id a hello may carry. */
export const MAX_INSTANCE_LENGTH = 64;

/** Body of the HANDSHAKE frames that carry an identity (steps 1 and 2). */
export interface HelloBody {
  protocol: string;
  version: number;
  name: string;
  /** Largest payload this side accepts after the handshake: the peer never sends a larger one. */
  maxFrameSize: number;
  /**
   * The node's instance id (optional): tells apart nodes of one name, and lets a node that comes back take its
   * stale connection over instead of being refused as a twin. At most {@link MAX_INSTANCE_LENGTH} characters.
   */
  instance?: string;
  /**
   * Client: the token the server gave this node's previous connection to it (see {@link AckBody.resume}): with its
   * instance id, it lets the server drop that connection as stale instead of refusing this one as a twin.
   */
  resume?: string;
  /** With authentication: this side's fresh random nonce (base64). */
  nonce?: string;
}

/** Body of the HANDSHAKE frames that acknowledge (steps 3 and 4). */
export interface AckBody {
  /** With authentication: HMAC proving this side knows the secret (base64) — the client's in step 3, the server's in step 4. */
  proof?: string;
  /**
   * Server (step 4): a fresh random token for this connection, known only to the two ends. A client coming back
   * with the same instance id must show it to take this connection over: the instance id alone is no proof (every
   * node it connects to sees it).
   */
  resume?: string;
}

/** Longest resume token a hello may carry (longer ones are ignored). */
const MAX_RESUME_LENGTH = 64;

/** A HANDSHAKE frame of `step` (carried in the id field) with `body`. */
export function handshakeFrame(step: number, body: HelloBody | AckBody): OutgoingFrame {
  return jsonFrame(FrameType.HANDSHAKE, step, body);
}

/**
 * Reads a hello (steps 1 and 2): same protocol and version as ours, a name, a valid `maxFrameSize`; `nonce` only
 * when it is a string (a proof in a hello is ignored: proofs travel in steps 3 and 4).
 * @throws ProtocolError when the body is not a JSON object of at most 16 KiB; HandshakeError
 *   (`ERR_IPC_HANDSHAKE`) when a field is wrong.
 */
export function readHello(frame: Frame): HelloBody {
  const body = readJson(frame);
  if (body.protocol !== PROTOCOL_NAME || body.version !== PROTOCOL_VERSION) {
    throw new HandshakeError(
      ErrorCode.HANDSHAKE,
      `The peer speaks ${String(body.protocol)} version ${String(body.version)}; this node speaks ${PROTOCOL_NAME} version ${PROTOCOL_VERSION}`,
    );
  }
  if (typeof body.name !== 'string' || body.name.length === 0) {
    throw new HandshakeError(ErrorCode.HANDSHAKE, 'The peer announced no name');
  }
  // It appears in our errors and events: no longer than a name of ours may be.
  if (body.name.length > MAX_NAME_LENGTH) {
    throw new HandshakeError(ErrorCode.HANDSHAKE, `The peer announced a name of ${body.name.length} characters (at most ${MAX_NAME_LENGTH})`);
  }
  if (NAME_CONTROL_CHARACTERS.test(body.name)) {
    throw new HandshakeError(ErrorCode.HANDSHAKE, `The peer announced a name with control characters: ${JSON.stringify(body.name)}`);
  }
  if (NAME_LONE_SURROGATE.test(body.name)) {
    throw new HandshakeError(ErrorCode.HANDSHAKE, `The peer announced a name with a lone surrogate: ${JSON.stringify(body.name)}`);
  }
  const limit = body.maxFrameSize;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < MIN_FRAME_SIZE || limit > MAX_PAYLOAD_LENGTH) {
    throw new HandshakeError(
      ErrorCode.HANDSHAKE,
      `The peer announced no valid maxFrameSize (a whole number from ${MIN_FRAME_SIZE} to ${MAX_PAYLOAD_LENGTH}; received ${JSON.stringify(limit)})`,
    );
  }
  const instance = body.instance;
  if (instance !== undefined && (typeof instance !== 'string' || instance.length === 0 || instance.length > MAX_INSTANCE_LENGTH)) {
    throw new HandshakeError(ErrorCode.HANDSHAKE, `The peer announced an invalid instance id (a string of 1 to ${MAX_INSTANCE_LENGTH} characters)`);
  }
  return {
    protocol: PROTOCOL_NAME,
    version: PROTOCOL_VERSION,
    name: body.name,
    maxFrameSize: limit,
    instance,
    resume: resumeOrNot(body.resume),
    nonce: stringOrNot(body.nonce),
  };
}

/**
 * Reads an acknowledgement (steps 3 and 4): `proof` only when it is a string, `resume` only when it is a string of
 * 1 to 64 characters.
 * @throws ProtocolError when the body is not a JSON object of at most 16 KiB.
 */
export function readAck(frame: Frame): AckBody {
  const body = readJson(frame);
  return { proof: stringOrNot(body.proof), resume: resumeOrNot(body.resume) };
}

function stringOrNot(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function resumeOrNot(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_RESUME_LENGTH ? value : undefined;
}

// ─── CLOSE ─────────────────────────────────────────────────────────────────────────────────────────────

/** Body of a CLOSE frame. */
export interface CloseBody {
  /** An error code (`ERR_IPC_…`) saying why. */
  code: string;
  /** Human-readable reason. */
  message: string;
  /** Whether the receiver may reconnect later. */
  reconnect: boolean;
}

/**
 * A CLOSE frame carrying `body`, of at most `MIN_FRAME_SIZE` bytes so that any peer takes it: a longer message (one
 * quoting a peer's name of control characters, 6 bytes each in JSON) is cut until it fits.
 */
export function closeFrame(body: CloseBody): OutgoingFrame {
  const payload = shortened(body.message, MIN_FRAME_SIZE, (message) => json({ ...body, message }));
  return { type: FrameType.CLOSE, flags: 0, id: 0, encoding: Encoding.JSON, payload };
}

/**
 * `build(message)`, with `message` cut in half until the bytes fit `limit` (down to no message at all): JSON takes
 * 1 to 6 bytes a character (a control character is `\u0001`), so no count of characters fits every text.
 */
function shortened(message: string, limit: number, build: (message: string) => Buffer): Buffer {
  let bytes = build(message);
  for (let keep = message.length; bytes.length > limit && keep > 0; ) {
    keep = Math.floor(keep / 2);
    bytes = build(message.slice(0, keep));
  }
  return bytes;
}

/**
 * Reads a CLOSE frame's body (at most 16 KiB), tolerating missing fields.
 * @throws ProtocolError when it is larger, or not a JSON object.
 */
export function readClose(frame: Frame): CloseBody {
  const body = readJson(frame);
  return {
    code: typeof body.code === 'string' ? body.code : ErrorCode.CLOSED,
    message: typeof body.message === 'string' ? body.message : 'the peer closed the connection',
    reconnect: body.reconnect !== false,
  };
}

// ─── ERROR and STREAM_ERROR ────────────────────────────────────────────────────────────────────────────

/** Body of an ERROR or STREAM_ERROR frame: what a `RemoteError` is built from. */
export interface ErrorBody {
  /** `name` of the error on the responder's side. */
  name: string;
  message: string;
  /** Its `code`, when it had a string one. */
  code?: string;
  /** Its stack, when the responder exposes stacks. */
  stack?: string;
}

/** Names and codes are cut to this many characters when the body must shrink. */
const ERROR_NAME_LENGTH = 64;

/**
 * An ERROR or STREAM_ERROR body as JSON bytes of at most `limit` bytes (the peer's `maxFrameSize`), shortened
 * until it fits: without the stack, then with name and code cut to 64 characters and the message cut in half until
 * it fits, and at last `{name: 'Error', code}` alone. Any `limit` ≥ `MIN_FRAME_SIZE` (1024) fits the last form.
 */
export function encodeError(body: ErrorBody, limit: number): Buffer {
  let bytes = json(body);
  if (bytes.length <= limit) return bytes;
  bytes = json({ ...body, stack: undefined });
  if (bytes.length <= limit) return bytes;
  const name = body.name.slice(0, ERROR_NAME_LENGTH);
  const code = body.code?.slice(0, ERROR_NAME_LENGTH);
  bytes = shortened(body.message, limit, (message) => json({ name, code, message }));
  return bytes.length <= limit ? bytes : json({ name: 'Error', code, message: '' });
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/**
 * An error's `code` as ERROR / STREAM_ERROR bodies carry it: a string as it is, a finite number (a gRPC status, an
 * HTTP status — ours or a peer's in another language) as its decimal string, anything else none. Both ways.
 */
export function errorCode(code: unknown): string | undefined {
  return typeof code === 'string' ? code : typeof code === 'number' && Number.isFinite(code) ? String(code) : undefined;
}

/**
 * Reads an ERROR or STREAM_ERROR body. Tolerant: missing fields get defaults, and a body that is not a JSON
 * object reads as "The request failed (unreadable error reply)".
 * @throws ProtocolError `ERR_IPC_FRAME_TOO_LARGE` when the body is over `maxDecodedSize` (it is not parsed).
 */
export function readError(frame: Frame, maxDecodedSize: number): ErrorBody {
  const tooLarge = oversized(Encoding.JSON, frame.payload.length, maxDecodedSize);
  if (tooLarge) throw tooLarge;
  let body: Record<string, unknown>;
  try {
    body = readJson(frame, maxDecodedSize);
  } catch {
    return { name: 'Error', message: 'The request failed (unreadable error reply)' };
  }
  return {
    name: text(body.name, 'Error'),
    message: text(body.message, 'The request failed'),
    code: errorCode(body.code),
    stack: typeof body.stack === 'string' ? body.stack : undefined,
  };
}

/**
 * `value` as text for an error body's name or message, `fallback` when it is missing or cannot be made text. A
 * peer's JSON may hold anything there: `String()` of `{"toString":1}` throws a TypeError, and of an array nested
 * 100,000 deep a RangeError, which reached the requester instead of a `RemoteError` with its `code`.
 */
function text(value: unknown, fallback: string): string {
  if (value === undefined || value === null) return fallback;
  try {
    return String(value);
  } catch {
    return fallback;
  }
}

// ─── REQUEST_N and the WINDOW of a receptive MESSAGE (u32 credits) ────────────────────────────────────

/** Size of a credit count on the wire (a u32): a REQUEST_N body, and the WINDOW prefix of a MESSAGE. */
export const WINDOW_SIZE = 4;
/** The most credits one u32 can grant. */
const MAX_CREDITS = 0xffff_ffff;

/** A REQUEST_N body granting `n` more values (at most 2³²−1; more is capped). */
export function encodeRequestN(n: number): Buffer {
  const payload = Buffer.allocUnsafe(WINDOW_SIZE);
  payload.writeUInt32BE(Math.min(n, MAX_CREDITS), 0);
  return payload;
}

/**
 * The credits a REQUEST_N grants.
 * @throws ProtocolError when its body is not exactly 4 bytes.
 */
export function readRequestN(frame: Frame): number {
  if (frame.payload.length !== WINDOW_SIZE) throw notU32('REQUEST_N', frame);
  return frame.payload.readUInt32BE(0);
}

/**
 * Writes a MESSAGE's WINDOW (the initial credits, u32) at `offset` of `target`, where the writer puts it between
 * the header and the value (which is not copied for it); returns the bytes taken ({@link WINDOW_SIZE}).
 */
export function putWindow(target: Buffer, offset: number, credits: number): number {
  target.writeUInt32BE(credits, offset);
  return WINDOW_SIZE;
}

/**
 * Reads a MESSAGE with the `WINDOW` flag: its initial credits, and its value's payload (a view, not a copy).
 * @throws ProtocolError when it is not RECEPTIVE, or shorter than 4 bytes.
 */
export function readWindow(frame: Frame): { credits: number; value: Buffer } {
  if ((frame.flags & FrameFlags.RECEPTIVE) === 0) throw new ProtocolError(ErrorCode.PROTOCOL, 'A MESSAGE with WINDOW must be RECEPTIVE');
  if (frame.payload.length < WINDOW_SIZE) throw notU32('A MESSAGE with WINDOW', frame);
  return { credits: frame.payload.readUInt32BE(0), value: frame.payload.subarray(WINDOW_SIZE) };
}

function notU32(what: string, frame: Frame): ProtocolError {
  return new ProtocolError(ErrorCode.PROTOCOL, `${what} carries a u32, received ${frame.payload.length} bytes`);
}
