import { chmodSync, existsSync, lstatSync, readlinkSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import type { FrameReader } from '../rx/FrameReader';
import { serverTlsSettings } from './tlsError';
import { isPortString } from './validate';

/** `node:tls`, loaded when a node is given TLS settings (~6 ms to load, for nodes that never use it). */
let tlsModule: typeof tls | undefined;
const loadTls = (): typeof tls => (tlsModule ??= require('node:tls') as typeof tls);

/** TLS settings of a node: one object for both roles (see `NodeOptions.tls`). */
export type TlsSettings = tls.TlsOptions & tls.ConnectionOptions;

/**
 * Checks that `settings` make a TLS context (`tls.createSecureContext`): a key that is not PEM, a key that does not
 * match its certificate, a wrong passphrase… were thrown by node:tls as they are (an `ERR_OSSL_*` error, no word of
 * which option), by `serve` or as the rejection of `connectTo`, not where the node was made.
 * @throws TypeError naming `what`, with node:tls's error as `cause`.
 */
export function checkTlsSettings(settings: TlsSettings, what: string): void {
  try {
    loadTls().createSecureContext(settings);
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    throw new TypeError(`${what} cannot make a TLS context: ${message}${code ? ` (${code})` : ''}: check its key, cert, pfx, passphrase and ca`, { cause: error });
  }
}

/**
 * A server for `serve`: plain TCP/Unix, or TLS when `tlsSettings` is given. A TLS server that verifies client
 * certificates leaves the verdict to the node (see serverTlsSettings): check `unverifiedClient` for each socket.
 * At most `tlsLimit.max` clients of a TLS server are in their TLS handshake at once: one more makes room by
 * destroying the one that has waited longest, and `tlsLimit.dropped()` is called (the node's `maxHandshaking`).
 */
export function createServer(
  tlsSettings: TlsSettings | undefined,
  onSocket: (socket: net.Socket) => void,
  tlsLimit: { max: number; dropped: () => void } = { max: Infinity, dropped: () => undefined },
): net.Server {
  if (!tlsSettings) return net.createServer(onSocket);
  const server = loadTls().createServer(serverTlsSettings(tlsSettings), onSocket);
  // The TCP sockets of clients still in their TLS handshake: no node knows them yet (see closeServer). A Set keeps
  // the order they came in: the first is the one that has waited longest.
  const handshaking = new Set<net.Socket>();
  server.on('connection', (raw: net.Socket) => {
    if (handshaking.size >= tlsLimit.max) {
      const [longest] = handshaking;
      handshaking.delete(longest);
      longest.destroy();
      tlsLimit.dropped();
    }
    handshaking.add(raw);
    raw.once('close', () => handshaking.delete(raw));
  });
  // Secure: from now on the node owns it (through its TLSSocket, whose `_parent` is that TCP socket), and ends it.
  server.prependListener('secureConnection', (socket: net.Socket) => handshaking.delete((socket as { _parent?: net.Socket })._parent!));
  tlsHandshakes.set(server, handshaking);
  return server;
}

/** The TCP sockets of a TLS server's clients still in their TLS handshake (see createServer). */
const tlsHandshakes = new WeakMap<net.Server, Set<net.Socket>>();

/**
 * Closes a server of {@link createServer}: resolves once it stopped listening and every connection it accepted is
 * gone. A TLS server's clients still in their TLS handshake are destroyed: `net.Server#close` waited for them, and
 * node:tls ends them only at its `handshakeTimeout`, so a client that stalled mid-handshake (or a port scanner that
 * connects and never speaks) held `close()` up for that long (10 s by default, 24 days for `Infinity`).
 */
export function closeServer(server: net.Server): Promise<void> {
  const socketFile = socketFiles.get(server);
  // libuv removes a Unix server's path when it closes, whatever is there now: when our socket file was deleted and
  // the path taken since (an init script's `rm -f`, then a new daemon; a user's file), that file would go instead —
  // the new daemon, still listening, unreachable. It is moved aside through the close and renamed back. Only
  // while listening: a server closed already (`node.server.close()`) unlinks nothing, so nothing is moved (it was
  // left behind as a `.keep` file).
  const keep = socketFile && server.listening && fileId(socketFile.path, false) !== socketFile.inode ? keepAside(socketFile.path) : undefined;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  if (keep) putBack(keep, socketFile!.path);
  for (const raw of tlsHandshakes.get(server) ?? []) raw.destroy();
  return closed;
}

/** The socket file a server listens on (see closeServer): its path and `device:inode` once listening. */
const socketFiles = new WeakMap<net.Server, { path: string; inode: string | undefined }>();

/**
 * Moves what is at `path` now beside it (a rename, so libuv's unlink finds nothing), and returns where; undefined when
 * nothing is there or it cannot be moved — then libuv's unlink cannot remove it either (a sticky folder such as
 * `/tmp`, a read-only folder). Not a hard link: one to another user's file is refused (`fs.protected_hardlinks`, on
 * by default), and in a folder both may write, that file was removed.
 */
function keepAside(path: string): string | undefined {
  const aside = `${path}.${process.pid}.${Date.now().toString(36)}.keep`;
  try {
    renameSync(path, aside);
    return aside;
  } catch {
    return undefined;
  }
}

/** Renames `aside` back to `path` (left where it is when that fails: it is not ours to remove). */
function putBack(aside: string, path: string): void {
  try {
    renameSync(aside, path);
  } catch {
    // Left as `aside`: the only copy of someone's file.
  }
}

/**
 * A socket for `connectTo`: `connectArgs` as `net.Socket#connect` takes them, over TLS when asked, reading
 * through `reader` (its bytes land where the frame decoder wants them; see FrameReader).
 */
export function dial(tlsSettings: TlsSettings | undefined, connectArgs: unknown[], reader: FrameReader): net.Socket {
  const options = { ...connectOptions(connectArgs), onread: reader.onread };
  return tlsSettings ? loadTls().connect({ ...tlsSettings, ...options }) : net.connect(options as net.NetConnectOpts);
}

/**
 * `server.listen(...listenArgs)`, replacing a stale Unix socket file once: on EADDRINUSE for a path, if the path
 * is a socket and nobody answers on it (a crashed server left it), it is removed and listening retried (a file
 * that cannot be removed is reported with the unlink's code, e.g. EPERM); if the file is gone meanwhile (its server
 * just closed), listening is retried as it is; if it was replaced meanwhile (another server reclaimed it at the
 * same moment), the check starts over (and finds that server live). A live socket is left alone: `onError` gets
 * the original EADDRINUSE; so is a file that is not a socket, a directory or a symbolic link (even one to a stale
 * socket, or to nothing): an EADDRINUSE that says which. A
 * server closed during that check does not listen after all. `socketMode`, when given, is applied to the socket file before `onListening`.
 */
export function listen(
  server: net.Server,
  listenArgs: unknown[],
  socketMode: number | undefined,
  onListening: (address: net.AddressInfo | string | null) => void,
  onError: (error: Error) => void,
): void {
  const path = socketPathOf(listenArgs);
  const start = () => server.listen(...(listenArgs as Parameters<net.Server['listen']>));
  /** Stale-file checks done: one, or again when the file changed under the check (see below), at most 3. */
  let checks = 0;
  // close() before the check is done (serve, then close at once): the retry must not listen after all.
  let closed = false;
  server.once('close', () => (closed = true));
  server.on('listening', () => {
    const address = server.address();
    if (typeof address === 'string' && socketMode !== undefined) {
      try {
        chmodSync(address, socketMode);
      } catch (error) {
        // Not listening with another mode than asked (the umask's, readable by others): the serve fails. An
        // abstract socket ('\0…') has no file to set a mode on.
        const { code, message } = error as NodeJS.ErrnoException;
        server.close();
        const why = address.startsWith('\0') ? 'an abstract socket has no file, hence no mode' : message;
        return onError(Object.assign(new Error(`Cannot give ${JSON.stringify(address)} the socketMode 0o${socketMode.toString(8)}: ${why}`, { cause: error }), { code }));
      }
    }
    // Our socket file, to tell it from one that took its path later (see closeServer). An abstract socket has none.
    if (typeof address === 'string' && !address.startsWith('\0') && process.platform !== 'win32') socketFiles.set(server, { path: address, inode: fileId(address, false) });
    onListening(address);
  });
  server.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EACCES' && path !== undefined) return onError(missingFolder(path, error) ?? error);
    if (error.code !== 'EADDRINUSE' || path === undefined || checks++ === 3) return onError(error);
    // The file the probe is about: only this one may be removed as stale.
    const file = fileId(path);
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      if (closed) return;
      onError(error);
    });
    probe.once('error', (probeError: NodeJS.ErrnoException) => {
      if (closed) return;
      // The file went away meanwhile (the server that held it closed): the path is free. Unless it is a symbolic link to
      // nothing (bind does not follow it): listening again failed the same way, and ended in a bare EADDRINUSE.
      if (probeError.code === 'ENOENT') return isSymbolicLink(path) ? onError(notASocket(path, error) ?? error) : start();
      if (probeError.code !== 'ECONNREFUSED') return onError(error);
      if (!isSocketFile(path)) return onError(notASocket(path, error) ?? error);
      // Replaced since the probe began: another server reclaimed the path at the same moment (two processes
      // starting on it after a crash). Removing its fresh file would orphan it: check again from the start.
      if (fileId(path) !== file) return start();
      try {
        unlinkSync(path);
      } catch (unlinkError) {
        // Gone meanwhile: listen again all the same. A file we may not remove (another user's, in a sticky folder)
        // is reported as that: EADDRINUSE would send people looking for a server that does not exist.
        const { code, message } = unlinkError as NodeJS.ErrnoException;
        if (code !== 'ENOENT') {
          return onError(Object.assign(new Error(`A stale Unix socket file at ${path} could not be removed (nobody listens on it): ${message}`, { cause: unlinkError }), { code }));
        }
      }
      start();
    });
  });
  start();
}

