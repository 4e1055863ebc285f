import type { Socket } from 'node:net';
import type { ObservableInput, Subscription } from 'rxjs';
import { ClosedError, ErrorCode, HandshakeError, IpcError, NotConnectedError, PeerDisconnectedError, ProtocolError, RemoteError } from '../errors';
import { Encoding, FrameType, HANDSHAKE_MAX_FRAME_SIZE, HEADER_SIZE } from '../protocol/constants';
import type { Frame } from '../protocol/Frame';
import type { OutgoingFrame } from '../protocol/FrameEncoder';
import { closeFrame, Handshake, jsonFrame, readClose, readJson, type HandshakeOptions } from '../protocol/handshake';
import { decodeValue, type Codec } from '../protocol/Serializer';
import { decodeFrames } from '../rx/decodeFrames';
import { fromSocket } from '../rx/fromSocket';
import type { FrameReader } from '../rx/FrameReader';
import { setLongInterval, setLongTimeout } from './duration';
import { FrameWriter } from './FrameWriter';
import { LinkSocket } from './Link';
import type { NodeSocket } from './NodeSocket';
import { RequestRegistry } from './RequestRegistry';
import { StreamResponder, type StreamSink } from './StreamResponder';
import { tlsErrorOf } from './tlsError';

const EMPTY = Buffer.alloc(0);
const RESOLVED = Promise.resolve();
/** Heartbeat ticks without a byte from the peer before it is taken for dead. */
const SILENT_TICKS = 3;
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
  readonly codec: Codec;
  readonly maxFrameSize: number;
  readonly handshakeTimeout: number;
  readonly heartbeatInterval: number;
  readonly streamBuffer: number;
  readonly exposeErrorStack: boolean;
  onReady(connection: Connection): void;
  onMessage(connection: Connection, frame: Frame): void;
  onRaw(connection: Connection, chunk: Buffer): void;
  onClosed(connection: Connection): void;
}

/**
 * One live socket: its frame pipeline (`fromSocket` → `decodeFrames`, or a `FrameReader` for sockets we dial,
 * → {@link Connection.dispatch}), its writer, its handshake and its table of pending requests. A client that
 * reconnects gets a new Connection.
 */
export class Connection implements StreamSink {
  /** The peer's announced name, once the handshake is done. */
  peerName: string | null = null;
  /** True between the end of the handshake and the start of closing. */
  ready = false;
  /** Why the connection ended, when it was not a clean close. */
  error: Error | null = null;
  /** Reconnecting is pointless or unwanted: the peer said so, refused us for good, or broke the protocol. */
  final = false;
  /** The public handle this connection serves. */
  owner!: NodeSocket;
  /** Receptive messages received and not answered yet (for `maxPendingRequests`). */
  unanswered = 0;
  /** Frames and bytes received (stats). */
  framesIn = 0;
  bytesIn = 0;
  /** Round trip of the last ping (heartbeat or pingTo), in ms. */
  lastRtt: number | null = null;
  private heartbeatSentAt = 0;
  /** Streamed replies this side is sending, by request id. */
  private readonly streams = new Map<number, StreamResponder>();
  /** Credits granted (REQUEST_N) for requests not streamed yet. */
  private readonly credits = new Map<number, number>();
  /** Requests this side sent and awaits answers for. */
  readonly registry = new RequestRegistry();
  /** Resolves once the socket is fully closed and everything is cleaned up. */
  readonly closed: Promise<void>;

