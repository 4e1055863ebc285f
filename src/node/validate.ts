/**
 * Argument checks of the public API. Each throws a `TypeError` whose message names the argument or option, says
 * what is allowed and what was received, so a wrong call fails where it was made instead of as a hang, a timer
 * that fires at once or an internal error deep in `node:net`.
 */
import { isIP } from 'node:net';
import { Duplex } from 'node:stream';
import { MAX_NAME_LENGTH, MAX_PAYLOAD_LENGTH, MIN_FRAME_SIZE, NAME_CONTROL_CHARACTERS, NAME_LONE_SURROGATE } from '../protocol/constants';

export { MAX_NAME_LENGTH };

/** Largest TCP port. */
const MAX_PORT = 65_535;

/** A short description of a value received, for error messages. */
export function received(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return value.length > 40 ? `a string of length ${value.length}` : JSON.stringify(value);
    case 'number':
    case 'boolean':
    case 'undefined':
    case 'bigint':
      return String(value);
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
    default:
      return `an object (${(value as object).constructor?.name ?? 'no prototype'})`;
  }
}

function fail(what: string, allowed: string, value: unknown): never {
  throw new TypeError(`${what} must be ${allowed}, received ${received(value)}`);
}

/** A node or peer name: a non-empty string of at most {@link MAX_NAME_LENGTH} UTF-16 units. */
export function checkName(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NAME_LENGTH) {
    fail(what, `a non-empty string of at most ${MAX_NAME_LENGTH} characters`, value);
  }
  if (NAME_CONTROL_CHARACTERS.test(value)) fail(what, 'free of control characters (line feeds, tabs…)', value);
  if (NAME_LONE_SURROGATE.test(value)) fail(what, 'well-formed UTF-16 (no lone surrogate)', value);
  return value;
}

/** An options object: `undefined` gives `{}`; anything but a plain object (null, an array, a number…) throws. */
/** What an omitted options object reads as (never written to). */
const NO_OPTIONS = Object.freeze({});

export function checkOptions<T extends object>(value: T | undefined, what: string): T {
  if (value === undefined) return NO_OPTIONS as T;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(what, 'an object', value);
  return value;
}

/**
 * A duration in ms: a number from `min` up to `Infinity` (when `infinite`; it means "none"). Durations above
 * 2^31-1 ms work (see duration.ts). `undefined` gives `fallback`.
 */
export function checkDuration(value: unknown, what: string, fallback: number, { min = 0, infinite = true } = {}): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= min) || (!infinite && value === Infinity)) {
    fail(what, `a number of ms from ${min} to ${infinite ? 'Infinity (none)' : `${Number.MAX_VALUE} (finite)`}`, value);
  }
  return value;
}

/** An integer from `min` to `max` (`max` may be `Infinity`, then allowed itself). `undefined` gives `fallback`. */
export function checkInteger(value: unknown, what: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= min && value <= max) || (value !== Infinity && !Number.isInteger(value))) {
    fail(what, `an integer from ${min} to ${max === Infinity ? 'Infinity' : max}`, value);
  }
  return value;
}

/** A boolean; `undefined` gives `fallback`. */
export function checkBoolean(value: unknown, what: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') fail(what, 'true or false', value);
  return value;
}

/** Frame payload sizes: 1 byte to the 4 GiB the header can express. */
export const MAX_FRAME_SIZE_RANGE = [MIN_FRAME_SIZE, MAX_PAYLOAD_LENGTH] as const;
/** Credits: the REQUEST_N frame carries a u32. */
export const CREDITS_RANGE = [1, 0xffff_ffff] as const;

/** A byte stream for connectVia/acceptVia: a Duplex (a `net.Socket`, a `LinkSocket`…) not destroyed yet. */
export function checkDuplex(value: unknown, what: string): Duplex {
  const stream = value as Partial<Duplex> | null;
  const duplexLike =
    value instanceof Duplex ||
    (stream !== null &&
      typeof stream === 'object' &&
      ['on', 'once', 'write', 'end', 'destroy', 'cork', 'uncork'].every((m) => typeof (stream as Record<string, unknown>)[m] === 'function') &&
      // The writer's backpressure reads them: without, every send waited for a 'drain' that never came.
      typeof stream.writableLength === 'number' &&
      typeof stream.writableHighWaterMark === 'number');
  if (!duplexLike) fail(what, 'a connected net.Socket or stream.Duplex', value);
  if ((value as Duplex).destroyed) throw new TypeError(`${what} is already destroyed`);
  return value as Duplex;
}

