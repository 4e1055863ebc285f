import { CodecError, ErrorCode, ProtocolError } from '../errors';
import { Encoding } from './constants';

/** A value encoded for the wire: the header's encoding tag and the payload bytes. */
export interface EncodedPayload {
  /**
   * Encoding tag written in the frame header (0–127 built-in, 128–255 free for user codecs): an integer from 0 to
   * 255, else that message fails with `ERR_IPC_ENCODE` (it is never wrapped into a byte).
   */
  encoding: number;
  /**
   * Payload bytes, sent as they are: up to 8 KiB they are copied before `send` returns; over 8 KiB they are
   * written without a copy and must not change until the socket has taken them — after later `encode` calls too.
   * A codec that encodes into one reused buffer must return a fresh copy of a payload over 8 KiB.
   * Anything but a Uint8Array (a Buffer, or a view into a larger buffer, whose bytes alone are sent) — a string,
   * an ArrayBuffer, another typed array, a Promise of the result — fails that message with `ERR_IPC_ENCODE`.
   */
  payload: Uint8Array;
}

/**
 * Turns values into payloads and back. Pass one as `new Node(name, { codec })` to change how messages are
 * encoded; both peers must use codecs that understand each other's tags. Throwing from either method is
 * fine: the error is wrapped into an `ERR_IPC_ENCODE` / `ERR_IPC_DECODE` {@link CodecError} for that one
 * message, the connection stays up.
 *
 * @example A JSON codec, for peers written in other languages:
 * const json: Codec = {
 *   encode: (value) => ({ encoding: Encoding.JSON, payload: Buffer.from(JSON.stringify(value)) }),
 *   decode: (payload) => JSON.parse(payload.toString('utf8')),
 * };
 */
export interface Codec {
  encode(value: unknown): EncodedPayload;
  /**
   * `payload` may be a view into a larger received buffer: copy it if you keep it and mutate it. Synchronous: a
   * Promise returned (an `async decode`) fails that message with `ERR_IPC_DECODE`.
   */
  decode(payload: Buffer, encoding: number): unknown;
}

/** `node:v8`, loaded on first use: plain data, strings, numbers and bytes never need it (~3.5 ms to load). */
let v8Module: typeof import('node:v8') | undefined;
const v8 = (): typeof import('node:v8') => (v8Module ??= require('node:v8') as typeof import('node:v8'));

const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
/** Deeper than this, a value goes through structured clone (which also handles cycles). */
const JSON_MAX_DEPTH = 32;

/** Node ≥ 20 has `String.prototype.isWellFormed`; older engines fall back to this pattern. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const nativeWellFormed = (String.prototype as { isWellFormed?: () => boolean }).isWellFormed;

/** Whether UTF-8 carries `text` exactly: false when it holds a lone surrogate (UTF-8 would make it U+FFFD). */
export function isWellFormed(text: string): boolean {
  return nativeWellFormed === undefined ? !LONE_SURROGATE.test(text) : nativeWellFormed.call(text);
}

/**
 * Whether `JSON.parse(JSON.stringify(value))` gives `value` back exactly: null, booleans, strings, finite
 * numbers other than -0, dense arrays and plain objects of those. Anything else (undefined, NaN, -0, bigint,
 * Date, Map, class instances, typed arrays, holes, arrays with extra enumerable properties, cycles or very deep
 * nesting) is left to structured clone. Strings may hold lone surrogates (JSON escapes them as `\udXXX`).
 * Neither JSON nor structured clone sends symbol keys, non-enumerable properties or accessors (a getter's value
 * is sent as a plain property); an own `"__proto__"` key stays an own key on both paths.
 */
function jsonExact(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return exactNumber(value);
    case 'object':
      return value === null || exactContainer(value, 0);
    default:
      return false;
  }
}

/** A finite number other than -0 (`x - x` is 0 for finite numbers only; JSON writes -0 as 0). */
function exactNumber(value: number): boolean {
  return value - value === 0 && (value !== 0 || 1 / value > 0);
}

/**
 * {@link jsonExact} for an object or array found at `depth`. The checks of leaves are written out in the loops
 * below (no call per leaf): about 30% faster than one recursive call per value, for the same answer.
 */
function exactContainer(value: object, depth: number): boolean {
  if (depth >= JSON_MAX_DEPTH) return false;
  if (Array.isArray(value)) return exactArray(value, depth);
  const proto = Object.getPrototypeOf(value);
  return (proto === Object.prototype || proto === null) && exactProperties(value as Record<string, unknown>, depth);
}

