import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import type { Observable, ObservableInput, SchedulerLike, Subscriber } from 'rxjs';
import { Observable as RxObservable } from 'rxjs/internal/Observable';
import { Subject } from 'rxjs/internal/Subject';
import {
  ClosedError,
  ErrorCode,
  HandshakeError,
  IpcError,
  NotConnectedError,
  PeerDisconnectedError,
} from '../errors';
import { EMPTY_PAYLOAD } from '../protocol/Frame';
import { DEFAULT_MAX_DECODED_SIZE, DEFAULT_MAX_FRAME_SIZE, Encoding, FrameFlags, FrameType } from '../protocol/constants';
import { sameProof, type HandshakeOptions } from '../protocol/handshake';
import { WINDOW_SIZE } from '../protocol/control';
import { defaultCodec, encodeWire, type Codec, type WirePayload } from '../protocol/Serializer';
import { FrameReader } from '../rx/FrameReader';
import { defer, map, takeUntil, timer } from '../rx/lazy';
import { request$ } from '../rx/request';
import { requestIterator } from '../rx/requestIterator';
import { Connection, SENT, type ConnectionHost, type ConnectionStats } from './Connection';
import { asError } from './asError';
import { setLongTimeoutAfterIO } from './duration';
import type { ByteStream } from './ByteStream';
import { LinkSocket } from './Link';
import { Dialler, type DialTarget, type DiallerHost, type RetryPolicy } from './Dialler';
import { Fleet, leastPending } from './Fleet';
import type { NodeTransport, TransportSession } from './NodeTransport';
import type { InboundRequest } from './InboundRequests';
import { NodeMessage } from './NodeMessage';
import { NO_TRAFFIC, NodeSocket } from './NodeSocket';
import { PendingRequest } from './PendingRequest';
import { StreamRequest } from './StreamRequest';
import { MAX_CATCH_UP, TimeoutQueue } from './TimeoutQueue';
import { checkTlsSettings, closeServer, createServer, dial, listen, type TlsSettings } from './transport';
import { MAX_TIMER_DELAY } from '../limits';
import { tlsErrorOf, unverifiedClient } from './tlsError';
import {
  checkBoolean,
  checkConnectArgs,
  checkDuplex,
  checkDuration,
  checkInteger,
  checkListenArgs,
  checkName,
  checkOptions,
  checkPingOptions,
  checkSendOptions,
  checkTarget,
  CREDITS_RANGE,
  MAX_FRAME_SIZE_RANGE,
  received,
} from './validate';

/** Options of `new Node(name, options)`. Every one is optional; the defaults are documented in the README. */
export interface NodeOptions {
  /** Reconnection attempts after a connection fails or drops, before giving up. Default `Infinity`. */
  maxRetries?: number;
  /**
   * Base delay of the reconnection backoff, in ms (doubles each attempt, with jitter). Default 200. `0`: the
   * first retry at once, then the delay grows from 1 ms (2, 4, 8… ms, with jitter), not a redial every ms for ever.
   */
  retryTime?: number;
  /**
   * Cap of the reconnection backoff, in ms. Default 10 000. `0` makes every retry immediate, a busy loop against
   * a port that refuses at once: only for a peer known to come back (tests), with a finite `maxRetries`.
   */
  maxRetryTime?: number;
  /** Time allowed from opening a connection to the end of its handshake, in ms. Default 10 000. */
  handshakeTimeout?: number;
  /**
   * Largest payload accepted from a peer, in bytes (a `request$`/`iterate` request counts the 4 bytes of credits it
   * carries ahead of its value). Default 64 MiB.
   */
  maxFrameSize?: number;
  /**
   * Largest payload decoded into objects, in bytes: V8, JSON, ERROR and user codec tags (every encoding but
   * Buffer, Uint8Array, string and number, which only `maxFrameSize` bounds). Checked before decoding: one such
   * message over it fails with `ERR_IPC_FRAME_TOO_LARGE` — a request is answered with that error, a reply or
   * stream value fails that one request — and the connection stays up. Decoding costs far more than the bytes
   * (a 32 MiB V8 payload of empty objects blocks the event loop for seconds and takes a GiB), hence a limit much
   * lower than `maxFrameSize`. Default 4 MiB.
   */
  maxDecodedSize?: number;
  /**
   * Liveness check, in ms: every interval each side pings, and a peer from which nothing arrived for 3
   * intervals is taken for dead (its connection is dropped, its pending requests reject, a client reconnects).
   * `0` or `Infinity` disables it. Default 5 000 (a frozen peer is noticed within 15–20 s).
   */
  heartbeatInterval?: number;
  /**
   * Shared-secret authentication: the handshake becomes a mutual HMAC-SHA256 challenge–response over fresh
   * random nonces (the secret never crosses the wire, a recorded handshake cannot be replayed). A peer with a
   * wrong or missing secret is refused with `ERR_IPC_AUTH`, which is final: never retried. The client proves
   * first, so a stranger reaching the port learns nothing to test guesses against; a fake server a client
   * connects to could, so use a secret nobody can guess (e.g. `crypto.randomBytes(32).toString('base64')`).
   */
  auth?: { secret: string | Buffer };
  /**
   * TLS settings: when set, `serve` listens with `tls.createServer(tls)` and `connectTo` connects with
   * `tls.connect({ ...tls, ...connectArgs })`, the rest of the API unchanged. One object serves both roles:
   * `key`/`cert` are this node's identity (its server certificate, and its client certificate for mutual TLS),
   * `ca` the authority it trusts; `requestCert: true` (with the default `rejectUnauthorized: true`) makes the
   * server demand a client certificate signed by `ca`. A certificate failure is final: never retried. Settings
   * that cannot make a TLS context (a key that is not PEM or does not match `cert`, a wrong `passphrase`) are a
   * TypeError of the constructor (`cause`: the node:tls error); `serve` needs `key` and `cert` (or `pfx`).
   */
  tls?: TlsSettings;
  /**
   * File mode given to a Unix socket `serve` creates, e.g. `0o600` so that only its owner can connect.
   * Default: left as the process umask makes it.
   */
  socketMode?: number;
  /**
   * Most requests awaiting an answer on one connection, in each direction: beyond it a peer's new request is
   * answered at once with `ERR_IPC_TOO_MANY_REQUESTS` (it never reaches `messages$`), and our own `sendTo`
   * rejects with it. Default 100 000.
   */
  maxPendingRequests?: number;
  /**
   * Most peers waiting for their handshake at once (connections accepted by `serve` or `acceptVia`, links of a
   * transport; over TLS, as many more in their TLS handshake): one more makes room by dropping the one that has
   * waited longest among those that have not said hello yet (when all have, the one that has waited longest: a
   * client whose hello was taken is one round trip from done, and is not dropped for a newcomer that said nothing),
   * reported as a retryable `ERR_IPC_HANDSHAKE` error (a real client it was tries again; one over
   * `connectVia` cannot, its `connectVia` rejects). A silent
   * connection is otherwise held until `handshakeTimeout`, so a flood of them costs at most this many sockets, and a
   * real client — whose handshake takes milliseconds, not seconds — still gets in. Default 1024.
   */
  maxHandshaking?: number;
  /**
   * Most bytes queued for one connection (written, not yet taken by the kernel) before `sendTo`, `broadcast`
   * and `request$` reject with `ERR_IPC_WRITE_BUFFER_FULL` instead of queueing more. Answers are not refused,
   * but: while more than this waits for a peer, the node stops reading that peer's requests until it drained, and
   * an answer given meanwhile (an async handler's) is replaced by an `ERR_IPC_WRITE_BUFFER_FULL` error.
   * Default 64 MiB.
   */
  maxWriteBuffer?: number;
  /** Credits a `request$` grants a streaming responder up front, topped up as values are consumed. Default 128. */
  streamWindow?: number;
  /**
   * Values a pushed (`Observable`) stream may produce ahead of the requester's credits before it fails with
   * `ERR_IPC_STREAM_OVERFLOW` (an `AsyncIterable` is pulled, never ahead). Default 1024.
   */
  streamBuffer?: number;
  /** Send the stack of errors our handlers answer with (`message.error`, failing streams). Default false. */
  exposeErrorStack?: boolean;
  /** Default timeout of `sendTo`/`request$`/`pingTo`, in ms (`Infinity`: none). Default 30 000. */
  requestTimeout?: number;
  /** How values are encoded. Default: the built-in `Serializer`. */
  codec?: Codec;
  /**
   * Run the timeouts of `request$` on this RxJS scheduler (through RxJS `timeout`), so that a `TestScheduler`
   * drives them in virtual time: `{ scheduler: asyncScheduler }` in nodes under `TestScheduler#run`. Default: none
   * — `request$` then times out through the node's own timeout queue, as `sendTo` does (about 2–3× faster).
   * Only `request$`: `sendTo`, `iterate`, `pingTo` and the heartbeat keep real time.
   */
  scheduler?: SchedulerLike;
  /**
   * Reach peers by name through a transport instead of by address: `natsTransport(…)` from `ipc-link-core/nats`.
   * Then `serve(name)` makes this node one instance of the service `name` (which must be the node's own name),
   * `connectTo(name)` takes no address and links to every live instance of `name`, and `sendTo(name)` picks one
   * per request (the least busy among those whose `maxFrameSize` takes the value). Everything else — replies, streams, credits, heartbeats, `auth` — is unchanged.
   * Default: none (TCP, Unix sockets, TLS).
   */
  transport?: NodeTransport;
}

/** Options of `request$`. */
export interface RequestStreamOptions extends SendOptions {
  /**
   * Milliseconds allowed between two values of a streamed reply. `0`: no time at all, each later value must come in
   * the same turn of the event loop as the one before (`iterate`: as the `next()` call that waits for it; with the
   * `scheduler` option: that scheduler's 0 ms action, about 1 ms of real time on `asyncScheduler`) — a long stream
   * fails part way (both sides let the event loop turn every 1,024 values). Default: no limit.
   */
  idleTimeout?: number;
  /** Credits granted to a streaming responder up front. Default: the node's `streamWindow`. */
  window?: number;
}

