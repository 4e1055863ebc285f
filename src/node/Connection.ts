import type { ByteStream } from './ByteStream';
import type { ObservableInput, Observer, Subscription } from 'rxjs';
import { ClosedError, ConnectError, ErrorCode, HandshakeError, IpcError, IpcTimeoutError, NotConnectedError, PeerDisconnectedError, ProtocolError, RemoteError } from '../errors';
import { Encoding, FrameFlags, FrameType, HANDSHAKE_MAX_FRAME_SIZE, HEADER_SIZE } from '../protocol/constants';
import type { OutgoingFrame } from '../protocol/FrameEncoder';
import { closeFrame, encodeError, encodeRequestN, errorCode, readClose, readError, readRequestN, readWindow, WINDOW_SIZE, type CloseBody, type ErrorBody } from '../protocol/control';
import { EMPTY_PAYLOAD, type Frame } from '../protocol/Frame';
import { Handshake, type HandshakeOptions } from '../protocol/handshake';
import { decodeValue, encodeWire, type Codec } from '../protocol/Serializer';
import { decodeFrames } from '../rx/decodeFrames';
import { fromSocket } from '../rx/fromSocket';
import type { FrameReader } from '../rx/FrameReader';
import { setLongTimeoutAfterIO, within } from './duration';
import { FrameWriter, PACK_LIMIT } from './FrameWriter';
import { Heartbeat, PING_STAMP_SIZE } from './Heartbeat';
import { noSocketAt } from './transport';
import type { NodeSocket } from './NodeSocket';
import { asError } from './asError';
import { InboundRequests, type InboundRequest } from './InboundRequests';
import { RequestRegistry } from '../rx/RequestRegistry';
import { StreamResponder, type StreamSink } from './StreamResponder';
import { tlsErrorOf } from './tlsError';

/** What `sendOneWay` returns when the socket had room: nothing to wait for. */
export const SENT: Promise<void> = Promise.resolve();
/** How long a closing connection waits for the peer to close its side before destroying the socket. */
const CLOSE_GRACE_MS = 2000;

/** Counters of one connection, as `NodeSocket#stats()` and `Node#stats()` give them. */
export interface ConnectionStats {
  /** Frames received, control frames included. */
  framesIn: number;
  /** Frames written. */
  framesOut: number;
  /** Bytes received, headers included. */
  bytesIn: number;
  /** Bytes written, headers included. */
  bytesOut: number;
  /** Our requests awaiting an answer (streams included). */
  pendingRequests: number;
  /** Streamed replies we are sending. */
  openStreams: number;
  /** Round trip of the last ping (heartbeat or `pingTo`), in ms; null before the first. */
  lastRtt: number | null;
}

/** What a {@link Connection} needs from the node that owns it. */
export interface ConnectionHost {
  readonly name: string;
  /** The node's instance id, announced in its hellos. */
  readonly instance: string;
  readonly codec: Codec;
  readonly maxFrameSize: number;
  readonly maxDecodedSize: number;
  readonly handshakeTimeout: number;
  readonly heartbeatInterval: number;
  readonly streamBuffer: number;
  readonly exposeErrorStack: boolean;
  readonly maxPendingRequests: number;
  readonly maxWriteBuffer: number;
  onReady(connection: Connection): void;
  /** A server's connection took the client's hello: its handshake is under way (see the node's `maxHandshaking`). */
  onHello(connection: Connection): void;
  /**
   * A message arrived: `request` is its admission when it is receptive (it holds a slot until answered, cancelled
   * or the end), null when it awaits no answer.
   */
  onMessage(connection: Connection, id: number, request: InboundRequest | null, data: unknown): void;
  /**
   * The node drains (`close({ drain })`): a request of this peer that arrives now is refused with this error
   * (not handled), unless the node awaits an answer of that peer; null while it does not drain.
   */
  refusal(connection: Connection): Error | null;
  onRaw(connection: Connection, chunk: Buffer): void;
  onClosed(connection: Connection): void;
  /** Something went wrong that only an `'error'` event can tell (a payload that does not decode…). */
  report(error: Error): void;
}

/** Where a connection is in its life; it only ever moves forward. */
export type ConnectionState = 'handshaking' | 'open' | 'closing' | 'closed';

/** How a connection ends: see {@link Connection.end}. */
interface Ending {
  /** Why, when it is not a clean close. */
  error?: Error;
  /** What pending requests reject with (default: "the connection was lost", with `error` as cause). */
  pending?: Error;
  /** Reconnecting is pointless or unwanted. */
  final?: boolean;
  /** Tell the peer with a CLOSE frame first. */
  notify?: CloseBody;
  /** Destroy the socket at once instead of flushing and ending it. */
  destroy?: boolean;
}

/**
 * One live socket: its frame pipeline (`fromSocket` → `decodeFrames`, or a `FrameReader` for sockets we dial,
 * → {@link Connection.dispatch}), its writer, its handshake, the requests we sent (`registry`) and the ones the
 * peer sent us (`inbound`). A client that reconnects gets a new Connection. Every way of ending goes through
 * {@link Connection.end}.
 *
 * The write methods' names say what they do when the connection is not open: `send…` throws, `trySend…` returns
 * false, `…IfOpen` does nothing (an answer or a control frame nobody can receive any more).
 */
