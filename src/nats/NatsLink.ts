import { Duplex } from 'node:stream';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { ErrorCode, PeerDisconnectedError, ProtocolError } from '../errors';

/** Kinds of the NATS messages of a link: bytes of the stream, or its end. */
const DATA = 0;
const FIN = 1;
/** kind (u8) + sequence number (u32, big-endian), before the bytes. */
export const LINK_HEADER = 5;
/**
 * Bytes published and not yet confirmed by the server (a flush's round trip) from which writes wait for
 * confirmations: a producer that respects `write()`'s `false` / `'drain'` slows down to what the server takes,
 * long before the server would cut a slow subscriber off.
 */
const UNCONFIRMED_LIMIT = 8 * 1024 * 1024;
/**
 * A confirmation is asked for every time this many bytes have been published since the last one: several are on
 * their way at once, so the pipe to the server never runs empty while one travels.
 */
const CONFIRM_EVERY = 1024 * 1024;

/**
 * One link between two nodes over NATS, as a byte stream (a Duplex): what one side writes, the other reads, in
 * order. Each side subscribes its own subject and publishes to the other's.
 *
 * NATS core delivers at most once, so every NATS message of the link is numbered: a gap (a message lost while a
 * server was down, or cut by a slow-consumer limit) destroys the link with `ERR_IPC_PEER_DISCONNECTED` — the
 * node's pending requests then reject at once — instead of passing on a stream with a hole. A message that is no
 * link message (under 5 bytes, an unknown kind) or comes after the peer's FIN ends the link with `ERR_IPC_PROTOCOL`
 * (anyone who may publish on the subject can send one). Writes of one tick
 * (the node's writer corks the stream) leave as one NATS message, split at the server's `max_payload`.
 */
export class NatsLink extends Duplex {
  /** The subject the peer reads: set once it is known (an opening client learns it from the answer). */
  to = '';
  private sent = 0;
  private received = 0;
  /** Bytes published, bytes the server has confirmed, and where the last confirmation asked for ends. */
  private published = 0;
  private confirmed = 0;
  private asked = 0;
  /** The callback of a write that waits for confirmations (the stream passes one write at a time). */
  private waiting: ((error?: Error | null) => void) | null = null;
  private finished = false;
  /** The number our FIN went with (0: none sent), to repeat it after a NATS reconnect ({@link repeatFin}). */
  private finSeq = 0;
  /** The peer's FIN came: the stream's end is pushed, nothing may follow. */
  private peerFinished = false;
  private readonly subscription: Subscription;
  /** @internal test hook: numbers of messages to leave out (to prove the gap check). */
  skipNext = 0;
  /**
   * @internal The node's writer hands a tick's frames over early (between received frames) from this many bytes, not
   * 16 KiB (FrameWriter's EARLY_SEND): each hand-over here is a NATS message, which costs all three processes far
   * more than a socket write. At 16 KiB the replies to one NATS message of 256 requests (~20 KiB) left as two
   * (948 server publishes for 610 received), and the client's next batch split in turn; at 64 KiB they leave as one
   * (482 for 478): 256 in flight 81,935 req/s median against 68,789 (5 alternating pairs, issue 14), the server's
   * CPU time ~20% lower and nats-server's ~40% lower.
   */
  readonly earlySend = 64 * 1024;

  constructor(
    private readonly nc: NatsConnection,
    /** The subject this side reads. */
    readonly from: string,
    private readonly onEnd: (link: NatsLink) => void,
  ) {
    super({ allowHalfOpen: false });
    this.subscription = nc.subscribe(from, { callback: (error, msg) => this.receive(error, msg) });
  }

  private receive(error: Error | null, msg: Msg): void {
    if (this.destroyed) return;
    if (error) return void this.destroy(new PeerDisconnectedError(`The NATS link lost its subscription: ${error.message}`, { cause: error }));
    const data = msg.data;
    if (data.length < LINK_HEADER || (data[0] !== DATA && data[0] !== FIN)) {
      return void this.destroy(new ProtocolError(ErrorCode.PROTOCOL, `Malformed NATS link message (${data.length} bytes) on "${this.from}"`));
    }
    const seq = Buffer.from(data.buffer, data.byteOffset, data.length).readUInt32BE(1);
    // Nothing follows a real FIN: a message after one was published by someone else (or the FIN was), and pushed
    // after the end it made the stream emit ERR_STREAM_PUSH_AFTER_EOF, reported as the node's 'error'.
    if (this.peerFinished) {
      // The peer's FIN again (it repeats one it published while its NATS connection was down): nothing new.
      if (data[0] === FIN && seq === this.received) return;
      return void this.destroy(new ProtocolError(ErrorCode.PROTOCOL, `A NATS link message after the end of the link on "${this.from}"`));
    }
    if (seq !== ((this.received + 1) >>> 0)) {
      const lost = seq > this.received ? `${seq - this.received - 1} message(s) lost` : `message ${seq} after ${this.received}`;
      return void this.destroy(new PeerDisconnectedError(`The NATS link broke: ${lost} (NATS delivers at most once)`));
    }
    this.received = seq;
    if (data[0] === FIN) {
      this.peerFinished = true;
      this.push(null);
    } else if (data.length > LINK_HEADER) this.push(Buffer.from(data.buffer, data.byteOffset + LINK_HEADER, data.length - LINK_HEADER));
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    try {
      this.publishBytes(chunks.map((c) => c.chunk));
    } catch (error) {
      // nats.js refuses to publish on a connection that is closed or draining (its errors carry no code): the link is
      // lost, as when a socket's write fails — not an error of the peer's (it was reported with no code at all).
      const why = (error as Error)?.message ?? String(error);
      return callback(new PeerDisconnectedError(`The NATS link could not publish: ${why}`, { cause: error }));
    }
    if (this.published - this.asked >= CONFIRM_EVERY) this.askConfirmation();
    if (this.published - this.confirmed < UNCONFIRMED_LIMIT) return callback();
    if (this.asked < this.published) this.askConfirmation();
    this.waiting = callback;
  }