/**
 * Options of `iterate`: those of `request$`, always awaiting the answers — `receptive: false` leaves nothing to
 * iterate (a `TypeError` at the first `next()`), so the type does not take it.
 */
export interface IterateOptions extends Omit<RequestStreamOptions, 'receptive'> {
  /** Always true (the default): the answers are what is iterated. */
  receptive?: true;
}

/** Options of `sendTo` and `request$`. */
export interface SendOptions {
  /** Await the peer's reply (default true). When false, resolves with undefined once the frame is written. */
  receptive?: boolean;
  /** Milliseconds before the request fails with `ERR_IPC_TIMEOUT`. Default: the node's `requestTimeout`. */
  timeout?: number;
}

/** Options of `broadcast`. */
export interface BroadcastOptions extends SendOptions {
  /** Only the peers whose name matches. */
  filter?: RegExp;
}

/** One peer's outcome in {@link Node.broadcastSettled}: its reply, or why there is none. */
export type BroadcastOutcome<T = unknown> =
  | { name: string; status: 'fulfilled'; value: T }
  | { name: string; status: 'rejected'; reason: Error };

/** Options of `close`. */
export interface CloseOptions {
  /** Tell the peers connected to our server that they may reconnect later (default true). */
  reconnect?: boolean;
  /**
   * Drain first, for up to this many ms: stop accepting connections, stop dialling (a `connectTo` still waiting
   * for its peer rejects with `ERR_IPC_CLOSED` at once) and refuse new `sendTo`s (`ERR_IPC_CLOSED`) — except while
   * the peers' requests are still being answered (a service calling a database to answer them) — and tell
   * the peers (GOAWAY): they send their new requests to other peers of our name, or fail them at once with
   * `ERR_IPC_NOT_CONNECTED`; one that crossed the GOAWAY is refused unhandled (`ERR_IPC_CLOSED`, safe to send
   * again), unless we await an answer from that peer (its answer may need ours). The requests already in flight
   * finish — ours get their replies, the peers' get ours — then close. What is still pending at the deadline is
   * rejected as by a plain close. A later `close()` with a shorter drain (or none)
   * brings the deadline forward. Default 0.
   */
  drain?: number;
}

/** The events of a {@link Node} and their arguments. */
export interface NodeEvents {
  /** The server listens; `address` as `net.Server#address()` gives it. */
  listening: [address: net.AddressInfo | string | null];
  /** A peer connected to our server and finished the handshake. */
  connection: [name: string, socket: NodeSocket];
  /** A connection we opened (`connectTo`) finished the handshake, also after each reconnection. */
  connect: [name: string, socket: NodeSocket];
  /** A connection we opened was lost (it reconnects unless told not to). */
  disconnect: [name: string, socket: NodeSocket];
  /** A peer connected to our server went away. */
  socketClose: [name: string];
  /** A message arrived. */
  message: [message: NodeMessage];
  /** Something went wrong that no Promise reports (listen errors, protocol errors of a peer…). */
  error: [error: Error];
  /** `close()` finished. */
  close: [];
  /** Raw bytes received from a peer (before framing). */
  raw: [name: string, socket: NodeSocket, data: Buffer];
}

/** {@link Node.stats}: the counters of every live connection summed (`lastRtt`: the largest), and per peer. */
export interface NodeStats extends ConnectionStats {
  peers: Record<string, ConnectionStats>;
  /** Connections accepted whose handshake is not done yet (a peer that connects and says nothing shows here). */
  handshaking: number;
}

/** Anything `sendTo` accepts as a destination: a peer's name, or its socket. */
export type Target = string | NodeSocket;


/**
 * A process's endpoint: it can `serve` (accept peers) and `connectTo` peers, both at once. Every connection
 * starts with a handshake in which each side announces its name; afterwards either side can `sendTo` the other.
 *
 * Everything it receives is available both as events (`'message'`, `'connection'`…) and as Observables
 * (`messages$`, `connections$`, `disconnections$`), fed by the same calls so they never disagree.
 */
export class Node extends EventEmitter<NodeEvents> {
  /** This node's name, announced to every peer. */
  readonly name: string;
  /**
   * This node object's instance id (random, 16 hex digits), announced in every handshake: peers tell apart the
   * nodes of one name by it (`NodeSocket#instance`), and a node that reconnects after losing its connection takes
   * its stale one over instead of being refused as a twin (`ERR_IPC_NAME_IN_USE`) — with the resume token the server
   * gave that connection, not by the instance id alone.
   */
  readonly instance: string = randomHex() + randomHex();
  private readonly codec: Codec;
  private readonly scheduler: SchedulerLike | undefined;
  private readonly streamWindow: number;
  private readonly retryPolicy: RetryPolicy;
  private readonly requestTimeout: number;
  private readonly maxPendingRequests: number;
  private readonly maxHandshaking: number;
  private readonly maxWriteBuffer: number;
  private readonly socketMode: number | undefined;
  private readonly secret: Buffer | undefined;
  private readonly tls: TlsSettings | undefined;
  /** This node's session on `options.transport`, if any. */
  private readonly session: TransportSession | null = null;
  /** What the connections see of this node: its settings and the callbacks they report to (not public API). */
  private readonly host: ConnectionHost;
  /** What the diallers see of this node. */
  private readonly diallerHost: DiallerHost;
  #server: net.Server | null = null;
  #serverName: string | null = null;

  /**
   * Every message received, from any peer. Completes on `close()`. Hot, as the events: a subscriber sees the
   * messages that come after it subscribed. A subscriber that throws is RxJS's to report (an uncaught exception,
   * on a timer), not the node's: unlike a throwing `'message'` listener, its requester is not answered.
   */
  readonly messages$: Observable<NodeMessage>;
  /** Every peer that finished a handshake, in either direction (also after a reconnection), from subscription on. */
  readonly connections$: Observable<NodeSocket>;
  /** Every peer whose connection was lost or closed, from subscription on. */
  readonly disconnections$: Observable<NodeSocket>;
  /**
   * A snapshot of {@link Node.stats} every second while subscribed (the first at once), while `close({ drain })`
   * drains too; completes once `close()` finished. Sample it with RxJS: `node.stats$.pipe(map((s) => s.bytesIn), pairwise())`…
   */
  readonly stats$: Observable<NodeStats>;

  private readonly messages = new Subject<NodeMessage>();
  private readonly connections = new Subject<NodeSocket>();
  private readonly disconnections = new Subject<NodeSocket>();
  /**
   * Emits once when `close()` finished: ends `stats$`. Not a `'close'` listener: one per subscriber would trip
   * Node's MaxListenersExceededWarning at 11 of them, and a `removeAllListeners()` would leave them ticking.
   */
  private readonly closed = new Subject<void>();
  /** `close()` finished (`closed` emitted): a new `stats$` subscriber completes at once. */
  private closeDone = false;
  /**
   * Peers we dialled (`connectTo`, `connectVia`), by the name we gave, which is also their announced name: one
   * Dialler, or through a transport a Fleet (a Dialler per instance of that name).
   */
  private readonly dialled = new Map<string, Dialler | Fleet>();
  /** Why the dialler of a name gave up for good (until that name is dialled again): see whyNot. */
  private readonly gaveUp = new Map<string, Error>();
  /**
   * Peers that dialled our server (or `acceptVia`), by announced name: one per name, or through a transport one
   * per instance of that name.
   */
  private readonly accepted = new Map<string, NodeSocket[]>();
  /** Where the next tie-break among peers of one name starts (see leastPending). */
  private turn = 0;
  /** Accepted connections whose handshake is not done. */
  private readonly unidentified = new Set<Connection>();
  /** Those of `unidentified` whose hello has not come yet, in the order they came (see dropLongestWaiting). */
  private readonly silent = new Set<Connection>();
  /** Connections dropped to make room (maxHandshaking) whose socket has not closed yet: close() waits for them too. */
  private readonly dropped = new Set<Connection>();
  /** Stale connections taken over by their node's new one (see admit), whose end was told already. */
  private readonly replaced = new WeakSet<Connection>();
  private closing: Promise<void> | null = null;
  /** When the drain of `close({ drain })` gives up (`performance.now()` time): the earliest of the close() calls'. */
  private drainUntil = Infinity;
  /** `close({ drain })` is draining: the peers' new requests are refused (see drainRefusal). */
  private draining = false;
  /** Timeouts of the requests awaited through Promises. */
  private readonly timeouts = new TimeoutQueue();