/**
 * libuv reports a Unix socket path whose folder does not exist as EACCES ("permission denied"), which sends people
 * chasing permissions: this is that error as ENOENT, naming the folder (and saying that `~` is not expanded), or
 * undefined when the folder exists (a real EACCES) or the path is not a file's (abstract, Windows pipe).
 */
function missingFolder(path: string, error: NodeJS.ErrnoException): Error | undefined {
  if (path.startsWith('\0') || path.startsWith('\\\\')) return undefined;
  const folder = dirname(resolve(path));
  if (existsSync(folder)) return undefined;
  const tilde = path.startsWith('~') ? " ('~' is not expanded: use os.homedir())" : '';
  return Object.assign(new Error(`Cannot serve on ${path}: the folder ${folder} does not exist${tilde}`, { cause: error }), {
    code: 'ENOENT',
    syscall: 'listen',
    path,
  });
}

/**
 * EADDRINUSE for a path that holds a directory, a file that is no socket or a symbolic link (left alone: it is not
 * ours to remove) says so: "address already in use" alone sent people looking for a server that does not exist. Undefined when
 * there is nothing at `path` any more.
 */
function notASocket(path: string, error: NodeJS.ErrnoException): Error | undefined {
  // A link is never followed nor removed: it says where it points, and whether anything is there.
  const what = noSocketAt(path);
  if (what === undefined) return undefined;
  const message = `Cannot serve on ${path}: it is ${what}, not a Unix socket (serve creates the socket file itself: give a path where nothing is)`;
  return Object.assign(new Error(message, { cause: error }), { code: error.code, syscall: 'listen', path });
}