  private closing = false;
  private finished = false;
  private resolveClosed!: () => void;
  private readonly writer: FrameWriter;
  private readonly handshake: Handshake;
  private subscription: Subscription | null = null;
  private drain: { promise: Promise<void>; resolve(): void; reject(error: Error): void } | null = null;
  private handshakeTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** Bytes arrived since the last heartbeat tick. */
  private heard = true;
  /** Heartbeat ticks in a row without a byte from the peer. */
  private silentTicks = 0;
  private graceTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly socket: Socket,
    readonly role: 'client' | 'server',
    private readonly host: ConnectionHost,
    handshake: HandshakeOptions,
    /** Set when `socket` was created with `reader.onread`: its bytes come through the reader, not 'data'. */
    private readonly reader?: FrameReader,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.writer = new FrameWriter(socket, socket instanceof LinkSocket);
    this.handshake = new Handshake(role, host.name, handshake);
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
    const decoding = { maxFrameSize: () => (this.ready ? host.maxFrameSize : HANDSHAKE_MAX_FRAME_SIZE) };
    const onChunk = (chunk: Buffer) => {
      this.heard = true;
      host.onRaw(this, chunk);
    };
    const frames = this.reader ? this.reader.frames(socket, decoding, onChunk) : fromSocket(socket).pipe(decodeFrames(decoding));
    if (!this.reader) socket.on('data', onChunk);
    this.subscription = frames.subscribe({
      next: (frame) => {
        this.dispatch(frame);
        this.writer.sendEarly();
      },
      error: (error: Error) => this.onStreamError(error),
    });
    socket.once('close', () => this.finish());
    const hello = this.handshake.start();
    if (hello) this.send(hello);
    this.handshakeTimer = setLongTimeout(() => {
      this.fail(new HandshakeError(ErrorCode.HANDSHAKE, `No handshake within ${host.handshakeTimeout} ms`, { retryable: true }));
    }, host.handshakeTimeout);
  }

  /** True when frames may be written. */
  get writable(): boolean {
    return this.ready && !this.closing;
  }

  /**
   * Writes one frame; see {@link FrameWriter.write}.
   * @throws NotConnectedError when the connection is not ready or is closing.
   */
  write(type: number, flags: number, id: number, encoding: number, payload: Uint8Array): boolean {
    if (!this.writable) throw new NotConnectedError(`The connection to "${this.peerName ?? 'unknown'}" is not open`);
    return this.writer.write(type, flags, id, encoding, payload);
  }

  /** Bytes written and not yet taken by the kernel. */
  get queuedBytes(): number {
    return this.writer.queuedBytes;
  }

  /**
   * Sends a message that awaits no reply. Resolves at once while the socket's buffer is below its high-water
   * mark, else when it drains (backpressure); rejects if the connection is lost first.
   * @throws NotConnectedError when the connection is not ready or is closing.
   */
  sendOneWay(encoding: number, payload: Uint8Array): Promise<void> {
    return this.write(FrameType.MESSAGE, 0, 0, encoding, payload) ? RESOLVED : this.drained();
  }

  /** One promise shared by every writer waiting for the socket to drain. */
  private drained(): Promise<void> {
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

  /** Answers request `id` with an ERROR frame describing `error` (no-op when not writable). */
  writeError(id: number, error: Error): void {
    this.sendError(FrameType.ERROR, id, error);
  }

  /** Writes an ERROR or STREAM_ERROR frame: name, message, code, and the stack if `exposeErrorStack`. */
  sendError(type: number, id: number, error: Error): void {
    if (!this.writable) return;
    const code = (error as { code?: unknown }).code;
    const body = {
      name: error.name,
      message: error.message,
      code: typeof code === 'string' ? code : undefined,
      stack: this.host.exposeErrorStack ? error.stack : undefined,
    };
    this.send(jsonFrame(type, id, body));
  }

  /** StreamSink: writes a stream frame; false when the connection is gone. */
  sendFrame(type: number, id: number, encoding: number, payload: Uint8Array): boolean {
    if (!this.writable) return false;
    this.writer.write(type, 0, id, encoding, payload);
    return true;
  }

  /** Answers request `id` with the values of `source` (see StreamResponder). */
  stream(id: number, source: ObservableInput<unknown> | AsyncIterable<unknown>): void {
    const credits = this.credits.get(id) ?? 1;
    this.credits.delete(id);
    const responder = new StreamResponder(this, id, credits, this.host.streamBuffer);
    this.streams.set(id, responder);
    responder.start(source);
  }

  /** A receptive message was answered (reply, error or stream): forget credits granted for it. */
  answered(id: number): void {
    this.credits.delete(id);
  }

  /** StreamSink: the stream ended. */
  release(id: number): void {
    this.streams.delete(id);
  }

  get codec(): Codec {
    return this.host.codec;
  }

  /** Tells the responder to stop streaming request `id`. */
  cancelRequest(id: number): void {
    if (this.writable) this.writer.write(FrameType.CANCEL, 0, id, Encoding.BUFFER, EMPTY);
  }

  /** Grants the responder of request `id` `n` more values. */
  grantCredits(id: number, n: number): void {
    if (!this.writable) return;
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(Math.min(n, 0xffffffff), 0);
    this.writer.write(FrameType.REQUEST_N, 0, id, Encoding.BUFFER, payload);
  }

  /**
   * Closes on purpose: fails what is pending with `pendingError`, tells the peer (CLOSE frame) whether it may
   * reconnect, flushes what was written and ends the socket; destroys it if the peer does not close in time.
   */
  close(reason: { code: string; message: string; reconnect: boolean }, pendingError: Error = new ClosedError(reason.message)): Promise<void> {
    if (this.closing || this.finished) return this.closed;
    this.closing = true;
    this.ready = false;
    this.registry.rejectAll(pendingError);
    if (!this.socket.destroyed) {
      this.send(closeFrame(reason));
      this.writer.end();
      this.graceTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    }
    return this.closed;
  }

  /** Ends the connection because of `error` (protocol violation, failed handshake…). */
  fail(error: IpcError): void {
    this.error ??= error;
    this.final ||= !(error instanceof HandshakeError && error.retryable);
    void this.close({ code: error.code, message: error.message, reconnect: !this.final }, this.lostError());
  }

  /** Counters of this connection. */
  stats(): ConnectionStats {
    return {
      framesIn: this.framesIn,
      framesOut: this.writer.framesOut,
      bytesIn: this.bytesIn,
      bytesOut: this.writer.bytesOut,
      pendingRequests: this.registry.size,
      openStreams: this.streams.size,
      lastRtt: this.lastRtt,
    };
  }

  private dispatch(frame: Frame): void {
    this.framesIn++;
    this.bytesIn += HEADER_SIZE + frame.payload.length;
    if (!this.ready) {
      if (!this.closing) this.dispatchHandshake(frame);
      return;
    }
    switch (frame.type) {
      case FrameType.MESSAGE:
        this.host.onMessage(this, frame);
        return;
      case FrameType.REPLY: {
        const observer = this.registry.take(frame.id);
        if (observer === undefined) return; // late answer: the request timed out or was cancelled
        let value: unknown;
        try {
          value = decodeValue(this.host.codec, frame.payload, frame.encoding);
        } catch (error) {
          observer.error(error);
          return;
        }
        observer.next(value);
        observer.complete();
        return;
      }
      case FrameType.ERROR:
        this.registry.take(frame.id)?.error(remoteError(frame));
        return;
      case FrameType.PING:
        this.writer.write(FrameType.PONG, 0, frame.id, Encoding.BUFFER, EMPTY);
        return;
      case FrameType.PONG: {
        if (frame.id === 0 && this.heartbeatSentAt > 0) {
          this.lastRtt = performance.now() - this.heartbeatSentAt;
          this.heartbeatSentAt = 0;
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
        let value: unknown;
        try {
          value = decodeValue(this.host.codec, frame.payload, frame.encoding);
        } catch (error) {
          this.registry.take(frame.id);
          this.cancelRequest(frame.id);
          observer.error(error);
          return;
        }
        observer.next(value);
        return;
      }
      case FrameType.STREAM_COMPLETE:
        this.registry.take(frame.id)?.complete();
        return;
      case FrameType.STREAM_ERROR:
        this.registry.take(frame.id)?.error(remoteError(frame));
        return;
      case FrameType.CANCEL:
        this.credits.delete(frame.id);
        this.streams.get(frame.id)?.cancel();
        return;
      case FrameType.REQUEST_N: {
        if (frame.payload.length !== 4) {
          this.fail(new ProtocolError(ErrorCode.PROTOCOL, `REQUEST_N carries 4 bytes, received ${frame.payload.length}`));
          return;
        }
        const n = frame.payload.readUInt32BE(0);
        const responder = this.streams.get(frame.id);
        if (responder) responder.grant(n);
        else this.credits.set(frame.id, (this.credits.get(frame.id) ?? 0) + n);
        return;
      }
      case FrameType.CLOSE: {
        const body = readClose(frame);
        this.final ||= !body.reconnect;
        void this.close(body, new PeerDisconnectedError(`"${this.peerName}" closed the connection: ${body.message}`));
        return;
      }
      default:
        this.fail(new ProtocolError(ErrorCode.PROTOCOL, `Unexpected frame type 0x${frame.type.toString(16)} from "${this.peerName}"`));
    }
  }

  private dispatchHandshake(frame: Frame): void {
    const result = this.handshake.receive(frame);
    if (result.send) this.send(result.send);
    if (result.error) {
      this.error ??= result.error;
      this.final ||= !(result.error instanceof HandshakeError && result.error.retryable);
      // The refusal (if any) was just sent: end without another CLOSE.
      this.closing = true;
      this.writer.end();
      this.graceTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
      return;
    }
    if (result.done !== undefined) {
      clearTimeout(this.handshakeTimer!);
      this.handshakeTimer = null;
      this.peerName = result.done;
      this.ready = true;
      this.startHeartbeat();
      this.host.onReady(this);
    }
  }

  /**
   * Every `heartbeatInterval` ms: send a PING (any frame would do; the PONG proves the peer reads), and count the
   * ticks in which nothing at all arrived. After SILENT_TICKS of them the peer is taken for dead (frozen, or the
   * network path is gone without a FIN): the socket is destroyed, pending requests reject, a client reconnects.
   */
  private startHeartbeat(): void {
    const interval = this.host.heartbeatInterval;
    if (!(interval > 0) || !Number.isFinite(interval)) return;
    this.heartbeatTimer = setLongInterval(() => {
      if (this.heard) {
        this.heard = false;
        this.silentTicks = 0;
      } else if (++this.silentTicks >= SILENT_TICKS) {
        const silence = SILENT_TICKS * interval;
        this.error ??= new PeerDisconnectedError(`No sign of life from "${this.peerName}" for ${silence} ms (heartbeat)`);
        this.socket.destroy();
        return;
      }
      if (this.writable) {
        this.heartbeatSentAt = performance.now();
        this.writer.write(FrameType.PING, 0, 0, Encoding.BUFFER, EMPTY);
      }
    }, interval).unref();
  }

  private onStreamError(error: Error): void {
    if (error instanceof ProtocolError) {
      this.fail(error);
      return;
    }
    this.noteSocketError(error);
    this.socket.destroy();
  }

  /** Keeps the first socket error; a TLS refusal becomes an `ERR_IPC_TLS` error and is final. */
  private noteSocketError(error: Error): void {
    const tls = tlsErrorOf(error, this.role === 'client' ? `the connection to "${this.owner?.name}"` : 'a client');
    // A certificate that fails verification will fail again: do not retry.
    if (tls) this.final = true;
    this.error ??= tls ?? error;
  }

  /** Writes a control frame, ignoring the ready state (handshake, CLOSE). */
  private send(frame: OutgoingFrame): void {
    if (!this.socket.destroyed) this.writer.write(frame.type, frame.flags, frame.id, frame.encoding, frame.payload);
  }

  private lostError(): PeerDisconnectedError {
    const name = this.peerName ?? 'an unidentified peer';
    return new PeerDisconnectedError(`The connection to "${name}" was lost`, { cause: this.error ?? undefined });
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.ready = false;
    this.closing = true;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.subscription?.unsubscribe();
    this.socket.destroy();
    const lost = this.lostError();
    for (const responder of [...this.streams.values()]) responder.cancel();
    this.credits.clear();
    this.registry.rejectAll(lost);
    this.drain?.reject(lost);
    this.drain = null;
    this.host.onClosed(this);
    this.resolveClosed();
  }
}

function remoteError(frame: Frame): RemoteError {
  try {
    const body = readJson(frame);
    const code = typeof body.code === 'string' ? body.code : undefined;
    const stack = typeof body.stack === 'string' ? body.stack : undefined;
    return new RemoteError(String(body.name ?? 'Error'), String(body.message ?? 'The request failed'), code, stack);
  } catch {
    return new RemoteError('Error', 'The request failed (unreadable error reply)');
  }
}