export class Connection implements StreamSink {
  /** The peer's announced name, once the handshake is done. */
  peerName: string | null = null;
  state: ConnectionState = 'handshaking';
  /** Why the connection ended, when it was not a clean close. */
  error: Error | null = null;
  /** Reconnecting is pointless or unwanted: the peer said so, refused us for good, or broke the protocol. */
  final = false;
  /**
   * The code of the CLOSE the peer ended the connection with, if it sent one: `ERR_IPC_CLOSED` when it closed on
   * purpose, else the error it found in what it received (`ERR_IPC_PROTOCOL`…).
   */
  peerCloseCode: string | null = null;
  /** The public handle this connection serves. */
  owner!: NodeSocket;
  /** Frames and bytes received (stats). */
  framesIn = 0;
  bytesIn = 0;
  /** Round trip of the last ping (heartbeat or pingTo), in ms. */
  lastRtt: number | null = null;
  /** The largest payload the peer accepts (announced in its hello). */
  peerMaxFrameSize = 0;
  /** The peer's instance id (announced in its hello), once the handshake is done. */
  peerInstance: string | undefined;
  /** This connection's resume token, once the handshake is done (see `AckBody.resume`): the server's, or the one the client was given. */
  resumeToken: string | undefined;
  /** Server: the resume token the client showed, to take its previous connection over. */
  peerResume: string | undefined;
  /** Requests this side sent and awaits answers for. */
  readonly registry = new RequestRegistry();
  /** Requests the peer sent and awaits our answers for: the one owner of their credits and streams. */
  readonly inbound: InboundRequests;
  /** Resolves once the socket is fully closed and everything is cleaned up. */
  readonly closed: Promise<void>;

  private resolveClosed!: () => void;
  private readonly writer: FrameWriter;
  private readonly handshake: Handshake;
  private subscription: Subscription | null = null;
  private drain: { promise: Promise<void>; resolve(): void; reject(error: Error): void; within?: Map<number, Promise<void>> } | null = null;
  /** Disarms the handshake timer (null when none is armed). */
  private handshakeTimer: (() => void) | null = null;
  private readonly heartbeat: Heartbeat;
  private graceTimer: NodeJS.Timeout | null = null;
  /** What ended the connection on purpose (our close, the peer's CLOSE): what the sends it leaves behind reject with. */
  private closeReason: Error | null = null;
  /** Reading is paused until our answers to the peer drained (see pauseReading). */
  private readingPaused = false;
  /** Answers are being refused (see reply) and the node was told: until the socket drains. */
  private refusing = false;
  /**
   * Frames the decoder handed out after reading paused (pauseReading, yieldTurn): the rest of the chunk that was
   * being decoded (pausing the socket stops the next chunks, not this one). Handled once reading resumes, from
   * `heldAt` on.
   */
  private held: Frame[] = [];
  private heldAt = 0;
  /** The peer sent GOAWAY (see {@link Connection.goingAway}). */
  private peerGoingAway = false;
  /** We sent GOAWAY. */
  private wentAway = false;
  /** The id of the PING behind our GOAWAY, until its PONG (0: none out). */
  private goAwayPing = 0;
  /** The peer sent GOAWAY and no PING since: the next one is answered even past PONG_BACKLOG (see dispatch). */
  private goAwayPongOwed = false;
  /** Reading is paused until the next turn of the event loop (see yieldTurn); `framesIn` when it last was. */
  private yielding = false;
  /** Reading resumed after a yield in this turn, and the socket was not polled since (see catchingUp). */
  private resumed = false;
  private framesAtYield = 0;
  /** Values pushed sources took since reading last yielded, counted as frames (see yieldTurn, tookValue). */
  private turnWork = 0;
  /** The stream delivers writes synchronously (an in-memory link): never paused to yield. */
  private readonly immediate: boolean;
  /** The FrameReader `socket` reads through, when it was created with one. */
  private readonly reader: FrameReader | undefined;

  constructor(
    readonly socket: ByteStream,
    readonly role: 'client' | 'server',
    private readonly host: ConnectionHost,
    handshake: HandshakeOptions,
    transport: {
      /** Set when `socket` was created with `reader.onread`: its bytes come through the reader, not 'data'. */
      reader?: FrameReader;
      /** The stream delivers writes synchronously (an in-memory link): write every frame at once, no corking. */
      immediate?: boolean;
    } = {},
  ) {
    this.reader = transport.reader;
    this.immediate = transport.immediate === true;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.writer = new FrameWriter(socket, transport.immediate);
    this.handshake = new Handshake(role, host.name, { ...handshake, maxFrameSize: host.maxFrameSize, instance: host.instance });
    this.inbound = new InboundRequests(host.maxPendingRequests);
    this.heartbeat = new Heartbeat(host.heartbeatInterval, {
      ping: (stamp) => {
        if (this.writable) this.writer.write(FrameType.PING, 0, 0, Encoding.BUFFER, stamp);
      },
      // A silent peer: the socket is destroyed, pending requests reject, a client reconnects.
      dead: (silence) => {
        void this.drop(new PeerDisconnectedError(`No sign of life from "${this.peerName}" for ${silence} ms (heartbeat)`));
      },
    });
  }

  /** Starts reading, sends the client's hello and arms the handshake timer. */
  start(): void {
    const { socket, host } = this;
    // First, before anything can emit: a socket 'error' without a listener would crash the process. Kept for
    // the socket's whole life.
    socket.on('error', (error) => this.noteSocketError(error));
    // Any Duplex will do (connectVia/acceptVia): socket-only methods only when present.
    if (typeof socket.setNoDelay === 'function') socket.setNoDelay(true);
    // A Duplex that allows half-open would stay open (no 'close') once the peer ended: end our side too.
    if (socket.allowHalfOpen) socket.once('end', () => socket.end());
    const decoding = { maxFrameSize: () => (this.state === 'open' ? host.maxFrameSize : HANDSHAKE_MAX_FRAME_SIZE) };
    const onChunk = (chunk: Buffer) => {
      this.heartbeat.heard();
      host.onRaw(this, chunk);
    };
    const frames = this.reader ? this.reader.frames(socket, decoding, onChunk) : fromSocket(socket).pipe(decodeFrames(decoding));
    if (!this.reader) socket.on('data', onChunk);
    this.subscription = frames.subscribe({
      next: (frame) => this.receive(frame),
      error: (error: Error) => this.onStreamError(error),
    });
    socket.once('close', () => this.finish());
    const hello = this.handshake.start();
    if (hello) this.sendControl(hello);
    // After the I/O of its turn: a hello that arrived while the event loop was blocked past the deadline counts.
    this.handshakeTimer = setLongTimeoutAfterIO(() => {
      this.fail(new HandshakeError(ErrorCode.HANDSHAKE, `No handshake within ${host.handshakeTimeout} ms (the handshakeTimeout of "${host.name}")`, { retryable: true }));
    }, host.handshakeTimeout);
  }