  /**
   * @param name this node's name, announced to its peers.
   * @throws TypeError when `name` is not a non-empty string or an option is out of range.
   */
  constructor(name: string, options: NodeOptions = {}) {
    // An async listener's rejection comes to [captureRejectionSymbol] instead of going unhandled.
    super({ captureRejections: true });
    this.name = checkName(name, 'new Node(name): name');
    options = checkOptions(options, 'new Node(name, options): options');
    const opt = (key: keyof NodeOptions) => `options.${key}`;
    this.codec = checkCodec(options.codec);
    if (options.scheduler !== undefined && typeof options.scheduler?.schedule !== 'function') {
      throw new TypeError(`options.scheduler must be an RxJS scheduler, received ${received(options.scheduler)}`);
    }
    this.scheduler = options.scheduler;
    this.retryPolicy = {
      maxRetries: checkInteger(options.maxRetries, opt('maxRetries'), Infinity, 0, Infinity),
      retryTime: checkDuration(options.retryTime, opt('retryTime'), 200, { infinite: false }),
      maxRetryTime: checkDuration(options.maxRetryTime, opt('maxRetryTime'), 10_000),
    };
    const handshakeTimeout = checkDuration(options.handshakeTimeout, opt('handshakeTimeout'), 10_000, { min: 1 });
    const maxFrameSize = checkInteger(options.maxFrameSize, opt('maxFrameSize'), DEFAULT_MAX_FRAME_SIZE, ...MAX_FRAME_SIZE_RANGE);
    const maxDecodedSize = checkInteger(options.maxDecodedSize, opt('maxDecodedSize'), DEFAULT_MAX_DECODED_SIZE, 0, Infinity);
    const heartbeatInterval = checkDuration(options.heartbeatInterval, opt('heartbeatInterval'), 5_000);
    this.streamWindow = checkInteger(options.streamWindow, opt('streamWindow'), 128, ...CREDITS_RANGE);
    const streamBuffer = checkInteger(options.streamBuffer, opt('streamBuffer'), 1024, 0, Infinity);
    const exposeErrorStack = checkBoolean(options.exposeErrorStack, opt('exposeErrorStack'), false);
    this.requestTimeout = checkDuration(options.requestTimeout, opt('requestTimeout'), 30_000);
    this.maxPendingRequests = checkInteger(options.maxPendingRequests, opt('maxPendingRequests'), 100_000, 1, Infinity);
    this.maxHandshaking = checkInteger(options.maxHandshaking, opt('maxHandshaking'), 1024, 1, Infinity);
    this.maxWriteBuffer = checkInteger(options.maxWriteBuffer, opt('maxWriteBuffer'), 64 * 1024 * 1024, 0, Infinity);
    if (options.tls !== undefined) {
      checkTlsSettings(checkOptions(options.tls, opt('tls')), opt('tls'));
      // node:tls takes 0, a negative number or NaN for "no TLS handshake timeout": a client silent in it kept its
      // socket for good, where our own handshakeTimeout (which starts after it) is ≥ 1 ms.
      checkDuration(options.tls.handshakeTimeout, 'options.tls.handshakeTimeout', 0, { min: 1 });
    }
    this.tls = options.tls;
    this.socketMode = options.socketMode === undefined ? undefined : checkInteger(options.socketMode, opt('socketMode'), 0, 0, 0o7777);
    if (options.auth !== undefined) {
      const secret = checkOptions(options.auth, opt('auth')).secret as unknown;
      if ((typeof secret !== 'string' && !Buffer.isBuffer(secret)) || secret.length === 0) {
        throw new TypeError(`options.auth.secret must be a non-empty string or Buffer, received ${received(secret)}`);
      }
      this.secret = Buffer.from(secret);
    }
    if (options.transport !== undefined) {
      if (options.transport === null || typeof (options.transport as Partial<NodeTransport>).attach !== 'function') {
        throw new TypeError(`options.transport must be a transport (natsTransport(…) of ipc-link-core/nats), received ${received(options.transport)}`);
      }
      this.session = options.transport.attach({ name: this.name, instance: this.instance, report: (error) => this.report(error) });
    }
    this.host = {
      name: this.name,
      instance: this.instance,
      codec: this.codec,
      maxFrameSize,
      maxDecodedSize,
      handshakeTimeout,
      heartbeatInterval,
      streamBuffer,
      exposeErrorStack,
      maxPendingRequests: this.maxPendingRequests,
      maxWriteBuffer: this.maxWriteBuffer,
      onReady: (connection) => this.connectionReady(connection),
      onHello: (connection) => void this.silent.delete(connection),
      onMessage: (connection, id, request, data) => this.messageReceived(connection, id, request, data),
      refusal: (connection) => (this.draining ? this.drainRefusal(connection) : null),
      onRaw: (connection, chunk) => this.rawReceived(connection, chunk),
      onClosed: (connection) => this.connectionClosed(connection),
      report: (error) => this.report(error),
    };
    this.diallerHost = {
      open: (dialler) => this.open(dialler),
      forget: (dialler, error) => {
        this.forget(dialler.socket.name, dialler);
        // Why, for the ERR_IPC_NOT_CONNECTED of later sends (a rotated secret: ERR_IPC_AUTH); not a close of ours.
        if (!(error instanceof ClosedError) && !this.dialled.has(dialler.socket.name)) this.gaveUp.set(dialler.socket.name, error);
      },
      report: (error) => this.report(error),
    };
    this.messages$ = this.messages.asObservable();
    this.connections$ = this.connections.asObservable();
    this.disconnections$ = this.disconnections.asObservable();
    // The first snapshot synchronously, as the README says ("at once"): timer(0, …) gave it a timer turn later.
    // While close({ drain }) drains the node is still up, and so are its snapshots: only a closed node has none.
    this.stats$ = new RxObservable<NodeStats>((subscriber) => {
      if (this.closeDone) return subscriber.complete();
      subscriber.next(this.stats());
      if (subscriber.closed) return;
      return timer(1000, 1000)
        .pipe(
          map(() => this.stats()),
          takeUntil(this.closed),
        )
        .subscribe(subscriber);
    });
  }

  /** The server, once `serve` was called (`null` before, or when it could not listen). */
  get server(): net.Server | null {
    return this.#server;
  }

  /**
   * The label given to `serve` (informational: the node is known to peers by {@link Node.name}); `null` before, or
   * when it could not listen.
   */
  get serverName(): string | null {
    return this.#serverName;
  }