  /** Asks the server to confirm every byte published so far; a write waiting for room goes on once there is. */
  private askConfirmation(): void {
    const upTo = (this.asked = this.published);
    this.nc.flush().then(
      () => {
        this.confirmed = Math.max(this.confirmed, upTo);
        const waiting = this.waiting;
        if (waiting !== null && this.published - this.confirmed < UNCONFIRMED_LIMIT) {
          this.waiting = null;
          waiting();
        }
      },
      (error: Error) => this.destroy(new PeerDisconnectedError(`The NATS connection failed: ${error.message}`, { cause: error })),
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.sendFin();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A write waiting for confirmations ends now: its flush may never settle, or reject (a NATS reconnect rejects
    // the flushes in flight), and the stream calls back no write of a destroyed stream by itself (a one-way send of
    // a large payload waited for its timeout).
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.(error ?? new PeerDisconnectedError('The NATS link was destroyed before the server confirmed what it sent'));
    // Tell the peer at once, so that it need not wait for its heartbeat (best effort: NATS may be gone).
    this.sendFin();
    try {
      this.subscription.unsubscribe();
    } catch {
      // the NATS connection is closed: the subscription went with it
    }
    this.onEnd(this);
    callback(error);
  }

  /**
   * @internal The peer's subject came after the link was destroyed (our node closed while the link was being
   * opened): tells the peer at once that the link is over, which otherwise waited for its handshakeTimeout.
   */
  finishLate(to: string): void {
    if (this.to !== '') return;
    this.to = to;
    this.sendFin();
  }

  /** Mirrors `net.Socket#setNoDelay` (nothing to do). */
  setNoDelay(): this {
    return this;
  }

  private sendFin(): void {
    if (this.finished || this.to === '' || this.nc.isClosed()) return;
    this.finished = true;
    try {
      this.publish(FIN, []);
      this.finSeq = this.sent;
    } catch {
      // the connection is closing: the peer's heartbeat will tell it
    }
  }

  /**
   * @internal Publishes our FIN again, with the same number: one published while the NATS connection was down was
   * dropped (nats.js empties its outbound buffer when it reconnects), and the peer — which saw no disconnect of its
   * own, say when the server cut us off as a slow consumer — kept the link, its requests pending until their timeout.
   * The peer ignores a FIN it already has.
   */
  repeatFin(): void {
    if (this.finSeq === 0 || this.nc.isClosed()) return;
    try {
      this.nc.publish(this.to, putLinkHeader(Buffer.allocUnsafe(LINK_HEADER), FIN, this.finSeq));
    } catch {
      // the connection is closing: the peer's heartbeat will tell it
    }
  }

  /** Publishes `chunks` as few NATS messages as `max_payload` allows, each copied (NATS keeps what it is given). */
  private publishBytes(chunks: Buffer[]): void {
    const room = (this.nc.info?.max_payload ?? 1024 * 1024) - LINK_HEADER;
    let total = 0;
    for (const chunk of chunks) total += chunk.length;
    let index = 0;
    let offset = 0;
    while (total > 0) {
      const size = Math.min(room, total);
      const message = Buffer.allocUnsafe(LINK_HEADER + size);
      let filled = LINK_HEADER;
      while (filled < message.length) {
        const chunk = chunks[index];
        const copied = chunk.copy(message, filled, offset, Math.min(chunk.length, offset + message.length - filled));
        filled += copied;
        offset += copied;
        if (offset === chunk.length) {
          index++;
          offset = 0;
        }
      }
      this.publish(DATA, message);
      total -= size;
    }
  }

  /** One numbered message: `body` is the whole message with room for the header, or nothing (FIN). */
  private publish(kind: number, body: Buffer | []): void {
    const message = Array.isArray(body) ? Buffer.allocUnsafe(LINK_HEADER) : body;
    // Numbers wrap at 2 ** 32, on both sides alike.
    this.sent = (this.sent + 1 + this.skipNext) >>> 0;
    this.skipNext = 0;
    this.nc.publish(this.to, putLinkHeader(message, kind, this.sent));
    this.published += message.length;
  }
}

/** Writes a link message's header — kind, sequence number — at the start of `message`, and returns it. */
function putLinkHeader(message: Buffer, kind: number, seq: number): Buffer {
  message[0] = kind;
  message.writeUInt32BE(seq, 1);
  return message;
}