/**
 * What is at `path` when it is no socket: "a directory", "a file" or, unless `follow`, "a symbolic link (to …)"
 * (and whether anything is there); undefined for a socket, or when nothing is there. `follow`: what a connect
 * reaches through a link (a link to a socket is a socket).
 */
export function noSocketAt(path: string, follow = false): string | undefined {
  try {
    const stats = follow ? statSync(path) : lstatSync(path);
    if (stats.isSocket()) return undefined;
    if (stats.isSymbolicLink()) return `a symbolic link (to ${readlinkSync(path)}${existsSync(path) ? '' : ', where nothing is'})`;
    return stats.isDirectory() ? 'a directory' : 'a file';
  } catch {
    return undefined;
  }
}

/**
 * The file at `path` as `device:inode:ctime` (undefined when there is none): tells a replaced file from the same
 * one (with the change time in ns: a new file often gets the inode number its predecessor just freed). Without
 * `changed`, `device:inode` only: our socket file stays ours through a `chmod` (see closeServer).
 */
function fileId(path: string, changed = true): string | undefined {
  try {
    const { dev, ino, ctimeNs } = lstatSync(path, { bigint: true });
    return changed ? `${dev}:${ino}:${ctimeNs}` : `${dev}:${ino}`;
  } catch {
    return undefined;
  }
}

function isSymbolicLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

function isSocketFile(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

/** `net.Socket#connect` arguments as an options object (for `tls.connect`). */
function connectOptions(args: unknown[]): tls.ConnectionOptions {
  const [first, second] = args;
  if (typeof first === 'number' || isPortString(first)) {
    return { port: Number(first), host: typeof second === 'string' ? second : undefined };
  }
  if (typeof first === 'string') return { path: first };
  return (first ?? {}) as tls.ConnectionOptions;
}

/** The Unix socket path among `net.Server#listen` arguments, if any. */
function socketPathOf(listenArgs: unknown[]): string | undefined {
  const [first] = listenArgs;
  if (typeof first === 'string') return isPortString(first) ? undefined : first;
  if (first !== null && typeof first === 'object' && typeof (first as net.ListenOptions).path === 'string') return (first as net.ListenOptions).path;
  return undefined;
}