  /**
   * Starts a server; peers then `connectTo` it. `listenArgs` go to `net.Server#listen` unchanged: a port
   * (0 picks a free one), port and host, a Unix socket path, or an options object. Emits `'listening'`; listen
   * errors (EADDRINUSE…) arrive as `'error'` events (the node may then serve again); without an `'error'` listener,
   * one that keeps the node from serving is thrown as an uncaught exception, as `net.Server` does.
   * @param name a label for the server, kept as {@link Node.serverName}; peers know this node by its own name.
   * @throws IpcError `ERR_IPC_ALREADY_CONNECTED` when this node already serves, `ERR_IPC_CLOSED` after close;
   *   TypeError for a port outside 0–65535, an empty path, or a host where the port belongs (`serve(name, 'localhost')`).
   */
  serve(name: string, ...listenArgs: unknown[]): this {
    if (typeof name !== 'string') throw new TypeError(`serve(name): name must be a string (a label), received ${received(name)}`);
    checkListenArgs(listenArgs, 'serve');
    if (this.closing) throw new ClosedError(`Node "${this.name}" is closed`);
    if (this.#server || this.#serverName !== null) throw new IpcError(ErrorCode.ALREADY_CONNECTED, `Node "${this.name}" already serves`);
    if (this.session) return this.serveThrough(this.session, name, listenArgs);
    const tls = this.tls;
    if (tls && !((tls.key && tls.cert) ?? tls.pfx ?? tls.SNICallback ?? tls.pskCallback)) {
      // tls.createServer takes it (a cert without its key too), then refuses every client ("no suitable signature algorithm").
      throw new TypeError('serve: options.tls needs the key and cert (or pfx) of this server: a TLS server without a certificate refuses every client');
    }
    // A TLS client has handshakeTimeout for its TLS handshake too (Node's default is 120 s), unless tls says otherwise.
    const settings = tls && { handshakeTimeout: Math.min(this.host.handshakeTimeout, MAX_TIMER_DELAY), ...tls };
    const server = createServer(settings, (socket) => this.accept(socket, unverifiedClient(tls, socket)), {
      max: this.maxHandshaking,
      dropped: () => this.report(new HandshakeError(ErrorCode.HANDSHAKE, `A client was dropped in its TLS handshake to make room for a new one: ${this.crowded()}`, { retryable: true })),
    });
    // A client failing the TLS handshake (no or untrusted certificate, TLS handshake timeout) is reported and its
    // socket destroyed: Node leaves it open on a timeout, so a client that never finished held it for good. One
    // that only hung up first (ECONNRESET: a TCP health check, a port scan) is no TLS refusal: silent, as over TCP.
    server.on('tlsClientError', (error: Error, socket: net.Socket) => {
      socket.destroy();
      // A client silent in its TLS handshake is a handshake timeout, as one of a plain server: no TLS refusal.
      const silent = (error as NodeJS.ErrnoException).code === 'ERR_TLS_HANDSHAKE_TIMEOUT';
      const why = `A client did not finish its TLS handshake within ${settings?.handshakeTimeout} ms`;
      const refusal = silent ? new HandshakeError(ErrorCode.HANDSHAKE, why, { cause: error, retryable: true }) : tlsErrorOf(error, 'a client');
      if (refusal) this.report(refusal);
    });
    this.#server = server;
    this.#serverName = name;
    // A server that could not listen is forgotten: the node may serve again.
    const forget = () => {
      if (this.#server !== server) return;
      this.#server = null;
      this.#serverName = null;
    };
    try {
      listen(
        server,
        listenArgs,
        this.socketMode,
        (address) => this.emitSafely('listening', address),
        (error) => {
          const failed = !server.listening;
          if (failed) forget();
          // Closed meanwhile (serve, then close at once): a failure to listen is moot, and nothing surfaces after 'close'.
          if (this.closing) return;
          // Nobody listens for it: a node that does not serve must not go unnoticed (a daemon started twice exited 0 in
          // silence). Rethrown on its own, as an uncaught exception, as net.Server does.
          if (failed && this.listenerCount('error') === 0) {
            process.nextTick(() => {
              throw error;
            });
            return;
          }
          this.report(error);
        },
      );
    } catch (error) {
      // net refused the arguments at once (listen options the checks let through, such as `{}` or a `host` that is
      // no string): thrown to the caller, and the node does not serve, so it may serve again.
      forget();
      throw error;
    }
    return this;
  }

  /** `serve` through the transport: one instance of the service `name`. */
  private serveThrough(session: TransportSession, name: string, listenArgs: unknown[]): this {
    if (listenArgs.length > 0) throw new TypeError(`serve(name): with a transport, serve takes only the service name (received ${listenArgs.length} more argument${listenArgs.length === 1 ? '' : 's'})`);
    if (name !== this.name) {
      throw new TypeError(`serve(name): with a transport, a node serves under its own name ("${this.name}"), received "${name}": name the node after its service`);
    }
    const reachable = session.serve(name, (link) => this.accept(link));
    this.#serverName = name;
    reachable.then(
      (address) => {
        if (!this.closing) this.emitSafely('listening', address);
      },
      (error: Error) => {
        if (this.#serverName === name) this.#serverName = null;
        this.report(error);
      },
    );
    return this;
  }

  /**
   * Connects to the node named `name`. `connectArgs` go to `net.Socket#connect` unchanged (port[, host], a
   * path, or an options object; a host alone, such as `'localhost'`, is a TypeError: the port comes first).
   * Resolves once the handshake is done.
   *
   * `name` must be the peer's own name: a peer announcing another name is refused (`ERR_IPC_HANDSHAKE`).
   * Rejects with `ERR_IPC_CONNECT` after `maxRetries` failed attempts, `ERR_IPC_HANDSHAKE` when the peer
   * refuses us or speaks another protocol, `ERR_IPC_ALREADY_CONNECTED` when we already have a connection to
   * `name`, `ERR_IPC_CLOSED` when the node closes first. Once connected, a dropped connection reconnects by
   * itself.
   */
  connectTo(name: string, ...connectArgs: unknown[]): Promise<NodeSocket> {
    if (this.session) return this.connectThrough(this.session, name, connectArgs);
    return this.connectWith('connectTo', name, () => {
      checkConnectArgs(connectArgs, 'connectTo');
      return { connectArgs };
    });
  }

  /**
   * Like `connectTo`, over a socket you provide — one end of `createLinkPair()`, or any connected
   * `net.Socket`/Duplex. There is no reconnection: when it closes, the peer is gone.
   */
  connectVia(name: string, socket: ByteStream): Promise<NodeSocket> {
    return this.connectWith('connectVia', name, () => ({ via: checkDuplex(socket, 'connectVia(name, socket): socket') }));
  }

  /** `connectTo` through the transport: a Fleet, resolved once the first instance accepted us. */
  private connectThrough(session: TransportSession, name: string, connectArgs: unknown[]): Promise<NodeSocket> {
    try {
      checkName(name, 'connectTo(name): name');
      if (connectArgs.length > 0) throw new TypeError('connectTo(name): with a transport, connectTo takes only the name: the name is the address');
      this.checkDialable(name);
      const fleet = new Fleet(name, session, this.retryPolicy, {
        member: (link, host) => {
          let dialler!: Dialler;
          const socket = NodeSocket.create(this, 'client', name, { get connection() { return dialler.connection; } }); // prettier-ignore
          dialler = new Dialler(socket, { via: link }, this.retryPolicy, host);
          return dialler;
        },
        open: (dialler) => this.open(dialler),
        forget: (gone) => this.forget(name, gone),
        report: (error) => {
          if (shouldReport(error)) this.report(error);
        },
      });
      this.dialled.set(name, fleet);
      return fleet.start();
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /** @throws when the node is closed or already has a peer `name` it dialled. */
  private checkDialable(name: string): void {
    if (this.closing) throw new ClosedError(`Node "${this.name}" is closed`);
    if (this.dialled.has(name)) {
      throw new IpcError(ErrorCode.ALREADY_CONNECTED, `Already connected or connecting to "${name}": disconnectFrom it first`);
    }
  }

  /** A dialler or fleet gave up: the name is free again. */
  private forget(name: string, gone: Dialler | Fleet): void {
    if (this.dialled.get(name) === gone) this.dialled.delete(name);
  }

  /** connectTo and connectVia: one Dialler per peer name, which resolves once that peer accepted us. */
  private connectWith(method: string, name: string, target: () => DialTarget): Promise<NodeSocket> {
    try {
      checkName(name, `${method}(name): name`);
      const checked = target();
      this.checkDialable(name);
      let dialler!: Dialler;
      const socket = NodeSocket.create(this, 'client', name, { get connection() { return dialler.connection; } }); // prettier-ignore
      dialler = new Dialler(socket, checked, this.retryPolicy, this.diallerHost);
      this.dialled.set(name, dialler);
      this.gaveUp.delete(name);
      return dialler.start();
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /**
   * Serves one peer over a socket you provide (the other end of a `createLinkPair()` link), without `serve`.
   * @throws TypeError when `socket` is not a live Duplex; ClosedError (`ERR_IPC_CLOSED`) after `close()`.
   */
  acceptVia(socket: ByteStream): this {
    checkDuplex(socket, 'acceptVia(socket): socket');
    if (this.closing) throw new ClosedError(`Node "${this.name}" is closed`);
    this.accept(socket);
    return this;
  }

  /**
   * Sends `data` to `target` (a peer name, in either direction, or a {@link NodeSocket}) and resolves with its
   * reply (`message.reply(value)`).
   *
   * With `receptive: false` nothing is awaited from the peer: the promise resolves as soon as the socket has
   * room (at once, unless its buffer is above the high-water mark: then when it drains), so a producer that
   * awaits each send never piles up memory. It rejects if the connection is lost first, and with `ERR_IPC_TIMEOUT`
   * when the socket has not taken the message within `timeout` (it may still be delivered later). Once it
   * resolved, the message leaves even if the process then calls `process.exit()` (frames still waiting for the end
   * of the tick are handed to the socket on `'exit'`).
   *
   * Reusing a sent Buffer or Uint8Array: one of up to 8 KiB is copied, so it may be changed as soon as `sendTo`
   * returns. A larger one is sent without a copy: change it only once the promise resolved — a one-way send then
   * resolves only when the socket has taken its bytes, a receptive one when the reply came (the peer had it all).
   * After a rejection (timeout, lost connection) a large buffer may still be queued: do not reuse it.
   *
   * Rejects with `ERR_IPC_NOT_CONNECTED` at once when the target is unknown or down (nothing is queued),
   * `ERR_IPC_TIMEOUT` after `timeout`, `ERR_IPC_PEER_DISCONNECTED` when the peer is lost while we wait,
   * `ERR_IPC_REMOTE` when the peer answers with `message.error()`, `ERR_IPC_ENCODE` when `data` cannot be encoded.
   *
   * Same dispatch and pending table as {@link Node.request$}, without an RxJS pipe per request: the Promise
   * is the registry's observer and its timeout an entry of the node's shared timeout queue.
   */
  sendTo(target: Target, data: unknown, options: SendOptions & { receptive: false }): Promise<undefined>;
  sendTo<T = unknown>(target: Target, data: unknown, options?: SendOptions): Promise<T>;
  sendTo<T = unknown>(target: Target, data: unknown, options: SendOptions = {}): Promise<T> {
    let connection: Connection;
    let encoded: WirePayload;
    let timeout: number;
    try {
      checkTarget(target, 'sendTo(target): target', isSocket);
      options = checkSendOptions(options, 'sendTo(target, data, options): options');
      connection = this.sendable(target, options.receptive !== false);
      encoded = encodeWire(this.codec, data);
      connection = this.fitting(connection, target, encoded.payload, options.receptive !== false, 0);
      timeout = this.timeoutOf(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.deliver(connection, encoded, options.receptive !== false, timeout) as Promise<T>;
  }

  /**
   * The cold Observable of a request: nothing is sent until it is subscribed. It emits the reply and completes
   * — or, when the responder answers with `message.stream(…)`, every value it streams, then completes or errors
   * (`RemoteError`). Unsubscribing early (including `take(n)`, `takeUntil`, a timeout) sends a CANCEL: the
   * responder's source is torn down and nothing more crosses the wire. Flow control: the responder gets
   * `window` credits up front, topped up as values are consumed. `timeout` bounds the wait for the first value,
   * `idleTimeout` the wait between values. A lost connection errors it with `ERR_IPC_PEER_DISCONNECTED`.
   */
  request$(target: Target, data: unknown, options: RequestStreamOptions & { receptive: false }): Observable<undefined>;
  request$<T = unknown>(target: Target, data: unknown, options?: RequestStreamOptions): Observable<T>;
  request$<T = unknown>(target: Target, data: unknown, options: RequestStreamOptions = {}): Observable<T> {
    if (this.scheduler === undefined) return this.fastRequest$<T>(target, data, options);
    return defer(() => {
      checkTarget(target, 'request$(target): target', isSocket);
      options = checkRequestOptions(options);
      const receptive = options.receptive !== false;
      const sendable = this.sendable(target, receptive);
      const { encoding, payload } = encodeWire(this.codec, data);
      const connection = this.fitting(sendable, target, payload, receptive, receptive ? WINDOW_SIZE : 0);
      if (options.receptive === false) {
        const sent = this.oneWay(connection, { encoding, payload }, this.timeoutOf(options));
        // Taken at once: emitted at once, as without a scheduler — not on a microtask, after a TestScheduler flushed.
        return (sent === SENT ? [undefined] : sent) as ObservableInput<T>;
      }
      const window = options.window ?? this.streamWindow;
      const send = (id: number) => connection.send(FrameType.MESSAGE, FrameFlags.RECEPTIVE, id, encoding, payload, window);
      return request$<T>(connection.registry, send, {
        timeout: this.timeoutOf(options),
        idleTimeout: options.idleTimeout,
        label: `The request to "${connection.peerName}"`,
        window,
        grant: (id, n) => connection.grantIfOpen(id, n),
        cancel: (id) => connection.cancelIfOpen(id),
        scheduler: this.scheduler,
      });
    });
  }

  /** request$ without RxJS operators: the subscription is the registry's observer and a timeout-queue entry. */
  private fastRequest$<T>(target: Target, data: unknown, options: RequestStreamOptions): Observable<T> {
    return new RxObservable<T>((subscriber) => {
      let connection: Connection;
      let encoded: WirePayload;
      let checked: RequestStreamOptions;
      try {
        checkTarget(target, 'request$(target): target', isSocket);
        checked = checkRequestOptions(options);
        const receptive = checked.receptive !== false;
        connection = this.sendable(target, receptive);
        encoded = encodeWire(this.codec, data);
        connection = this.fitting(connection, target, encoded.payload, receptive, receptive ? WINDOW_SIZE : 0);
      } catch (error) {
        subscriber.error(error);
        return;
      }
      const timeout = this.timeoutOf(checked);
      if (checked.receptive === false) {
        const sent = this.oneWay(connection, encoded, timeout);
        if (sent === SENT) {
          // The socket took it at once: no promise turn to wait for.
          subscriber.next(undefined as T);
          subscriber.complete();
          return;
        }
        sent.then(
          () => {
            subscriber.next(undefined as T);
            subscriber.complete();
          },
          (error: unknown) => subscriber.error(error),
        );
        return;
      }
      const window = checked.window ?? this.streamWindow;
      const keepAlive = !(connection.socket instanceof net.Socket);
      const request = new StreamRequest(subscriber as Subscriber<unknown>, connection, this.timeouts, { window, timeout, idleTimeout: checked.idleTimeout ?? Infinity, keepAlive });
      request.start(encoded.encoding, encoded.payload);
      return request;
    });
  }

  /**
   * The answers to a request as an `AsyncIterableIterator`, **pulled at the consumer's pace**: credits are granted
   * as `next()` is called, not as values arrive, so the responder never runs more than `window` values ahead and
   * at most `window` values wait here — whatever the loop body does between two pulls. Nothing is sent before the
   * first `next()`. Leaving early (`break`, `return()`, a throw in the loop) sends CANCEL: the responder's source
   * is torn down; so does dropping the iterator without `return()`, once it is garbage-collected (GC decides when:
   * call `return()` to free the request at once). `timeout` bounds the wait for the first value, `idleTimeout` each later wait. Errors (a
   * `RemoteError`, `ERR_IPC_PEER_DISCONNECTED`, bad arguments, `ERR_IPC_NOT_CONNECTED`) reject a `next()`.
   *
   * It behaves as an async generator: `next()` may be called again before the previous call settled (the calls
   * settle in order, one value each, and the responder still runs at most `window` ahead of the values handed
   * out); an error rejects one `next()` and later ones resolve `done`; after `return()` or `throw(error)` —
   * even before the first `next()`, when nothing is ever sent — pending and later `next()` calls resolve `done`.
   *
   * Use `request$` for push pipelines (values flow as fast as they come; credits follow delivery), `iterate` for
   * pull (`for await` over work that takes time); to keep RxJS operators *and* this backpressure, see `pullEach`.
   *
   * @example
   * for await (const row of node.iterate('db', 'SELECT …', { window: 16 })) await store(row);
   */
  iterate<T = unknown>(target: Target, data: unknown, options: IterateOptions = {}): AsyncIterableIterator<T> {
    let inner: AsyncIterableIterator<T> | null = null;
    // Before the first next() there is no request yet: return() or throw() then end it without ever sending one,
    // and arguments that fail reject that one next() (later ones are done), as an async generator would.
    let ended = false;
    const done = (): Promise<IteratorResult<T>> => Promise.resolve({ value: undefined, done: true });
    return {
      next: () => {
        if (inner === null && !ended) {
          try {
            inner = this.openIterator<T>(target, data, options);
          } catch (error) {
            ended = true;
            return Promise.reject(error);
          }
        }
        return inner ? inner.next() : done();
      },
      return: () => {
        ended = true;
        return inner ? inner.return!() : done();
      },
      throw: (error?: unknown) => {
        ended = true;
        return inner ? inner.throw!(error) : Promise.reject(error);
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  /**
   * The request of an `iterate`, made at its first `next()`. A method of its own, not a closure within `iterate`:
   * the callbacks it hands to the pending table must not keep `iterate`'s scope alive — it holds the iterator, which
   * then could never be collected (and cancelled, see requestIterator) once the caller dropped it.
   */
  private openIterator<T>(target: Target, data: unknown, options: IterateOptions): AsyncIterableIterator<T> {
    checkTarget(target, 'iterate(target): target', isSocket);
    const checked: RequestStreamOptions = checkRequestOptions(options, 'iterate(target, data, options): options');
    // Refused by the type too; a JavaScript caller (or a cast) may still pass it.
    if (checked.receptive === false) throw new TypeError('iterate(target, data, options): options.receptive must not be false (there is nothing to iterate)');
    const sendable = this.sendable(target, true);
    const { encoding, payload } = encodeWire(this.codec, data);
    const connection = this.fitting(sendable, target, payload, true, WINDOW_SIZE);
    const window = checked.window ?? this.streamWindow;
    return requestIterator<T>(connection.registry, (id) => connection.send(FrameType.MESSAGE, FrameFlags.RECEPTIVE, id, encoding, payload, window), {
      window,
      timeout: this.timeoutOf(checked),
      idleTimeout: checked.idleTimeout ?? Infinity,
      label: `The request to "${connection.peerName}"`,
      grant: (id, n) => connection.grantIfOpen(id, n),
      cancel: (id) => connection.cancelIfOpen(id),
      // Its answer may wait among frames the connection read and has not handled yet (see TimeoutQueue's busy()).
      schedule: (callback, ms) => setLongTimeoutAfterIO(callback, ms, () => connection.catchingUp, MAX_CATCH_UP),
    });
  }

  /**
   * Sends `data` to every peer connected to our server (whose name matches `filter`, if given) and resolves
   * with their replies, in the order of the peers; rejects as soon as one of them fails (the other replies are
   * then lost: see {@link Node.broadcastSettled} to keep them). `data` is encoded once.
   */
  broadcast(data: unknown, options: BroadcastOptions & { receptive: false }): Promise<undefined[]>;
  broadcast<T = unknown>(data: unknown, options?: BroadcastOptions): Promise<T[]>;
  async broadcast<T = unknown>(data: unknown, options: BroadcastOptions = {}): Promise<T[]> {
    const calls = this.broadcastCalls<T>(data, options, 'broadcast(data, options): options');
    return Promise.all(calls.map((call) => call.reply));
  }

  /**
   * Like {@link Node.broadcast}, but waits for every peer and never rejects because of one: resolves with one
   * outcome per peer, in the order of the peers — `{ name, status: 'fulfilled', value }` with its reply, or
   * `{ name, status: 'rejected', reason }` (a timeout, a disconnection, a `RemoteError`…). One frozen peer among
   * fifty costs one `ERR_IPC_TIMEOUT` entry after `timeout`, not the other 49 replies. Rejects only for what
   * concerns the whole call: bad options (`TypeError`), a value that cannot be encoded (`ERR_IPC_ENCODE`), a node
   * that is closing or closed (`ERR_IPC_CLOSED`).
   *
   * @example
   * const outcomes = await node.broadcastSettled('status?', { timeout: 1000 });
   * const up = outcomes.filter((o) => o.status === 'fulfilled').map((o) => o.name);
   */
  broadcastSettled(data: unknown, options: BroadcastOptions & { receptive: false }): Promise<BroadcastOutcome<undefined>[]>;
  broadcastSettled<T = unknown>(data: unknown, options?: BroadcastOptions): Promise<BroadcastOutcome<T>[]>;
  async broadcastSettled<T = unknown>(data: unknown, options: BroadcastOptions = {}): Promise<BroadcastOutcome<T>[]> {
    const calls = this.broadcastCalls<T>(data, options, 'broadcastSettled(data, options): options');
    const settled = await Promise.allSettled(calls.map((call) => call.reply));
    return settled.map((outcome, i) =>
      outcome.status === 'fulfilled'
        ? { name: calls[i].name, status: 'fulfilled', value: outcome.value }
        : { name: calls[i].name, status: 'rejected', reason: outcome.reason as Error },
    );
  }

  /** One send per peer of our server matching `filter`; a peer that cannot be sent to is a rejected reply. */
  private broadcastCalls<T>(data: unknown, options: BroadcastOptions, what: string): { name: string; reply: Promise<T> }[] {
    options = checkBroadcastOptions(options, what);
    // As sendTo: a node that closes (or closed: it has no peers left) sends nothing.
    if (this.closing) throw new ClosedError(`Node "${this.name}" is closing`);
    const encoded = encodeWire(this.codec, data);
    const timeout = this.timeoutOf(options);
    const { filter } = options;
    const sockets = [...this.accepted.values()].flat().filter((socket) => {
      if (!filter) return true;
      filter.lastIndex = 0;
      return filter.test(socket.name);
    });
    return sockets.map((socket) => {
      let reply: Promise<T>;
      try {
        reply = this.deliver(this.sendable(socket, options.receptive !== false), encoded, options.receptive !== false, timeout) as Promise<T>;
      } catch (error) {
        reply = Promise.reject(error as Error);
      }
      return { name: socket.name, reply };
    });
  }

  /**
   * Measures the round trip to `target`, in milliseconds. A ping always awaits its pong: `receptive: false` is a
   * TypeError.
   */
  async pingTo(target: Target, options: { timeout?: number } = {}): Promise<number> {
    checkTarget(target, 'pingTo(target): target', isSocket);
    options = checkPingOptions(options, 'pingTo(target, options): options');
    const connection = this.sendable(target, true, true);
    const started = performance.now();
    await this.ask(connection, FrameType.PING, 0, { encoding: Encoding.BUFFER, payload: EMPTY_PAYLOAD }, this.timeoutOf(options));
    connection.lastRtt = performance.now() - started;
    return connection.lastRtt;
  }

  /** Counters of every live connection, summed, and per peer (`${role}:${name}`). */
  stats(): NodeStats {
    const total: NodeStats = { ...NO_TRAFFIC, peers: {}, handshaking: this.unidentified.size };
    for (const socket of this.sockets()) {
      const stats = socket.stats();
      // Peers of one name (the instances of a service, over a transport) are told apart by their instance id.
      let key = `${socket.role}:${socket.name}`;
      if (key in total.peers) key = `${key}#${socket.instance ?? Object.keys(total.peers).length}`;
      total.peers[key] = stats;
      total.framesIn += stats.framesIn;
      total.framesOut += stats.framesOut;
      total.bytesIn += stats.bytesIn;
      total.bytesOut += stats.bytesOut;
      total.pendingRequests += stats.pendingRequests;
      total.openStreams += stats.openStreams;
      if (stats.lastRtt !== null) total.lastRtt = Math.max(total.lastRtt ?? 0, stats.lastRtt);
    }
    return total;
  }

  /** The connected (or reconnecting) peer of that name, if any. */
  get(name: string): NodeSocket | undefined {
    if (typeof name !== 'string') throw new TypeError(`get(name): name must be a string, received ${received(name)}`);
    // The socket sendTo(name) would use: the one we dialled while it is connected, else a live one of our server
    // (two nodes connected both ways: ours may be reconnecting), else ours.
    const client = this.dialledSocket(name);
    return client?.connected ? client : (this.accepted.get(name)?.[0] ?? client);
  }

  /** The socket of a peer we dialled: the Dialler's, or the fleet member for the next request. */
  private dialledSocket(name: string): NodeSocket | undefined {
    const entry = this.dialled.get(name);
    return entry instanceof Fleet ? entry.pick() : entry?.socket;
  }

  /**
   * Closes every connection with `name` for good, both ways: the one we dialled is not reconnected, and the ones
   * it opened to our server are told not to reconnect. Requests pending on them reject with `ERR_IPC_CLOSED`.
   * Resolves with false when there is no such peer.
   */
  async disconnectFrom(name: string): Promise<boolean> {
    if (typeof name !== 'string') throw new TypeError(`disconnectFrom(name): name must be a string, received ${received(name)}`);
    const message = `Node "${this.name}" disconnected from "${name}"`;
    const dialler = this.dialled.get(name);
    // Both ways: the connection we dialled, and any it opened to our server (a pair of nodes that serve and
    // connect to each other); closing only ours left `sendTo(name)` working over the other.
    const sockets = this.accepted.get(name) ?? [];
    if (!dialler && sockets.length === 0) return false;
    await Promise.all([
      dialler?.stop(message),
      ...sockets.map((socket) => socket.connection?.close({ code: ErrorCode.CLOSED, message, reconnect: false })),
    ]);
    return true;
  }

  /**
   * Closes the node: rejects every pending request and connectTo (`ERR_IPC_CLOSED`), tells every peer,
   * flushes what was written, closes the server and every socket, clears every timer and completes the
   * streams. Idempotent: later calls return the same Promise; one with a shorter `drain` (a plain `close()`
   * included) cuts a drain in progress short.
   */
  close(options: CloseOptions = {}): Promise<void> {
    let reconnect: boolean;
    let drain: number;
    try {
      options = checkOptions(options, 'close(options): options');
      reconnect = checkBoolean(options.reconnect, 'close(options): options.reconnect', true);
      drain = checkDuration(options.drain, 'close(options): options.drain', 0);
    } catch (error) {
      return this.closing ?? Promise.reject(error);
    }
    // The earliest deadline wins: a second close() (say, a second Ctrl-C) does not wait for the first one's drain.
    this.drainUntil = Math.min(this.drainUntil, performance.now() + drain);
    if (this.closing === null) {
      // Known as closing before shutdown starts: what it ends calls back synchronously (a request$ subscriber's
      // error, a stream source's finalize), and a close() from there started a second shutdown ('close' twice).
      let settle!: { resolve: () => void; reject: (error: unknown) => void };
      this.closing = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
      this.shutdown(reconnect, drain).then(settle.resolve, settle.reject);
    }
    return this.closing;
  }

  private async shutdown(reconnect: boolean, drain: number): Promise<void> {
    const reason = { code: ErrorCode.CLOSED, message: `Node "${this.name}" is closing`, reconnect };
    const done: Promise<unknown>[] = [];
    const server = this.server;
    if (server) done.push(closeServer(server));
    // Over a transport too, nobody new comes in from now on (it answered discovery and opened links while draining).
    this.session?.stopServing?.();
    // Nothing new is dialled while closing: a connectTo still waiting for its peer (backoff, handshake) ends now, and
    // a fleet searches and links no more (its ready members finish their requests).
    for (const dialler of this.dialled.values()) {
      if (dialler instanceof Fleet) done.push(dialler.quiesce(reason.message));
      else if (!dialler.socket.connected) done.push(dialler.stop(reason.message));
    }
    if (drain > 0) {
      // Peers send their new requests elsewhere (GOAWAY); one that crosses it is refused, unseen (ERR_IPC_CLOSED).
      this.draining = true;
      for (const socket of this.sockets()) socket.connection?.goAway();
      await this.drained();
      this.draining = false;
    }
    for (const dialler of this.dialled.values()) done.push(dialler.stop(reason.message));
    for (const socket of [...this.accepted.values()].flat()) if (socket.connection) done.push(socket.connection.close(reason));
    for (const connection of [...this.unidentified, ...this.dropped]) done.push(connection.close(reason));
    await Promise.all(done);
    try {
      await this.session?.close();
    } catch (error) {
      // A transport that fails to let go (a NATS connection that will not close) must not keep the node half
      // closed: its timers, streams and 'close' still end here, the failure is reported.
      this.report(asError(error));
    }
    this.timeouts.clear();
    complete(this.messages);
    complete(this.connections);
    complete(this.disconnections);
    this.closeDone = true;
    next(this.closed, undefined);
    complete(this.closed);
    this.emitSafely('close');
  }

  /**
   * While draining, a peer's new request is refused at once — it was not handled, so its sender may safely send it
   * again elsewhere or later — instead of served: under steady load some request is always in flight, and the
   * drain would never end before its deadline, then cut whatever was in flight. A peer we await an answer from may
   * still ask (its answer may depend on ours).
   */
  private drainRefusal(connection: Connection): Error | null {
    if (this.waiting(connection.peerName, 'registry')) return null;
    return new ClosedError(`"${this.name}" is closing: the request was not handled (send it again once "${this.name}" is back, or to another node)`);
  }

  /**
   * True when, on any connection to the peer named `peer`, requests wait: ours for its answers (`'registry'`), or
   * its for ours (`'inbound'`). Only asked while one side drains (see drainRefusal and sendable).
   */
  private waiting(peer: string | null, side: 'registry' | 'inbound'): boolean {
    return this.sockets().some((socket) => {
      const connection = socket.connection;
      return socket.name === peer && connection !== null && (side === 'registry' ? connection.awaited : connection.inbound.size) > 0;
    });
  }

  /** Resolves once no request is in flight on any connection, or at `drainUntil` (which a later close() may bring forward). */
  private drained(): Promise<void> {
    const connections = () => this.sockets().flatMap((s) => (s.connection ? [s.connection] : []));
    // The PING behind a GOAWAY (see Connection.goAway) is awaited as a request: a peer that never answers it (one that
    // ignores PINGs, an older version that skips them under a write backlog) holds the drain for requestTimeout at
    // most — not for ever with `drain: Infinity` (nothing in flight, and close() never returned).
    const pingsUntil = performance.now() + this.requestTimeout;
    const idle = () => connections().every((c) => c.inbound.size === 0 && (c.registry.size === 0 || (c.awaited === 0 && performance.now() >= pingsUntil)));
    return new Promise((resolve) => {
      const check = () => {
        if (idle() || performance.now() >= this.drainUntil) return resolve();
        setTimeout(check, 5);
      };
      check();
    });
  }

  /** Every peer, dialled or accepted. */
  private sockets(): NodeSocket[] {
    const dialled = [...this.dialled.values()].flatMap((entry) => (entry instanceof Fleet ? entry.sockets() : [entry.socket]));
    return [...dialled, ...[...this.accepted.values()].flat()];
  }

  // ─── what the connections report (through `host`) ───────────────────────────────────────────────────

  private connectionReady(connection: Connection): void {
    const socket = connection.owner;
    const name = connection.peerName!;
    // Kept once the connection ended: the 'disconnect' of a fleet's member says which instance left.
    socket.setInstance(connection.peerInstance);
    if (this.draining) connection.goAway();
    if (connection.role === 'server') {
      this.unidentified.delete(connection);
      this.silent.delete(connection);
      socket.setName(name);
      this.admit(name, socket, connection.peerInstance, connection.peerResume);
      next(this.connections, socket);
      this.emitSafely('connection', name, socket);
      return;
    }
    // What this connection's server wants to see to let our next connection take it over (see admit).
    const dialler = this.diallerOf(connection);
    if (dialler) dialler.resumeToken = connection.resumeToken;
    const entry = this.dialled.get(connection.owner.name);
    if (entry instanceof Fleet) {
      if (dialler) entry.memberReady(dialler);
    } else dialler?.ready();
    next(this.connections, socket);
    this.emitSafely('connect', name, socket);
  }

  private messageReceived(connection: Connection, id: number, request: InboundRequest | null, data: unknown): void {
    const message = NodeMessage.create(connection, request, connection.owner, id, request !== null, data);
    // A Subject drops what nobody observes: skipping it then saves its per-value garbage (~100 bytes).
    if (this.messages.observed) next(this.messages, message);
    try {
      this.emit('message', message);
    } catch (error) {
      // A throwing handler answers its requester at once (unless it answered before throwing), and is reported.
      message.error(asError(error));
      this.report(asError(error));
    }
  }

  private rawReceived(connection: Connection, chunk: Buffer): void {
    if (this.listenerCount('raw') > 0) this.emitSafely('raw', connection.peerName ?? '', connection.owner, chunk);
  }

  private connectionClosed(connection: Connection): void {
    const socket = connection.owner;
    const name = connection.peerName;
    const error = connection.error;
    if (connection.role === 'server') {
      this.unidentified.delete(connection);
      this.silent.delete(connection);
      this.dropped.delete(connection);
      if (name !== null) this.release(name, socket);
      // Tell, then report, as for a peer we dialled. A stale connection taken over (see admit) was told gone already.
      if (name !== null && !this.replaced.delete(connection)) {
        next(this.disconnections, socket);
        this.emitSafely('socketClose', name);
      }
      if (error && shouldReport(error)) this.report(error);
      return;
    }
    // Settle first (the dialler gives up or schedules the next attempt), then tell, then report.
    const fleet = this.dialled.get(socket.name) instanceof Fleet;
    const unreported = this.diallerOf(connection)?.ended(connection, this.closing !== null) ?? null;
    if (name !== null) {
      next(this.disconnections, socket);
      this.emitSafely('disconnect', name, socket);
    }
    // A fleet's member that ends is dropped, the fleet goes on: that its instance went away is no error.
    if (unreported && (!fleet || shouldReport(unreported))) this.report(unreported);
  }

  /** The dialler whose connection this is — a fleet's member, maybe (none once it gave up). */
  private diallerOf(connection: Connection): Dialler | undefined {
    const entry = this.dialled.get(connection.owner.name);
    if (entry instanceof Fleet) return entry.memberOf(connection);
    return entry?.socket === connection.owner ? entry : undefined;
  }

  /**
   * A peer's connection to our server is ready: it joins the peers of its name. One that comes back with the
   * instance id of a peer still here, and the resume token we gave that peer's connection, takes its place: that
   * older connection is stale (its node lost it and reconnected before we noticed) and is dropped at once, its
   * pending requests rejected — and its end is told now ('socketClose', `disconnections$`), before the new
   * connection's 'connection', not once its socket closed. The instance id alone is no proof: every node the peer
   * connects to sees it.
   */
  private admit(name: string, socket: NodeSocket, instance: string | undefined, resume: string | undefined): void {
    const peers = this.accepted.get(name) ?? [];
    const stales = peers.filter((peer) => resumes(peer, instance, resume));
    // Among the peers before the stale ones' end is told: a listener that closes the node or disconnects from
    // `name` then ends this connection too (in no table meanwhile, it stayed open, and close() never resolved).
    this.accepted.set(name, [...peers.filter((peer) => !stales.includes(peer)), socket]);
    for (const stale of stales) {
      const connection = stale.connection;
      if (!connection) continue;
      this.replaced.add(connection);
      void connection.drop(new PeerDisconnectedError(`"${name}" reconnected: its previous connection was stale`));
      next(this.disconnections, stale);
      this.emitSafely('socketClose', name);
    }
  }

  /** A peer of our server is gone from the peers of its name. */
  private release(name: string, socket: NodeSocket): void {
    const peers = this.accepted.get(name)?.filter((peer) => peer !== socket) ?? [];
    if (peers.length > 0) this.accepted.set(name, peers);
    else this.accepted.delete(name);
  }

  // ─── opening connections ────────────────────────────────────────────────────────────────────────────

  /**
   * `maxHandshaking` peers wait for their handshake and one more came: the one that has waited longest among those
   * that have not said hello yet (the first of `silent`: a Set keeps the order of insertion) is dropped at once
   * — its socket destroyed, no CLOSE — or, when every one of them has, the one that has waited longest. A peer whose
   * hello was taken is a real client waiting for its own next step (one round trip): dropping it for a newcomer that
   * has said nothing yet wasted its progress, and in a herd of real clients (a hub restarted, a busy hub) dropped
   * the oldest, nearly done, over and over (36 of 40 clients under a cap of 4). It is reported as a retryable
   * `ERR_IPC_HANDSHAKE` error once its socket has closed, as a handshake timeout is, and moves to `dropped` at once,
   * so that the next one to come drops the next.
   */
  private dropLongestWaiting(): void {
    // The first of each Set: no scan, whatever the cap (a flood that says hello and then stalls would make one long).
    const [silent] = this.silent;
    const [first] = this.unidentified;
    const longest = silent ?? first;
    this.unidentified.delete(longest);
    this.silent.delete(longest);
    this.dropped.add(longest);
    void longest.drop(new HandshakeError(ErrorCode.HANDSHAKE, `A peer was dropped before its handshake to make room for a new one: ${this.crowded()}`, { retryable: true }));
  }

  /** Why a peer waiting for its handshake was dropped (see dropLongestWaiting). */
  private crowded(): string {
    return `${this.maxHandshaking} peers already waited for their handshake with "${this.name}" (maxHandshaking; a flood of silent connections?)`;
  }

  /** @param refusal why the peer is refused at once (a client certificate that failed verification), told with a CLOSE. */
  private accept(raw: ByteStream, refusal: IpcError | null = null): void {
    if (this.closing) {
      raw.destroy();
      return;
    }
    const link: { connection: Connection | null } = { connection: null };
    const socket = NodeSocket.create(this, 'server', '', link);
    // Twins are refused, unless the transport serves many nodes of one name; the same node coming back is not a twin.
    const accept = (name: string, instance: string | undefined, resume: string | undefined) => {
      const peers = this.accepted.get(name);
      if (!peers || this.session || peers.some((peer) => resumes(peer, instance, resume))) return undefined;
      const why = `A peer named "${name}" is already connected to "${this.name}"`;
      // Copies of one client (CLIs started with one name): each needs its own name.
      const help = `give each process a name of its own (say, \`${name.slice(0, 32)}-\${process.pid}\`) unless this is the same service restarting`;
      return new HandshakeError(ErrorCode.NAME_IN_USE, `${why}: ${help}`, { retryable: true });
    };
    try {
      link.connection = this.startConnection(raw, 'server', socket, { secret: this.secret, accept });
      // Room is made once this one could start (a byte stream that cannot is no reason to drop another).
      if (this.unidentified.size >= this.maxHandshaking) this.dropLongestWaiting();
      this.unidentified.add(link.connection);
      this.silent.add(link.connection);
      // Refused before anything of it is read; reported ('error') once its socket closed, as any failed handshake.
      if (refusal) link.connection.fail(refusal);
    } catch (error) {
      // A byte stream that cannot even start (say, a Duplex that throws): forget it, and say why.
      this.report(error as Error);
    }
  }

  /** DiallerHost#open: a socket to the dialler's target (read through a FrameReader when we create it). */
  private open(dialler: Dialler): Connection {
    const { socket, target } = dialler;
    const handshake = { expectedPeer: socket.name, secret: this.secret, resume: dialler.resumeToken };
    if ('via' in target) return this.startConnection(target.via, 'client', socket, handshake);
    const reader = new FrameReader();
    return this.startConnection(dial(this.tls, target.connectArgs, reader), 'client', socket, handshake, reader);
  }

  /** A started Connection over `raw` for `socket`; `raw` is destroyed when it cannot start. */
  private startConnection(raw: ByteStream, role: 'client' | 'server', socket: NodeSocket, handshake: HandshakeOptions, reader?: FrameReader): Connection {
    const connection = new Connection(raw, role, this.host, handshake, { reader, immediate: raw instanceof LinkSocket });
    connection.owner = socket;
    try {
      connection.start();
    } catch (error) {
      raw.destroy();
      throw error;
    }
    return connection;
  }

  /**
   * The live connection of `target`, checked for room to send more. `request`: an answer is awaited (a slot of
   * `maxPendingRequests`; a peer that drains takes none for its handler, but still answers a PING: `ping`).
   * @throws IpcError
   */
  private sendable(target: Target, request: boolean, ping = false): Connection {
    // While it drains, a node may still call out as long as it answers its peers' requests: a service that asks
    // another (a database) to answer them would fail them, the very requests the drain lets finish.
    if (this.closing && !(this.draining && this.answering())) throw new ClosedError(`Node "${this.name}" is closing`);
    const connection = this.connectionOf(target);
    if (connection.queuedBytes > this.maxWriteBuffer) {
      throw new IpcError(
        ErrorCode.WRITE_BUFFER_FULL,
        `${connection.queuedBytes} bytes already wait to be sent to "${connection.peerName}" (maxWriteBuffer ${this.maxWriteBuffer}): it does not read fast enough; await your sends`,
      );
    }
    // A peer that drains still takes requests from a peer it awaits answers from (they may need ours), over any of
    // our connections to it (two nodes connected both ways call each other over different ones): see drainRefusal.
    if (request && !ping && connection.goingAway && !this.waiting(connection.peerName, 'inbound')) {
      throw new NotConnectedError(`"${connection.peerName}" is closing: it takes no new requests (it answers those it has)`);
    }
    if (request && connection.awaited >= this.maxPendingRequests) {
      const n = this.maxPendingRequests;
      const already = n === 1 ? '1 request to' : `${n} requests to`;
      throw new IpcError(ErrorCode.TOO_MANY_REQUESTS, `${already} "${connection.peerName}" already ${n === 1 ? 'awaits' : 'await'} an answer (the maxPendingRequests of "${this.name}")`);
    }
    return connection;
  }

  /**
   * `connection`, or, when `target` is a name that several peers share (instances of one service over NATS) and
   * `payload` (with `extra` bytes of credits) is over this one's `maxFrameSize`, the least busy of those whose limit
   * takes it: during a rolling deploy that raises `maxFrameSize`, a large value goes to an instance that accepts it
   * instead of failing whenever the least busy one is still an old one. None takes it: `connection` (the send then
   * fails with `ERR_IPC_FRAME_TOO_LARGE`).
   * @throws IpcError as {@link Node.sendable}, for the peer chosen instead.
   */
  private fitting(connection: Connection, target: Target, payload: Uint8Array | string, request: boolean, extra: number): Connection {
    if (typeof target !== 'string' || connection.fits(payload, extra)) return connection;
    const entry = this.dialled.get(target);
    const peers = [...(entry instanceof Fleet ? entry.sockets() : []), ...(this.accepted.get(target) ?? [])];
    const fit = peers.filter((socket) => socket.connection?.writable && this.knows(socket) && socket.connection.fits(payload, extra));
    const socket = fit.length === 0 ? undefined : leastPending(fit, this.turn++);
    return socket === undefined ? connection : this.sendable(socket, request);
  }

  /** Some peer's request is being handled here (admitted, not answered yet). */
  private answering(): boolean {
    return this.sockets().some((socket) => (socket.connection?.inbound.size ?? 0) > 0);
  }

  /** The live connection of `target`. @throws NotConnectedError */
  private connectionOf(target: Target): Connection {
    let socket: NodeSocket | undefined;
    if (target instanceof NodeSocket) socket = target;
    else if (typeof target === 'string') {
      const client = this.dialledSocket(target);
      socket = client?.connected ? client : (this.acceptedSocket(target) ?? client);
    }
    const connection = socket?.connection;
    if (!socket || !connection?.writable || !this.knows(socket)) {
      const what = typeof target === 'string' ? `"${target}"` : `"${socket?.name ?? String(target)}"`;
      throw new NotConnectedError(`Node "${this.name}" is not connected to ${what}${this.whyNot(target, socket)}`);
    }
    return connection;
  }

  /** What an ERR_IPC_NOT_CONNECTED adds for the usual mistakes (built only for the error). */
  private whyNot(target: Target, socket: NodeSocket | undefined): string {
    const notUp = ': its connection is not up (connecting or reconnecting: await connectTo before sending)';
    if (socket?.role === 'client' && this.knows(socket)) return notUp;
    // Over a transport, connectTo(name) searches for instances: until one is linked there is no socket at all.
    if (typeof target === 'string' && this.dialled.get(target) instanceof Fleet) return notUp;
    if (socket || typeof target !== 'string') return '';
    if (target === this.name) return ": that is this node's own name (send to the names of its peers)";
    const gaveUp = this.gaveUp.get(target);
    if (gaveUp) return `: its connection ended for good (${(gaveUp as { code?: string }).code ?? gaveUp.name}: ${gaveUp.message})`;
    if (target === this.#serverName) return ': that is the label given to serve, not a peer (send to the names of the peers that connected)';
    return '';
  }

  /** The socket of a peer of our server for the next request (the least busy, when several share the name). */
  private acceptedSocket(name: string): NodeSocket | undefined {
    const peers = this.accepted.get(name);
    return peers && (peers.length === 1 ? peers[0] : leastPending(peers, this.turn++));
  }

  /** `socket` is one of our current peers (not one that was dropped or replaced). */
  private knows(socket: NodeSocket): boolean {
    if (socket.role === 'server') return this.accepted.get(socket.name)?.includes(socket) ?? false;
    const entry = this.dialled.get(socket.name);
    return entry instanceof Fleet ? entry.has(socket) : entry?.socket === socket;
  }

  /** A message to one peer, awaiting its reply (`receptive`) or only the socket: the path of sendTo and broadcast. */
  private deliver(connection: Connection, encoded: WirePayload, receptive: boolean, timeout: number): Promise<unknown> {
    return receptive ? this.ask(connection, FrameType.MESSAGE, FrameFlags.RECEPTIVE, encoded, timeout) : this.oneWay(connection, encoded, timeout);
  }

  /** A one-way message (see `Connection#sendOneWay`, with `timeout`); never throws. */
  private oneWay(connection: Connection, encoded: WirePayload, timeout: number): Promise<void> {
    try {
      return connection.sendOneWay(encoded.encoding, encoded.payload, timeout);
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /** Sends a request frame and resolves with the answer: the Promise path shared by sendTo, broadcast, pingTo. */
  private ask(connection: Connection, type: number, flags: number, encoded: WirePayload, timeout: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const { registry } = connection;
      const request = new PendingRequest(resolve, reject, connection, this.timeouts, timeout);
      request.id = registry.register(request);
      // 0 is no time at all: only an answer that came within send (an in-memory link) beats it — not a timer's race.
      if (timeout > 0 && Number.isFinite(timeout)) this.timeouts.add(request, timeout, !(connection.socket instanceof net.Socket));
      try {
        connection.send(type, flags, request.id, encoded.encoding, encoded.payload);
      } catch (error) {
        registry.take(request.id)?.error(error as Error);
      }
      if (timeout === 0 && registry.get(request.id) === request) request.expire();
    });
  }

  /** The timeout of one call (its options are checked already: see checkSendOptions). */
  private timeoutOf(options: { timeout?: number }): number {
    return options.timeout ?? this.requestTimeout;
  }

  /** An `'error'` event, when somebody listens. */
  private report(error: Error): void {
    if (this.listenerCount('error') > 0) this.emitSafely('error', error);
  }

  /**
   * @internal A listener returned a rejected promise (`captureRejections`): an async `'message'` handler's failure
   * answers its requester at once (unless it answered before) and is reported when someone listens, as a sync
   * throw is; any other listener's is rethrown on its own, as an uncaught exception.
   */
  override [EventEmitter.captureRejectionSymbol]<K>(error: Error, event: keyof NodeEvents | K, ...args: unknown[]): void {
    if (event === 'message' && args[0] instanceof NodeMessage) {
      args[0].error(asError(error));
      return this.report(asError(error));
    }
    setImmediate(() => {
      throw error;
    });
  }


  /**
   * Emits an event without letting a throwing listener unwind into the node: the throw is rethrown on its own
   * (an uncaught exception, as from any event listener), after the node's state is settled.
   */
  private emitSafely<K extends keyof NodeEvents>(event: K, ...args: NodeEvents[K]): void {
    try {
      (this.emit as (event: K, ...args: NodeEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      // Not process.nextTick: a tick that throws can run inside the socket's read callback.
      setImmediate(() => {
        throw error;
      });
    }
  }
}

/**
 * Feeds a stream without letting a throwing subscriber unwind into the node. RxJS reports such a throw on its own
 * (`config.onUnhandledError`, else an uncaught exception), but with its deprecated `useDeprecatedSynchronousErrorHandling`
 * it throws out of `next()`/`complete()`: it then ended the peer's connection (or made close() reject, half done).
 * Rethrown on its own instead, as a throwing listener's is (see emitSafely).
 */
function next<T>(subject: Subject<T>, value: T): void {
  try {
    subject.next(value);
  } catch (error) {
    rethrowApart(error);
  }
}

/** Completes a stream as {@link next} feeds it. */
function complete<T>(subject: Subject<T>): void {
  try {
    subject.complete();
  } catch (error) {
    rethrowApart(error);
  }
}

function rethrowApart(error: unknown): void {
  setImmediate(() => {
    throw error;
  });
}

/** 8 random hex digits. Not a secret (peers see it), only unique: Math.random spares loading node:crypto. */
function randomHex(): string {
  return Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, '0');
}

/** A client coming back as `instance` with `resume` may take `peer`'s connection over: it shows that connection's token. */
function resumes(peer: NodeSocket, instance: string | undefined, resume: string | undefined): boolean {
  const connection = peer.connection;
  if (instance === undefined || resume === undefined || !connection || peer.instance !== instance || connection.resumeToken === undefined) return false;
  return sameProof(connection.resumeToken, resume);
}

/** Errors that only say the peer went away are not worth an 'error' event: 'socketClose' says it. */
function shouldReport(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code !== 'ECONNRESET' && code !== 'EPIPE' && !(error instanceof PeerDisconnectedError);
}

/** `options.codec`: an object with `encode` and `decode` methods; `undefined` gives the built-in Serializer. */
function checkCodec(codec: Codec | undefined): Codec {
  if (codec === undefined) return defaultCodec;
  let methods: boolean;
  try {
    methods = codec !== null && typeof codec === 'object' && typeof codec.encode === 'function' && typeof codec.decode === 'function';
  } catch (cause) {
    // A getter (or a Proxy trap) that throws: the same TypeError as for a missing method, not its own error.
    throw new TypeError(`options.codec must be an object with encode and decode methods, reading them threw: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  if (!methods) throw new TypeError(`options.codec must be an object with encode and decode methods, received ${received(codec)}`);
  return codec;
}

const isSocket = (value: unknown): boolean => value instanceof NodeSocket;

/** `request$` options: those of sendTo, plus `idleTimeout` (a duration) and `window` (credits, an integer). */
function checkRequestOptions(options: RequestStreamOptions | undefined, what = 'request$(target, data, options): options'): RequestStreamOptions {
  const checked = checkSendOptions(options, what);
  if (checked.idleTimeout !== undefined) checkDuration(checked.idleTimeout, `${what}.idleTimeout`, Infinity);
  if (checked.window !== undefined) checkInteger(checked.window, `${what}.window`, 0, ...CREDITS_RANGE);
  return checked;
}

/** `broadcast` options: those of sendTo, plus `filter` (a RegExp). */
function checkBroadcastOptions(options: BroadcastOptions | undefined, what: string): BroadcastOptions {
  const checked = checkSendOptions(options, what);
  if (checked.filter !== undefined && !(checked.filter instanceof RegExp)) {
    throw new TypeError(`${what}.filter must be a RegExp, received ${received(checked.filter)}`);
  }
  return checked;
}