  /**
   * Frames were read and not all handled yet: reading pauses for a turn of the event loop (see yieldTurn), or it
   * resumed this turn and the socket was not read since, so an answer may wait among them. A timeout due now waits
   * for them (see {@link Expiring.busy}).
   */
  get catchingUp(): boolean {
    return this.yielding || this.resumed;
  }

  /** True when frames may be written. */
  get writable(): boolean {
    return this.state === 'open';
  }

  /**
   * The peer drains before closing (it sent GOAWAY): it answers what it has and refuses new requests, so the node
   * sends them elsewhere, or fails them with `ERR_IPC_NOT_CONNECTED` when there is nowhere else.
   */
  get goingAway(): boolean {
    return this.peerGoingAway;
  }

  // ─── the requester's side: our requests and messages ───────────────────────────────────────────────

  /**
   * Writes one frame of ours (a message, a request, a ping); see {@link FrameWriter.write}. `window` ≥ 0 rides
   * in a receptive MESSAGE as its initial credits (`FrameFlags.WINDOW`).
   * @throws NotConnectedError when the connection is not open; IpcError `ERR_IPC_FRAME_TOO_LARGE` when the
   *   payload exceeds the peer's `maxFrameSize` (nothing is written).
   */
  send(
    type: number,
    flags: number,
    id: number,
    encoding: number,
    payload: Uint8Array | string,
    window = -1,
    written?: (error?: Error | null) => void,
  ): boolean {
    if (!this.writable) throw new NotConnectedError(`The connection to "${this.peerName ?? 'unknown'}" is not open`);
    this.checkSize(payload, window < 0 ? 0 : WINDOW_SIZE);
    return this.writer.write(type, window < 0 ? flags : flags | FrameFlags.WINDOW, id, encoding, payload, window, written);
  }

  /**
   * @param payload bytes, or text (its UTF-8 counted only when 3 bytes a character could be over the limit)
   * @param extra bytes written before the payload (a WINDOW)
   * @throws IpcError `ERR_IPC_FRAME_TOO_LARGE` when the payload exceeds the peer's limit.
   */
  checkSize(payload: Uint8Array | string, extra = 0): void {
    if (this.fits(payload, extra)) return;
    const length = (typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.length) + extra;
    // A request$/iterate request carries its credits (WINDOW, 4 bytes) in the frame's payload, ahead of the value.
    const credits = extra > 0 ? ` (and the ${extra} bytes of credits its request carries)` : '';
    throw new IpcError(
      ErrorCode.FRAME_TOO_LARGE,
      `A payload of ${length - extra} bytes${credits} exceeds the maxFrameSize of "${this.peerName}" (${this.peerMaxFrameSize} bytes): nothing was sent`,
    );
  }

  /** Whether `payload` (bytes, or text as UTF-8) and `extra` bytes before it are within the peer's `maxFrameSize`. */
  fits(payload: Uint8Array | string, extra = 0): boolean {
    const text = typeof payload === 'string';
    if ((text ? 3 * payload.length : payload.length) + extra <= this.peerMaxFrameSize) return true;
    return (text ? Buffer.byteLength(payload, 'utf8') : payload.length) + extra <= this.peerMaxFrameSize;
  }

  /**
   * What an ERROR or STREAM_ERROR frame reports: a RemoteError, or, for a body over our `maxDecodedSize`, an
   * `ERR_IPC_FRAME_TOO_LARGE` that says it was the peer's error answer and whose limit it broke (it stands in for
   * the peer's error, which was not read: not a value of ours, nor the peer's limit).
   */
  private remoteError(frame: Frame): IpcError {
    let body: ErrorBody;
    try {
      body = readError(frame, this.host.maxDecodedSize);
    } catch (tooLarge) {
      return new ProtocolError(
        ErrorCode.FRAME_TOO_LARGE,
        `The error answer of "${this.peerName}" (${frame.payload.length} bytes) is over the maxDecodedSize of "${this.host.name}" (${this.host.maxDecodedSize} bytes): not read (raise it to see the error)`,
        { cause: tooLarge },
      );
    }
    return new RemoteError(body.name, body.message, body.code, body.stack);
  }

  /** Bytes written and not yet taken by the kernel. */
  get queuedBytes(): number {
    return this.writer.queuedBytes;
  }

  /**
   * Sends a message that awaits no reply; once it resolves, `payload` may be reused. A payload up to 8 KiB is
   * copied: resolves at once while the socket's buffer is below its high-water mark ({@link SENT}), else when it
   * drains (backpressure). A larger one is not copied: resolves once the socket has taken its bytes. Rejects if
   * the connection is lost first, and with `ERR_IPC_TIMEOUT` when the socket did not take it within `timeout`.
   * @throws NotConnectedError, IpcError `ERR_IPC_FRAME_TOO_LARGE` (see {@link Connection.send}).
   */
  sendOneWay(encoding: number, payload: Uint8Array | string, timeout = Infinity): Promise<void> {
    // 0 is no time at all: taken at once (copied below the high-water mark), or it fails now (it may still be
    // delivered) — not a race between a timer of about 1 ms and the socket's drain or write callback.
    if (timeout === 0) return this.sendAtOnce(encoding, payload);
    // (Text is never over PACK_LIMIT bytes: see TEXT_LIMIT.)
    if (typeof payload !== 'string' && payload.length > PACK_LIMIT) return within(this.sendTaken(encoding, payload), timeout, () => this.notTaken(timeout));
    if (this.send(FrameType.MESSAGE, 0, 0, encoding, payload)) return SENT;
    // Every send waiting for this drain with this timeout shares one timer — while it runs: once it expired, a
    // later send gets a timer of its own (sharing the expired wait rejected it at once, until the socket drained).
    const drain = this.drained();
    const waits = (this.drain!.within ??= new Map());
    let wait = waits.get(timeout);
    if (wait === undefined) {
      const shared: Promise<void> = within(drain, timeout, () => {
        if (waits.get(timeout) === shared) waits.delete(timeout);
        return this.notTaken(timeout);
      });
      waits.set(timeout, (wait = shared));
    }
    return wait;
  }