function exactProperties(object: Record<string, unknown>, depth: number): boolean {
  for (const key in object) {
    const item = object[key];
    if (typeof item === 'string' || typeof item === 'boolean' || item === null) continue;
    if (typeof item === 'number') {
      if (exactNumber(item)) continue;
      return false;
    }
    if (typeof item !== 'object' || !exactContainer(item, depth + 1)) return false;
  }
  return true;
}

function exactArray(array: unknown[], depth: number): boolean {
  if (Object.getPrototypeOf(array) !== Array.prototype) return false;
  const length = array.length;
  for (let i = 0; i < length; i++) {
    const item = array[i];
    if (typeof item === 'string' || typeof item === 'boolean' || item === null) continue;
    if (typeof item === 'number') {
      if (exactNumber(item)) continue;
      return false;
    }
    // undefined (an element or a hole) would arrive as null.
    if (typeof item !== 'object' || !(i in array) || !exactContainer(item, depth + 1)) return false;
  }
  // Any key beyond the indices is an extra property (`a.extra = 1`) that JSON would drop — or the count of an
  // array with holes, whose elements read undefined and were refused above.
  return Object.keys(array).length === length;
}

const STANDARD_ERRORS: Record<string, ErrorConstructor> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

interface ErrorRecord {
  name: string;
  /** `error.message` as read: not always a string (`e.message = undefined`, `= 42`). */
  message: unknown;
  stack: string | undefined;
  cause: unknown;
  /** Whether the error has a cause, even `undefined` (`new Error(m, { cause: undefined })`); absent: `cause !== undefined`. */
  hasCause?: boolean;
  props: Record<string, unknown>;
  /** An AggregateError's `errors` (an own non-enumerable array); absent otherwise (older peers never send it). */
  errors?: unknown[];
}

function errorToRecord(error: Error): ErrorRecord {
  const props: Record<string, unknown> = {};
  // Defined, not assigned: assigning an own "__proto__" key would set the record's prototype and drop the key.
  // An enumerable cause (`error.cause = x`) is one of them too, in its place (also sent as `cause`, for older peers;
  // structured clone sends the one object once).
  for (const key of Object.keys(error)) defineValue(props, key, (error as unknown as Record<string, unknown>)[key]);
  const { cause } = error;
  const record: ErrorRecord = { name: error.name, message: error.message, stack: error.stack, cause, hasCause: cause !== undefined || Object.hasOwn(error, 'cause'), props };
  // Not enumerable, so not among the props: without this an AggregateError (Promise.any) arrived without its errors.
  const { errors } = error as { errors?: unknown };
  if (Array.isArray(errors) && Object.hasOwn(error, 'errors') && !Object.hasOwn(props, 'errors')) record.errors = errors;
  return record;
}

function recordToError(record: ErrorRecord): Error {
  // Own keys only: a name such as "constructor" or "__proto__" must not pick up Object.prototype's members.
  const Ctor = Object.hasOwn(STANDARD_ERRORS, record.name) ? STANDARD_ERRORS[record.name] : Error;
  const props = record.props ?? {};
  // An enumerable cause is among the props (defined there, in its place); a cause given to the constructor is not.
  const hasCause = !Object.hasOwn(props, 'cause') && (record.hasCause ?? record.cause !== undefined);
  const options = hasCause ? { cause: record.cause } : undefined;
  const { errors } = record;
  const message = record.message as string | undefined;
  const error = Array.isArray(errors) && record.name === 'AggregateError' ? new AggregateError(errors, message, options) : new Ctor(message, options);
  // The constructor turns a message into a string, and leaves none for undefined: a message set after construction
  // (`e.message = undefined`, `= 42`) arrived as "" or "42". Defined as sent, own and non-enumerable as the
  // constructor's (an enumerable one is among the props).
  if (!Object.is(error.message, record.message)) {
    Object.defineProperty(error, 'message', { value: record.message, writable: true, configurable: true });
  }
  if (Array.isArray(errors) && !Object.hasOwn(error, 'errors')) {
    Object.defineProperty(error, 'errors', { value: errors, writable: true, configurable: true });
  }
  // An own enumerable name (`this.name = …` in a subclass) is one of the props, defined below in its place among
  // them: defined here first, it would come first in Object.keys.
  if (error.name !== record.name && !Object.hasOwn(props, 'name')) {
    Object.defineProperty(error, 'name', { value: record.name, writable: true, configurable: true });
  }
  Object.defineProperty(error, 'stack', { value: record.stack, writable: true, configurable: true });
  // Defined, not assigned: an own "__proto__" property stays a property and never swaps the prototype.
  for (const [key, value] of Object.entries(props)) defineValue(error, key, value);
  return error;
}