/**
 * A string that `net` would take for a Unix socket path though it names a host: `'localhost'`, an IP address, or
 * `host:port`. Given alone (a host without its port), it would dial or create a socket file of that name.
 */
function checkNotHost(value: string, what: string): void {
  // Only digits and dots, or a colon, can make an IP address: a path skips node's isIP, whose first call builds
  // its IPv6 pattern (~5 ms of a fresh process's first connectTo).
  const ipShaped = value.includes(':') || /^[\d.]+$/.test(value);
  if (value === 'localhost' || (ipShaped && isIP(value) !== 0) || /^(?:[\w-]+(?:\.[\w-]+)*|\[[\d.:a-fA-F]+\]):\d+$/.test(value)) {
    throw new TypeError(
      `${what}: ${JSON.stringify(value)} is a host, not a Unix socket path: give the port first, and the host after it (${what}(name, port, host))`,
    );
  }
}

/**
 * Longest Unix socket path, in bytes: the size of `sockaddr_un.sun_path` (108 on Linux, 104 on macOS and the BSDs).
 * Node does not refuse a longer one: it silently binds or dials its first bytes, another file's name — which
 * `close()` then leaves behind (it unlinks the path it was given), so the service serving again finds its own
 * leftover (`EADDRINUSE`, never replaced as stale), and a client dials whatever the cut name reaches. Windows pipe
 * names have no such limit.
 */
export const MAX_SOCKET_PATH = process.platform === 'win32' ? Infinity : process.platform === 'linux' ? 108 : 104;

/** A Unix socket path: a non-empty string of at most {@link MAX_SOCKET_PATH} bytes. */
function checkSocketPath(path: unknown, what: string): void {
  if (typeof path !== 'string' || path.length === 0) fail(what, 'a non-empty Unix socket path', path);
  const bytes = Buffer.byteLength(path, 'utf8');
  if (bytes > MAX_SOCKET_PATH) {
    throw new TypeError(
      `${what} is ${bytes} bytes long: a Unix socket path can be at most ${MAX_SOCKET_PATH} bytes on this platform (a longer one would be cut short, silently, to another file's name): choose a shorter path`,
    );
  }
}

/**
 * True for a string that `net` takes for a port, not a Unix socket path: `net.Server#listen` and `net.connect` read
 * any string that `Number()` makes a number ≥ 0 as a port — `'8080'`, but also `'8080.5'`, `'0x1F90'`, `' 80'`.
 * Taken for a path here, `'70000.5'` passed the checks and then made `listen` throw a RangeError (leaving the
 * node "serving"), and `connectTo(name, '0x1F90')` dialled a socket file where `serve(name, '0x1F90')` listened
 * on TCP port 8080.
 */
export function isPortString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && Number(value) >= 0;
}

/** A port as `net` validates it: an integer from `min` to 65535, or a string of one (not blank). */
function isPort(value: unknown, min: number): boolean {
  const port = isPortString(value) && value.trim().length > 0 ? Number(value) : value;
  return typeof port === 'number' && Number.isInteger(port) && port >= min && port <= MAX_PORT;
}

/**
 * The arguments of `connectTo` after the name, as `net.connect` takes them: `(port[, host])` with a port from
 * 1 to 65535, `(path)` with a non-empty Unix socket path (not a host: see checkNotHost), or `(options)` with a
 * valid `port` or `path`.
 */