  /**
   * sendOneWay with a timeout of 0: {@link SENT} when the socket took the message at once (up to 8 KiB, copied,
   * below its high-water mark); else the message is written all the same and the send fails with `ERR_IPC_TIMEOUT`
   * now — as a larger payload (taken by the kernel later, without a copy) always does.
   */
  private sendAtOnce(encoding: number, payload: Uint8Array | string): Promise<void> {
    if (typeof payload !== 'string' && payload.length > PACK_LIMIT) {
      this.sendTaken(encoding, payload).catch(() => undefined);
      return Promise.reject(this.notTaken(0));
    }
    return this.send(FrameType.MESSAGE, 0, 0, encoding, payload) ? SENT : Promise.reject(this.notTaken(0));
  }

  private notTaken(timeout: number): IpcTimeoutError {
    return new IpcTimeoutError(
      `The message to "${this.peerName}" was not taken by the socket within ${timeout} ms (the peer does not read; it may still be delivered)`,
    );
  }

  /**
   * sendOneWay of a payload written without a copy: settles when the socket has taken it. A socket destroyed
   * first may still call back without an error: that is a loss too.
   */
  private sendTaken(encoding: number, payload: Uint8Array): Promise<void> {
    let settle!: (error?: Error | null) => void;
    const taken = new Promise<void>((resolve, reject) => {
      settle = (error) => {
        if (!error && !this.socket.destroyed) return resolve();
        reject(this.closeReason ?? new PeerDisconnectedError(`The connection to "${this.peerName}" was lost while sending`, { cause: error ?? this.error ?? undefined }));
      };
    });
    this.send(FrameType.MESSAGE, 0, 0, encoding, payload, -1, settle);
    return taken;
  }

  /**
   * StreamSink: so much waits to be sent to the peer that a stream should wait for {@link Connection.drained} —
   * and a `'drain'` is due (see pauseReading): below a socket's high-water mark (one over {@link STREAM_BACKLOG},
   * `highWaterMark` in connectTo's options) none ever comes, and the stream waited for good.
   */
  get backlogged(): boolean {
    return this.writer.queuedBytes >= STREAM_BACKLOG && this.writer.drainDue;
  }

  /** One promise shared by every writer waiting for the socket to drain; rejects when the connection is lost. */
  drained(): Promise<void> {
    if (this.drain === null) {
      let settle!: { resolve(): void; reject(error: Error): void };
      const drain = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
      drain.catch(() => undefined); // fire-and-forget senders must not get an unhandled rejection
      this.drain = { promise: drain, ...settle };
      this.socket.once('drain', () => {
        this.drain = null;
        settle.resolve();
      });
    }
    return this.drain.promise;
  }

  /**
   * Tells the peer that we drain (GOAWAY, once): it sends its new requests elsewhere. A PING goes right behind it,
   * held in `registry` until its PONG: the connection is in order, so the PONG comes after every request the peer
   * wrote before it saw the GOAWAY — a drain that waits for it refuses those (unhandled, safe to send again) instead
   * of closing before they arrive (they were lost, `ERR_IPC_PEER_DISCONNECTED`, as if maybe handled). A peer that never
   * answers it holds the drain for the node's `requestTimeout` at most (see the node's `drained`).
   */
  goAway(): void {
    if (!this.writable || this.wentAway) return;
    this.wentAway = true;
    this.writer.write(FrameType.GOAWAY, 0, 0, Encoding.BUFFER, EMPTY_PAYLOAD);
    const confirmed = () => (this.goAwayPing = 0);
    this.goAwayPing = this.registry.register({ next: () => undefined, error: confirmed, complete: confirmed });
    this.writer.write(FrameType.PING, 0, this.goAwayPing, Encoding.BUFFER, EMPTY_PAYLOAD);
  }

  /** Requests of ours awaiting the peer's answer (the PING behind our GOAWAY is none: see {@link goAway}). */
  get awaited(): number {
    return this.registry.size - (this.goAwayPing === 0 ? 0 : 1);
  }

  /** Tells the responder to stop answering request `id` (and free its slot). */
  cancelIfOpen(id: number): void {
    if (this.writable) this.writer.write(FrameType.CANCEL, 0, id, Encoding.BUFFER, EMPTY_PAYLOAD);
  }

  /** Grants the responder of request `id` `n` more values. */
  grantIfOpen(id: number, n: number): void {
    if (!this.writable) return;
    this.writer.write(FrameType.REQUEST_N, 0, id, Encoding.BUFFER, encodeRequestN(n));
  }

  // ─── the responder's side: answers to the peer's requests (NodeMessage calls these) ────────────────