function defineValue(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

/**
 * A payload on its way to the writer: bytes, or — from a Serializer with its own `encode` only — text (a
 * well-formed string of at most {@link TEXT_LIMIT} characters) that the writer encodes as UTF-8 straight into its
 * buffer, without a Buffer of its own in between (bench/README.md, "Text straight into the slab").
 */
export interface WirePayload {
  encoding: number;
  payload: Uint8Array | string;
}

/**
 * Longest text handed to the writer as a string: its UTF-8 (at most 3 bytes a character) stays within the
 * writer's packing limit (`PACK_LIMIT`, 8 KiB), so text is always copied next to its header, never sent apart.
 */
export const TEXT_LIMIT = 2730;

/** `text` itself (for the writer to encode) when `asText` and at most TEXT_LIMIT characters long, else its UTF-8 bytes. */
function utf8(text: string, asText: boolean): Uint8Array | string {
  return asText && text.length <= TEXT_LIMIT ? text : Buffer.from(text, 'utf8');
}

/** The default codec's encoding of `value` (see {@link Serializer}); text as a string when `asText` (see WirePayload). */
function encodeDefault(value: unknown, asText: boolean): WirePayload {
  switch (typeof value) {
    case 'string':
      // A lone surrogate would arrive as U+FFFD through UTF-8: structured clone keeps it.
      if (!isWellFormed(value)) break;
      return { encoding: Encoding.STRING, payload: utf8(value, asText) };
    case 'number': {
      const payload = Buffer.allocUnsafe(8);
      payload.writeDoubleBE(value, 0);
      return { encoding: Encoding.NUMBER, payload };
    }
    case 'boolean':
      return { encoding: Encoding.JSON, payload: value ? TRUE : FALSE };
    case 'object':
      if (value instanceof Uint8Array) {
        if (Buffer.isBuffer(value)) return { encoding: Encoding.BUFFER, payload: value };
        if (value.constructor === Uint8Array) return { encoding: Encoding.UINT8ARRAY, payload: value };
      } else if (value instanceof Error) {
        return { encoding: Encoding.ERROR, payload: v8().serialize(errorToRecord(value)) };
      } else if (jsonExact(value)) {
        // Plain data that JSON carries exactly: about twice as fast as structured clone, both ways. (JSON.stringify
        // escapes lone surrogates: its text is always well-formed.)
        return { encoding: Encoding.JSON, payload: utf8(JSON.stringify(value), asText) };
      }
  }
  return { encoding: Encoding.V8, payload: v8().serialize(value) };
}

/**
 * The default codec. Fast paths, sent without structured clone: `Buffer` (sent as is, decoded as a Buffer),
 * other `Uint8Array`s (no copy), well-formed strings (UTF-8; a string with a lone surrogate goes through
 * structured clone, which keeps it) and numbers (float64, so NaN, -0 and ±Infinity survive).
 * A top-level `Error` keeps its class name, message, stack, cause and own properties (such as `code`).
 * Plain data that JSON carries exactly (booleans, and plain objects and dense arrays of null, booleans, strings and
 * finite numbers other than -0) is sent as JSON, which is faster than structured clone.
 * Everything else goes through `node:v8` structured clone: bigint, boolean, null, undefined, typed arrays,
 * Date, RegExp, Map, Set, arrays, plain objects, circular references, nested Errors (those, and the `cause` of a
 * top-level Error, keep message, stack, cause and a standard class only: no own properties such as `code`, and any
 * other name becomes `'Error'`). Nothing is rewritten:
 * `null` stays `null`, `""` stays `""`. Functions and symbols cannot be sent (`ERR_IPC_ENCODE`).
 *
 * It also decodes the {@link Encoding.JSON} tag, so a peer that sends JSON can talk to it.
 */
export class Serializer implements Codec {
  encode(value: unknown): EncodedPayload {
    return encodeDefault(value, false) as EncodedPayload;
  }

  decode(payload: Buffer, encoding: number): unknown {
    switch (encoding) {
      case Encoding.BUFFER:
        return payload;
      case Encoding.UINT8ARRAY:
        return new Uint8Array(payload.buffer, payload.byteOffset, payload.length);
      case Encoding.STRING:
        // No argument: straight to utf8Slice, without toString's encoding lookup (every text message passes here).
        return payload.toString();
      case Encoding.NUMBER:
        if (payload.length !== 8) throw new RangeError(`A number payload is 8 bytes, received ${payload.length}`);
        return payload.readDoubleBE(0);
      case Encoding.V8:
        return v8().deserialize(payload);
      case Encoding.ERROR:
        return recordToError(v8().deserialize(payload) as ErrorRecord);
      case Encoding.JSON:
        return JSON.parse(payload.toString());
      default:
        // (Called by a user without its encoding, a non-number: said as it is, not a TypeError of this message.)
        throw new UnknownEncodingError(`Unknown payload encoding ${typeof encoding === 'number' ? `0x${encoding.toString(16)}` : String(encoding)}`);
    }
  }
}

/** Serializer's own `encode`: a codec that has it encodes as encodeDefault does. */
const SERIALIZER_ENCODE = Serializer.prototype.encode;
/** Serializer's own `decode`, whose values are never thenables (see decodeValue). */
const SERIALIZER_DECODE = Serializer.prototype.decode;

/** The codec a node uses unless told otherwise. */
export const defaultCodec: Codec = new Serializer();

/** Encodes with `codec`, turning any failure into an `ERR_IPC_ENCODE` {@link CodecError}. */
export function encodeValue(codec: Codec, value: unknown): EncodedPayload {
  let result: unknown;
  let encoding: unknown;
  let payload: unknown;
  let promise = false;
  let bytes = false;
  try {
    result = codec.encode(value);
    // Read once, here: a getter (or a Proxy trap) that throws is that message's ERR_IPC_ENCODE, and one that changes
    // its answer cannot hand the writer something other than what was checked.
    if (result !== null && typeof result === 'object') {
      ({ encoding, payload } = result as Record<string, unknown>);
      promise = typeof (result as { then?: unknown }).then === 'function';
      // An `async encode` that rejects would otherwise be an unhandled rejection (which ends the process), on top of
      // this message's ERR_IPC_ENCODE: its outcome is ours to discard.
      if (promise) Promise.resolve(result).catch(() => undefined);
      bytes = payload instanceof Uint8Array;
    }
  } catch (cause) {
    throw encodeFailed(cause);
  }
  if (bytes && typeof encoding === 'number' && Number.isInteger(encoding) && encoding >= 0 && encoding <= 255) {
    return { encoding, payload: payload as Uint8Array };
  }
  return refuseEncoded(result, encoding, payload, promise);
}

/**
 * The `ERR_IPC_ENCODE` {@link CodecError} for what a codec's `encode` returned when it is not an integer tag from 0
 * to 255 and a Uint8Array payload (a Buffer, a view into a larger buffer…), saying what was wrong. The tag is written as one byte and the payload copied byte by byte: 256 would arrive as 0 (BUFFER), 128.5 as 128, a
 * Uint16Array's elements would be cut to bytes, a string's lone surrogates turned into U+FFFD — a changed value,
 * never an error. Only for codecs other than the Serializer, whose results are right by construction.
 */
function refuseEncoded(result: unknown, encoding: unknown, payload: unknown, promise: boolean): never {
  let returned: string;
  if (result === null || typeof result !== 'object') returned = String(result);
  else if (promise) returned = 'a Promise (encode must be synchronous)';
  else returned = `{ encoding: ${typeof encoding === 'string' ? JSON.stringify(encoding) : typeof encoding === 'object' && encoding !== null ? kind(encoding) : String(encoding)}, payload: ${kind(payload)} }`;
  const wrong = typeof encoding !== 'number' || !Number.isInteger(encoding) || encoding < 0 || encoding > 255
    ? 'its encoding must be an integer from 0 to 255'
    : 'its payload must be a Uint8Array (or a Buffer)';
  throw encodeFailed(new TypeError(`codec.encode returned ${returned}: ${wrong}`));
}

/** What `payload` is, for a message: 'null', a typeof, or its class tag ('ArrayBuffer', 'Uint16Array'…). */
function kind(payload: unknown): string {
  if (payload === null) return 'null';
  if (typeof payload !== 'object') return typeof payload;
  try {
    return Object.prototype.toString.call(payload).slice(8, -1);
  } catch {
    return 'object';
  }
}

/**
 * {@link encodeValue} for the writer: with the default codec (any Serializer whose `encode` is its own), short
 * text (a string, or the JSON of plain data) stays a string that the writer encodes in place (see
 * {@link WirePayload}); any other codec's bytes as they are.
 */
export function encodeWire(codec: Codec, value: unknown): WirePayload {
  try {
    // Decided by the method, not the instance: `new Serializer()` takes the fast path too, and an `encode` patched
    // onto `defaultCodec` (or Serializer.prototype) is still what encodes.
    if (codec.encode === SERIALIZER_ENCODE) return encodeDefault(value, true);
  } catch (cause) {
    throw encodeFailed(cause);
  }
  return encodeValue(codec, value);
}

function encodeFailed(cause: unknown): CodecError {
  return new CodecError(ErrorCode.ENCODE, `Could not encode the value: ${describe(cause)}`, { cause });
}

/**
 * Whether a payload of that encoding may decode into objects: every encoding but raw bytes and text
 * (BUFFER, UINT8ARRAY, STRING, NUMBER), user codec tags (0x80–0xff) included since we cannot know what they
 * build. A payload of such an encoding can cost far more than its size to decode (3 bytes of V8 or JSON make an
 * empty object of ~100 bytes, and decoding blocks the event loop), hence `maxDecodedSize`.
 */
export function decodesToObjects(encoding: number): boolean {
  return encoding > Encoding.NUMBER;
}

/**
 * The `ERR_IPC_FRAME_TOO_LARGE` error for a payload of `length` bytes that decodes into objects and is over
 * `limit` (`maxDecodedSize`); null when it may be decoded. Checked before decoding anything.
 */
export function oversized(encoding: number, length: number, limit: number): ProtocolError | null {
  if (length <= limit || !decodesToObjects(encoding)) return null;
  return new ProtocolError(
    ErrorCode.FRAME_TOO_LARGE,
    `A payload of ${length} bytes (encoding 0x${encoding.toString(16)}) is over maxDecodedSize (${limit} bytes): not decoded`,
  );
}

/**
 * Decodes with `codec`, turning any failure into an `ERR_IPC_DECODE` {@link CodecError}.
 * @param maxDecodedSize largest payload decoded into objects (see {@link oversized}); raw bytes and text
 *   are not limited here.
 * @throws ProtocolError `ERR_IPC_FRAME_TOO_LARGE` when the payload is over `maxDecodedSize`, before decoding.
 */
export function decodeValue(codec: Codec, payload: Buffer, encoding: number, maxDecodedSize = Infinity): unknown {
  const tooLarge = oversized(encoding, payload.length, maxDecodedSize);
  if (tooLarge) throw tooLarge;
  let value: unknown;
  let serializer: boolean;
  try {
    serializer = codec.decode === SERIALIZER_DECODE;
    value = codec.decode(payload, encoding);
  } catch (cause) {
    throw decodeFailed(payload, encoding, cause);
  }
  // The Serializer's values carry no functions: only another codec's can be thenables (not looked for on this path).
  if (serializer) return value;
  // An `async decode` delivered its Promise as the message's data, and its rejection ended the process unhandled.
  // Any thenable, not only a Promise of this realm: `sendTo` resolved with a decoded thenable adopts it, so a reply
  // decoded into `{ then() {} }` left the request pending for ever (its reply had come: no timeout ran any more).
  let thenable: boolean;
  try {
    thenable = value instanceof Promise || (value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function');
  } catch (cause) {
    throw decodeFailed(payload, encoding, cause); // a Proxy (or getter) that throws on `then`
  }
  if (thenable) {
    try {
      Promise.resolve(value).catch(() => undefined);
    } catch {
      // (A Promise subclass whose `constructor` getter throws: nothing to discard, the message fails below.)
    }
    throw decodeFailed(payload, encoding, new TypeError('codec.decode returned a Promise (or another thenable): decode must be synchronous'));
  }
  return value;
}

/**
 * The Serializer's (or `defaultCodec`'s, a user codec handing it what it does not know) answer to a tag it does not
 * have: the sender encodes with another codec. A RangeError, as before; its class only lets decodeFailed say so.
 */
class UnknownEncodingError extends RangeError {}
UnknownEncodingError.prototype.name = 'RangeError';

function decodeFailed(payload: Buffer, encoding: number, cause: unknown): CodecError {
  // Two ends with different `codec` options (a rolling deploy): say which option to align, not only the tag.
  const hint = cause instanceof UnknownEncodingError ? " (the sender's codec is not this node's: give both ends the same `codec` option)" : '';
  return new CodecError(
    ErrorCode.DECODE,
    `Could not decode a payload of ${payload.length} bytes (encoding 0x${encoding.toString(16)}): ${describe(cause)}${hint}`,
    { cause },
  );
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  // A codec may throw anything: String() itself throws for a null-prototype object or a throwing toString, and
  // that TypeError escaped in place of the message's ERR_IPC_ENCODE/ERR_IPC_DECODE.
  try {
    return String(error);
  } catch {
    return 'a value that cannot be described';
  }
}