export function checkConnectArgs(args: unknown[], what: string): void {
  const [first, second] = args;
  const usage = `${what} needs a port (1 to 65535) [and host], a Unix socket path or an options object { port, host } / { path }`;
  if (args.length === 0 || first === undefined) throw new TypeError(`${usage}, received nothing`);
  if (typeof first === 'number' || isPortString(first)) {
    if (!isPort(first, 1)) fail(`${what}: port`, 'an integer from 1 to 65535', first);
    if (second !== undefined && (typeof second !== 'string' || second.length === 0)) fail(`${what}: host`, 'a non-empty string', second);
    return;
  }
  if (typeof first === 'string') {
    if (first.length === 0) fail(`${what}: path`, 'a non-empty Unix socket path', first);
    checkNotHost(first, what);
    checkSocketPath(first, `${what}: path`);
    return;
  }
  if (first === null || typeof first !== 'object' || Array.isArray(first)) throw new TypeError(`${usage}, received ${received(first)}`);
  const { port, path, host } = first as { port?: unknown; path?: unknown; host?: unknown };
  if (path !== undefined) {
    checkSocketPath(path, `${what}: options.path`);
    return;
  }
  if (!isPort(port, 1)) fail(`${what}: options.port`, 'an integer from 1 to 65535 (or give options.path)', port);
  if (host !== undefined && (typeof host !== 'string' || host.length === 0)) fail(`${what}: options.host`, 'a non-empty string', host);
}

/**
 * The arguments of `serve` after the name, as `net.Server#listen` takes them; checked only where Node would
 * throw later or misread them: a port must be 0 (any free port) to 65535, a path non-empty and not a host.
 */
export function checkListenArgs(args: unknown[], what: string): void {
  const [first] = args;
  if (first === undefined || typeof first === 'function') return; // listen() or listen(callback): any free port
  if (typeof first === 'number' || isPortString(first)) {
    if (!isPort(first, 0)) fail(`${what}: port`, 'an integer from 0 (any free port) to 65535', first);
    return;
  }
  if (typeof first === 'string') {
    if (first.length === 0) fail(`${what}: path`, 'a non-empty Unix socket path', first);
    checkNotHost(first, what);
    checkSocketPath(first, `${what}: path`);
    return;
  }
  if (first === null || typeof first !== 'object' || Array.isArray(first)) {
    fail(what, 'a port, a Unix socket path or a listen options object', first);
  }
  const { port, path } = first as { port?: unknown; path?: unknown };
  if (port !== undefined && !isPort(port, 0)) fail(`${what}: options.port`, 'an integer from 0 (any free port) to 65535', port);
  if (path !== undefined) checkSocketPath(path, `${what}: options.path`);
}

/** A `sendTo`/`request$`/`broadcast`/`pingTo` target: a peer name or a NodeSocket (`isSocket` tells). */
export function checkTarget(value: unknown, what: string, isSocket: (value: unknown) => boolean): void {
  if ((typeof value !== 'string' || value.length === 0) && !isSocket(value)) fail(what, 'a peer name or a NodeSocket', value);
}

/**
 * The options every request takes, checked (not copied: this runs on every send): `receptive` a boolean,
 * `timeout` a duration from 0 to Infinity; both optional. The messages are built only for a failure.
 */
export function checkSendOptions<T extends { receptive?: boolean; timeout?: number }>(value: T | undefined, what: string): T {
  const options = checkOptions(value, what);
  const { receptive, timeout } = options;
  if (receptive !== undefined && typeof receptive !== 'boolean') fail(`${what}.receptive`, 'true or false', receptive);
  if (timeout !== undefined && (typeof timeout !== 'number' || !(timeout >= 0))) fail(`${what}.timeout`, 'a number of ms from 0 to Infinity (none)', timeout);
  return options;
}

/**
 * The options of `pingTo`: those of {@link checkSendOptions}, but a ping always awaits its pong — `receptive:
 * false` (a one-way ping) was accepted and ignored: refused, as any invalid option.
 */
export function checkPingOptions<T extends { receptive?: boolean; timeout?: number }>(value: T | undefined, what: string): T {
  const options = checkSendOptions(value, what);
  if (options.receptive === false) fail(`${what}.receptive`, 'true or absent (a ping always awaits its pong: it cannot be one-way)', false);
  return options;
}