  /**
   * Answers `request` with `value`. False when nothing awaits it (answered, cancelled, connection gone).
   * @throws CodecError (`ERR_IPC_ENCODE`) or IpcError (`ERR_IPC_FRAME_TOO_LARGE`); the requester gets that error.
   */
  reply(request: InboundRequest, value: unknown): boolean {
    if (!this.inbound.unanswered(request)) return false;
    if (this.answersPileUp()) {
      // An async handler's answers to requests read before reading paused: queueing them all was
      // maxPendingRequests answers (100,000 of 10 KiB: 1 GB for a peer that never reads). A small error instead.
      const error = new IpcError(ErrorCode.WRITE_BUFFER_FULL, `More than maxWriteBuffer (${this.host.maxWriteBuffer} bytes) waits to be sent to "${this.peerName}" (it does not read): answer not sent`);
      if (!this.refusing) {
        this.refusing = true; // one 'error' event while it lasts, not one per answer
        this.host.report(error);
        this.drained().then(() => (this.refusing = false), () => undefined);
      }
      this.replyError(request, error);
      return false;
    }
    let encoded;
    try {
      encoded = encodeWire(this.host.codec, value);
      this.checkSize(encoded.payload);
    } catch (error) {
      this.replyError(request, error as Error);
      throw error;
    }
    this.inbound.take(request);
    this.writer.write(FrameType.REPLY, 0, request.id, encoded.encoding, encoded.payload);
    this.checkBacklog();
    return true;
  }

  /** Fails `request` with `error`. False when nothing awaits it. */
  replyError(request: InboundRequest, error: Error): boolean {
    if (!this.inbound.take(request)) return false;
    this.sendErrorIfOpen(FrameType.ERROR, request.id, error);
    return true;
  }

  /**
   * Answers `request` with the values of `source` (see StreamResponder). False when nothing awaits it.
   * @throws TypeError when `source` cannot be streamed (the requester gets that error).
   */
  stream(request: InboundRequest, source: ObservableInput<unknown> | AsyncIterable<unknown> | Iterable<unknown>): boolean {
    if (!this.inbound.unanswered(request)) return false;
    request.responder = new StreamResponder(this, request.id, request.credits, this.host.streamBuffer);
    request.responder.start(source);
    return true;
  }

  get codec(): Codec {
    return this.host.codec;
  }

  /** StreamSink: a stream took a value from its pushed source (counted toward the reading turn: see yieldTurn). */
  tookValue(): void {
    this.turnWork++;
  }

  /** StreamSink: writes a stream frame (`written`: see FrameWriter#write); false when the connection is gone. */
  trySendFrame(type: number, id: number, encoding: number, payload: Uint8Array | string, written?: (error?: Error | null) => void): boolean {
    // Nor once a write failed (the peer hung up: ECONNRESET, EPIPE): the socket is no longer writable at once, but
    // the connection ends only at its 'close', later. Meanwhile each stream the peer asked for in the same read
    // wrote a MiB into the void (its queue drained by the failure): 200 of them, 2,013,000 values, 1.5 s of blocked loop.
    if (!this.writable || !this.socket.writable) return false;
    this.writer.write(type, 0, id, encoding, payload, -1, written);
    return true;
  }

  /** StreamSink: writes an ERROR or STREAM_ERROR frame: name, message, code, and the stack if `exposeErrorStack`. */
  sendErrorIfOpen(type: number, id: number, failure: Error): void {
    if (!this.writable) return;
    const error = asError(failure);
    const { code, stack } = error as { code?: unknown; stack?: unknown };
    const body = encodeError(
      {
        name: String(error.name),
        message: String(error.message),
        code: errorCode(code),
        stack: this.host.exposeErrorStack && typeof stack === 'string' ? stack : undefined,
      },
      this.peerMaxFrameSize,
    );
    this.writer.write(type, 0, id, Encoding.JSON, body);
  }

  /** StreamSink: the stream ended. */
  release(id: number): void {
    this.inbound.release(id);
  }

  // ─── ending ─────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Closes on purpose: fails what is pending with `pendingError`, tells the peer (CLOSE frame) whether it may
   * reconnect, flushes what was written and ends the socket; destroys it if the peer does not close in time.
   */
  close(reason: CloseBody, pendingError: Error = new ClosedError(reason.message)): Promise<void> {
    return this.end({ pending: pendingError, notify: reason });
  }

  /** Ends the connection because of `error` (protocol violation, failed handshake…), telling the peer why. */
  fail(error: IpcError): void {
    const final = !(error instanceof HandshakeError && error.retryable);
    void this.end({ error, final, notify: { code: error.code, message: error.message, reconnect: !final } });
  }

  /**
   * Ends at once without a word to the peer (it is gone, or was replaced): the socket is destroyed — also when
   * the connection was closing already (a CLOSE sent, the peer's FIN awaited for up to CLOSE_GRACE_MS): a peer
   * dropped by maxHandshaking after it sent garbage, and that never reads, was held that long.
   */
  drop(error: Error): Promise<void> {
    if (this.state === 'closing') this.socket.destroy();
    return this.end({ error, destroy: true });
  }

  /**
   * The one way a connection ends: it stops being writable, its timers stop, the peer's requests are forgotten
   * (their streams torn down), ours reject, and the socket is ended (after a CLOSE, when `notify`) or destroyed.
   * {@link Connection.finish} completes the job when the socket closes. Later calls only wait for that.
   */
  private end(how: Ending): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') return this.closed;
    this.state = 'closing';
    if (how.error) this.error ??= how.error;
    if (how.final) this.final = true;
    this.closeReason = how.pending ?? null;
    this.stopTimers();
    this.dropHeld(); // what the peer sent after the end is ignored
    this.inbound.cancelAll();
    this.registry.rejectAll(how.pending ?? this.lostError());
    if (how.destroy || this.socket.destroyed || this.unheard()) {
      this.socket.destroy();
      return this.closed;
    }
    if (how.notify) this.sendControl(closeFrame(how.notify));
    this.writer.end();
    // Reading may be paused (yieldTurn, pauseReading), and resumes only while open: the peer's FIN must still be
    // read (what comes before it is ignored), or a socket read through a FrameReader — whose pause stops the reads
    // — closed only at CLOSE_GRACE_MS: a close() right after a busy turn took 2 s.
    if (this.readingPaused || this.yielding) {
      this.readingPaused = false;
      this.socket.resume();
    }
    this.graceTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    return this.closed;
  }

  /** Counters of this connection. */
  stats(): ConnectionStats {
    return {
      framesIn: this.framesIn,
      framesOut: this.writer.framesOut,
      bytesIn: this.bytesIn,
      bytesOut: this.writer.bytesOut,
      pendingRequests: this.awaited,
      openStreams: this.inbound.streaming,
      lastRtt: this.lastRtt,
    };
  }

  // ─── receiving ──────────────────────────────────────────────────────────────────────────────────────

  /** One received frame. Whatever throws while handling it ends this connection, never the process. */
  private receive(frame: Frame): void {
    if ((this.readingPaused || this.yielding) && this.state === 'open') {
      // A chunk of 64 KiB holds ~3,800 small requests: handled now, their answers would pile up far beyond
      // maxWriteBuffer (64 KiB answers: 248 MB queued with a 256 KiB limit), and a busy peer would have a whole
      // chunk handled per turn, not TURN_FRAMES. Kept as they are (views of that chunk) until reading resumes.
      this.held.push(frame);
      return;
    }
    try {
      this.dispatch(frame);
    } catch (error) {
      const message = `Could not handle a frame (type 0x${frame.type.toString(16)}) from "${this.peerName ?? 'an unidentified peer'}": ${(error as Error)?.message ?? String(error)}`;
      this.fail(error instanceof ProtocolError ? error : new ProtocolError(ErrorCode.PROTOCOL, message, { cause: error }));
    }
    if (this.state !== 'open') return;
    this.writer.sendEarly();
    this.checkBacklog();
    if (this.framesIn - this.framesAtYield + this.turnWork >= TURN_FRAMES) this.yieldTurn();
  }

  /** Pauses reading when more than `maxWriteBuffer` waits to be sent to the peer (see pauseReading). */
  private checkBacklog(): void {
    if (this.state === 'open' && this.writer.queuedBytes > this.host.maxWriteBuffer) this.pauseReading();
  }

  /** More than `maxWriteBuffer` waits for the peer and a `'drain'` is due (see pauseReading): answers are refused. */
  private answersPileUp(): boolean {
    return this.writer.queuedBytes > this.host.maxWriteBuffer && this.writer.drainDue;
  }

  /**
   * The answers to this peer pile up (it does not read them): stop reading its requests until they drained, so a
   * peer that never reads cannot grow our memory beyond `maxWriteBuffer` plus one answer (and the answers, still to
   * come, to requests already admitted; the rest of the chunk being read is held: see `held`). If it stays silent
   * meanwhile, the heartbeat ends the connection. Only once a `'drain'` is due: below the socket's high-water mark
   * (a `maxWriteBuffer` under 16 KiB) none ever comes, and reading would stay paused for good.
   */
  private pauseReading(): void {
    if (this.readingPaused || !this.writer.drainDue) return;
    this.readingPaused = true;
    this.socket.pause();
    this.drained().then(
      () => {
        this.readingPaused = false;
        this.receiveHeld();
        if (this.state === 'open' && !this.readingPaused && !this.yielding) this.socket.resume();
      },
      () => undefined,
    );
  }

  /** Handles the frames held while reading was paused, in order, until it pauses again (or the connection ends). */
  private receiveHeld(): void {
    const held = this.held;
    while (this.heldAt < held.length && !this.readingPaused && !this.yielding && this.state === 'open') this.receive(held[this.heldAt++]);
    if (this.heldAt === held.length || this.state !== 'open') this.dropHeld();
  }

  private dropHeld(): void {
    this.held = [];
    this.heldAt = 0;
  }

  /**
   * {@link TURN_FRAMES} frames were handled since the last time: stop reading until the next turn of the event
   * loop, so that other peers (and timers) get their turn. Node reads a socket up to 32 times 64 KiB in one turn,
   * so a peer sending small requests had ~120,000 of them handled (~200 ms) before anybody else was heard. The
   * values streams took from pushed sources count as frames ({@link turnWork}): each of 1,024 requests answered
   * with a synchronous Observable took 1,025 values (to overflow), and 1,100 of them blocked the loop for 1.1–1.6 s.
   */
  private yieldTurn(): void {
    this.framesAtYield = this.framesIn;
    this.turnWork = 0;
    if (this.yielding || this.immediate || this.state !== 'open') return;
    this.yielding = true;
    this.socket.pause();
    setImmediate(() => {
      this.yielding = false;
      this.receiveHeld();
      if (this.state === 'open' && !this.readingPaused && !this.yielding) {
        this.socket.resume();
        // What waits in the socket is read in the next poll phase: until the check phase after it, still catching up.
        this.resumed = true;
        setImmediate(() => (this.resumed = false));
      }
    });
  }

  private dispatch(frame: Frame): void {
    this.framesIn++;
    this.bytesIn += HEADER_SIZE + frame.payload.length;
    if (this.state === 'handshaking') return this.dispatchHandshake(frame);
    if (this.state !== 'open') return;
    switch (frame.type) {
      case FrameType.MESSAGE:
        return this.receiveMessage(frame);
      case FrameType.REPLY: {
        const observer = this.registry.take(frame.id);
        if (observer === undefined) return; // late answer: the request timed out or was cancelled
        const value = this.answerValue(frame, observer);
        if (value === UNDECODED) return;
        observer.next(value);
        observer.complete();
        return;
      }
      case FrameType.PING:
        // A peer that sends pings and never reads the answers gets no more once they pile up. A payload of up to 8
        // bytes (a heartbeat's send time) is echoed (copied by the writer: the frame's bytes are only lent to us).
        // The first PING after the peer's GOAWAY is answered whatever waits (one frame): its drain waits for that
        // PONG (see goAway), and ran to its deadline when we had more than PONG_BACKLOG to write to it.
        if (this.writer.queuedBytes < PONG_BACKLOG || this.goAwayPongOwed) {
          this.goAwayPongOwed = false;
          this.writer.write(FrameType.PONG, 0, frame.id, Encoding.BUFFER, frame.payload.length <= PING_STAMP_SIZE ? frame.payload : EMPTY_PAYLOAD);
        }
        return;
      case FrameType.PONG: {
        if (frame.id === 0) {
          this.lastRtt = this.heartbeat.pong(frame.payload) ?? this.lastRtt;
          return;
        }
        const observer = this.registry.take(frame.id);
        observer?.next(undefined);
        observer?.complete();
        return;
      }
      case FrameType.STREAM_NEXT: {
        const observer = this.registry.get(frame.id);
        if (observer === undefined) return; // cancelled: values already in flight are dropped
        const value = this.answerValue(frame, observer);
        if (value !== UNDECODED) observer.next(value);
        return;
      }
      case FrameType.STREAM_COMPLETE:
        this.registry.take(frame.id)?.complete();
        return;
      case FrameType.ERROR:
      case FrameType.STREAM_ERROR:
        this.registry.take(frame.id)?.error(this.remoteError(frame));
        return;
      case FrameType.CANCEL:
        this.inbound.cancel(frame.id);
        return;
      case FrameType.REQUEST_N:
        this.inbound.grant(frame.id, readRequestN(frame));
        return;
      case FrameType.GOAWAY:
        if (!this.peerGoingAway) this.goAwayPongOwed = true;
        this.peerGoingAway = true;
        return;
      case FrameType.CLOSE: {
        const body = readClose(frame);
        this.peerCloseCode = body.code;
        void this.end({ final: !body.reconnect, pending: new PeerDisconnectedError(`"${this.peerName}" closed the connection: ${body.message}`) });
        return;
      }
      default:
        throw new ProtocolError(ErrorCode.PROTOCOL, `Unexpected frame type 0x${frame.type.toString(16)} from "${this.peerName}"`);
    }
  }

  /**
   * The value a REPLY or STREAM_NEXT carries, or {@link UNDECODED} when it does not decode: `observer` then fails
   * with why (a stream is cancelled first, so the responder stops).
   */
  private answerValue(frame: Frame, observer: Observer<unknown>): unknown {
    try {
      return decodeValue(this.host.codec, frame.payload, frame.encoding, this.host.maxDecodedSize);
    } catch (error) {
      if (frame.type === FrameType.STREAM_NEXT) {
        this.registry.take(frame.id);
        this.cancelIfOpen(frame.id);
      }
      observer.error(error);
      return UNDECODED;
    }
  }

  /** A MESSAGE: a receptive one is admitted into `inbound` (or refused) before it is decoded. */
  private receiveMessage(frame: Frame): void {
    const receptive = (frame.flags & FrameFlags.RECEPTIVE) !== 0;
    let { payload } = frame;
    let credits = 1;
    if (frame.flags & FrameFlags.WINDOW) ({ credits, value: payload } = readWindow(frame));
    let request: InboundRequest | null = null;
    if (receptive) {
      const admitted = this.inbound.admit(frame.id, credits);
      if (admitted === 'duplicate') throw new ProtocolError(ErrorCode.PROTOCOL, `Request id ${frame.id} already awaits an answer`);
      if (admitted === 'full') {
        const limit = this.host.maxPendingRequests;
        this.sendErrorIfOpen(FrameType.ERROR, frame.id, new IpcError(ErrorCode.TOO_MANY_REQUESTS, `"${this.host.name}" already has ${limit} requests from "${this.peerName}" to answer (its maxPendingRequests)`));
        return;
      }
      const closing = this.host.refusal(this);
      if (closing) {
        // It crossed our GOAWAY: refused unhandled, so it is safe to send again elsewhere.
        this.replyError(admitted, closing);
        return;
      }
      request = admitted;
    }
    let data: unknown;
    try {
      data = decodeValue(this.host.codec, payload, frame.encoding, this.host.maxDecodedSize);
    } catch (error) {
      if (request) this.replyError(request, error as Error);
      this.host.report(error as Error);
      return;
    }
    this.host.onMessage(this, frame.id, request, data);
  }

  private dispatchHandshake(frame: Frame): void {
    const silent = this.role === 'server' && !this.handshake.helloTaken;
    const result = this.handshake.receive(frame);
    if (silent && this.handshake.helloTaken) this.host.onHello(this);
    if (result.send) this.sendControl(result.send);
    if (result.error) {
      // The refusal (if any) was just sent: end without another CLOSE. A peer that closed on purpose before the
      // handshake completed (disconnectFrom, close: a CLOSE `ERR_IPC_CLOSED`) refused nothing: a client that left
      // is no error for a server, and a server that closes is a disconnection for a client, as after the handshake
      // (a quiet retry, unless it said not to come back) — not a handshake error at each attempt.
      let error: IpcError | undefined = result.error;
      if (frame.type === FrameType.CLOSE && closedOnPurpose(frame)) {
        error = this.role === 'server' ? undefined : new PeerDisconnectedError(`"${this.owner?.name}" closed the connection during the handshake (${error.message})`, { cause: error });
      }
      void this.end({ error, final: !(result.error instanceof HandshakeError && result.error.retryable) });
      return;
    }
    if (result.done !== undefined) {
      this.handshakeTimer?.();
      this.handshakeTimer = null;
      this.peerName = result.done;
      this.peerMaxFrameSize = this.handshake.peerMaxFrameSize;
      this.peerInstance = this.handshake.peerInstance;
      this.resumeToken = this.handshake.resumeToken;
      this.peerResume = this.handshake.peerResume;
      this.state = 'open';
      this.heartbeat.start();
      this.host.onReady(this);
    }
  }

  private onStreamError(error: Error): void {
    if (error instanceof ProtocolError) return this.fail(error);
    this.noteSocketError(error);
    void this.end({ destroy: true });
  }

  /**
   * Keeps the first socket error; a TLS refusal becomes an `ERR_IPC_TLS` error, a connect we may not make
   * (`EACCES`/`EPERM`) or one to a Unix path that holds no socket (a file, a folder) an `ERR_IPC_CONNECT` one, and
   * all are final.
   */
  private noteSocketError(error: Error): void {
    const tls = tlsErrorOf(error, this.role === 'client' ? `the connection to "${this.owner?.name}"` : 'a client');
    const denied = tls ? null : this.role === 'client' ? (permissionDenied(error, this.owner?.name) ?? notASocket(error, this.owner?.name)) : null;
    // A certificate that fails verification will fail again, and so will a socket file we may not write, or a path
    // that holds a file or a folder (no server replaces it): do not retry (a CLI run as the wrong user, or given the
    // wrong path, would wait for ever, without a word).
    if (tls || denied) this.final = true;
    this.error ??= tls ?? denied ?? error;
  }

  /** Writes a control frame, ignoring the state (handshake, CLOSE). */
  private sendControl(frame: OutgoingFrame): void {
    if (!this.socket.destroyed) this.writer.write(frame.type, frame.flags, frame.id, frame.encoding, frame.payload);
  }

  private lostError(): PeerDisconnectedError {
    const name = this.peerName ?? 'an unidentified peer';
    return new PeerDisconnectedError(`The connection to "${name}" was lost`, { cause: this.error ?? undefined });
  }

  /**
   * Nobody to tell: our TCP connect has not even completed, or we dialled and the server has not sent one frame of
   * its handshake. A CLOSE would wait, then the close grace (2 s) for a peer that may never read: a client whose
   * connect hangs, or whose server is frozen, would see its `handshakeTimeout` of 500 ms take 2.5 s.
   */
  private unheard(): boolean {
    if ((this.socket as { connecting?: unknown }).connecting === true) return true;
    return this.role === 'client' && this.framesIn === 0;
  }

  private stopTimers(): void {
    this.handshakeTimer?.();
    this.handshakeTimer = null;
    this.heartbeat.stop();
  }

  /** The socket closed: whatever way it ended, finish the job and tell the node. */
  private finish(): void {
    if (this.state === 'closed') return;
    if (this.state === 'handshaking' && this.role === 'client' && this.error === null) {
      // Hung up on without a word: the only clue a client gets of the usual mistakes, so say them (an 'error' event
      // at each attempt, as other handshake failures: a client retrying for ever is not silent about it).
      this.error = new HandshakeError(
        ErrorCode.HANDSHAKE,
        `"${this.owner?.name}" closed the connection before answering the handshake (a TLS server? then give this node options.tls; a server at its connection limit; not an ipc-link-core node?)`,
        { retryable: true },
      );
    }
    void this.end({ destroy: true });
    this.state = 'closed';
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.subscription?.unsubscribe();
    this.drain?.reject(this.closeReason ?? this.lostError());
    this.drain = null;
    this.host.onClosed(this);
    this.resolveClosed();
  }
}

/** What {@link Connection.answerValue} returns for a payload that did not decode. */
const UNDECODED: unique symbol = Symbol('undecoded');
/** A PING is answered only while fewer bytes than this wait to be sent to its peer. */
const PONG_BACKLOG = 1024 * 1024;
/** Frames handled from one peer before its reading yields to the next turn of the event loop (see yieldTurn). */
const TURN_FRAMES = 1024;
/** A stream waits for the socket to drain while at least this much waits to be sent to its peer. */
const STREAM_BACKLOG = 1024 * 1024;

/**
 * A connect refused for want of permission — `EACCES`/`EPERM`: a Unix socket file (or a folder on its path) this
 * process may not write, a firewall rule — as an `ERR_IPC_CONNECT` error (cause: the `node:net` error); else null.
 */
function permissionDenied(error: Error, name: string | undefined): ConnectError | null {
  const { code, syscall } = error as NodeJS.ErrnoException;
  if (syscall !== 'connect' || (code !== 'EACCES' && code !== 'EPERM')) return null;
  return new ConnectError(`Could not connect to "${name}": ${error.message}: this process may not connect there (not retried)`, { cause: error });
}

/**
 * A Unix socket path refused (`ECONNREFUSED`) because what is there is no socket — a file, a folder (or a link to
 * one) —, as a final `ERR_IPC_CONNECT` error saying so: no server will listen there until someone removes it (a
 * server's `serve` never does), and "connection refused" read as "the daemon is down". Else null (a TCP refusal, a
 * stale socket file: a server may come back).
 */
function notASocket(error: Error, name: string | undefined): ConnectError | null {
  const { code, syscall, address, port } = error as NodeJS.ErrnoException & { address?: unknown; port?: unknown };
  if (syscall !== 'connect' || code !== 'ECONNREFUSED' || typeof address !== 'string' || port !== undefined) return null;
  const what = noSocketAt(address, true);
  if (what === undefined) return null;
  return new ConnectError(`Could not connect to "${name}": ${error.message}: it is ${what}, not a Unix socket (not retried)`, { cause: error });
}

/** True for a CLOSE `ERR_IPC_CLOSED`: its sender closes on purpose (disconnectFrom, close), refusing nothing. */
function closedOnPurpose(frame: Frame): boolean {
  try {
    return readClose(frame).code === ErrorCode.CLOSED;
  } catch {
    return false;
  }
}
