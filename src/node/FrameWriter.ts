import type { ByteStream } from './ByteStream';
import { asError } from './asError';
import { HEADER_SIZE } from '../protocol/constants';
import { putWindow, WINDOW_SIZE } from '../protocol/control';
import { encodeHeader } from '../protocol/FrameEncoder';
import { TEXT_LIMIT } from '../protocol/Serializer';

/**
 * `Buffer#utf8Write`, the method `buffer.write(text, offset)` ends in (Node's own, not in its typings): called
 * directly, it skips `write`'s argument parsing, a fifth of the cost of packing a short text.
 */
type Utf8Writable = Buffer & { utf8Write(text: string, offset: number, length: number): number };

/** Largest size of the buffers small frames are packed into. */
const SLAB_SIZE = 64 * 1024;
/**
 * Size of a writer's first slab; the next is twice as large when a tick filled the last one, up to
 * {@link SLAB_SIZE}. A connection that writes little (a handshake, heartbeats) holds a small slab, not 64 KiB:
 * 1,000 peers that sent a hello and stopped held 64 MB of slabs.
 */
const FIRST_SLAB_SIZE = 2 * 1024;
/**
 * Payloads up to this size (of any encoding, Buffers included) are copied next to their header, so the caller may
 * reuse its buffer as soon as `write` returns; larger ones are written as they are (no copy), and the caller's
 * bytes stay in use until the socket has taken them (the `written` callback of {@link FrameWriter.write}).
 */
export const PACK_LIMIT = 8 * 1024;
/** Bytes written in one tick from which {@link FrameWriter.sendEarly} hands them to the socket before it ends. */
const EARLY_SEND = 16 * 1024;

/**
 * A byte stream that sets its own early-send threshold (see {@link FrameWriter.sendEarly}): a NATS link, where
 * every hand-over is one NATS message through a third process (bench: 16 KiB split a 256-in-flight batch's
 * replies into ~1.55 NATS messages per request batch).
 * @internal
 */
export interface EarlySendStream {
  readonly earlySend?: number;
}

/**
 * The writers whose flush is scheduled: flushed on the process's `'exit'`, so that a process that calls
 * `process.exit()` right after an awaited one-way `sendTo` (resolved while its frame still waits for the end of
 * the tick) or a `message.reply()` does not lose it — the socket writes them synchronously when it can. One set
 * and one listener per process, shared by every copy of this module (jest's module registries, duplicated installs).
 */
const unflushed: Set<FrameWriter> = ((process as unknown as Record<symbol, Set<FrameWriter> | undefined>)[Symbol.for('ipc-link-core.unflushed')] ??=
  (() => {
    const writers = new Set<FrameWriter>();
    process.once('exit', () => {
      for (const writer of writers) writer.flushNow();
    });
    return writers;
  })());

/**
 * The one place frames are written, and the reason many small frames cost one system call:
 *
 * - Frames written in one tick leave together on the next tick: small ones packed into one buffer, handed to
 *   the socket with one `write` (no cork: a lone buffer needs no `writev`, and the stream's cork/uncork path costs
 *   ~550 bytes of garbage per tick — bench/README.md, "A short tail"). The socket is corked only when something
 *   must reach it before the tick ends (a large payload, a full slab), so that all of it still leaves in one
 *   `writev`.
 * - Except while a batch of received frames is being worked through: between two of them the connection calls
 *   {@link FrameWriter.sendEarly}, and once the tick has written 16 KiB those frames leave at once, so the peer
 *   starts on the first replies while this side computes the rest.
 * - Small payloads (up to 8 KiB, Buffers included) are copied next to their header into a shared slab, and
 *   consecutive ones are handed to the socket as one buffer: a tick of small messages is one write, and the
 *   caller may reuse a small Buffer at once.
 * - Larger payloads are never copied: their header and the payload go out as two buffers, and the payload's
 *   bytes are read until the socket has taken them.
 * - On an in-memory link (`immediate`), each frame is one fresh buffer (header and payload copied): the peer
 *   receives it synchronously and must not share the sender's memory.
 */
export class FrameWriter {
  private slab = Buffer.allocUnsafe(0);
  /** Size of the next slab (see FIRST_SLAB_SIZE), and whether the current one was allocated in this tick. */
  private slabSize = FIRST_SLAB_SIZE / 2;
  private slabOfThisTick = true;
  /** Packed bytes not yet handed to the socket: `slab[packedFrom, packedTo)`. */
  private packedFrom = 0;
  private packedTo = 0;
  /** A flush is scheduled for the end of this tick (see {@link FrameWriter.flush}). */
  private scheduled = false;
  /** The socket was corked in this tick (something was handed to it before the tick's end). */
  private socketCorked = false;
  /** Bytes written since the flush was scheduled (or last sent early). */
  private corkedBytes = 0;
  /** Bytes written in one tick from which {@link FrameWriter.sendEarly} hands them over (the stream's, or 16 KiB). */
  private readonly earlySend: number;
  /** Frames and bytes written so far (stats). */
  framesOut = 0;
  bytesOut = 0;
  private readonly flush = () => {
    unflushed.delete(this);
    this.flushPacked();
    this.slabOfThisTick = false;
    this.scheduled = false;
    this.corkedBytes = 0;
    this.uncork();
  };

  /**
   * @param immediate hand every frame to the socket at once (no cork, no packing across a tick): for in-memory
   *   links, whose delivery is synchronous.
   */
  constructor(
    private readonly socket: ByteStream,
    private readonly immediate = false,
  ) {
    this.earlySend = (socket as EarlySendStream).earlySend ?? EARLY_SEND;
  }

  /**
   * Writes one frame. Returns false when the socket's buffer is at or above its high-water mark: wait for
   * `'drain'` before writing more.
   * @param window when ≥ 0, a u32 written between the header and the payload (a MESSAGE's `WINDOW`).
   * @param written for a payload larger than {@link PACK_LIMIT} (written without a copy): called once the socket
   *   has taken its bytes (with an error if the socket fails first); the payload must not change until then.
   *   Never called for smaller payloads: they are copied before `write` returns.
   */
  write(
    type: number,
    flags: number,
    id: number,
    encoding: number,
    payload: Uint8Array | string,
    window = -1,
    written?: (error?: Error | null) => void,
  ): boolean {
    const extra = window < 0 ? 0 : WINDOW_SIZE;
    this.framesOut++;
    if (typeof payload === 'string') {
      // Text (at most TEXT_LIMIT characters, so at most PACK_LIMIT bytes): UTF-8 encoded straight into the slab.
      if (this.immediate || payload.length > TEXT_LIMIT) payload = Buffer.from(payload, 'utf8');
      else return this.packText(type, flags, id, encoding, payload, window, extra);
    }
    this.bytesOut += HEADER_SIZE + extra + payload.length;
    if (this.immediate) return this.writeCopy(type, flags, id, encoding, payload, window, written);
    this.schedule();
    const length = payload.length;
    this.corkedBytes += HEADER_SIZE + extra + length;
    if (length <= PACK_LIMIT) {
      const at = this.reserve(HEADER_SIZE + extra + length);
      putHead(this.slab, at, type, flags, id, encoding, length, window);
      if (length > 0) this.slab.set(payload, at + HEADER_SIZE + extra);
      return this.packed();
    }
    this.cork();
    this.flushPacked();
    const head = Buffer.allocUnsafe(HEADER_SIZE + extra);
    putHead(head, 0, type, flags, id, encoding, length, window);
    this.socket.write(head);
    return this.socket.write(payload, written);
  }

  /** Packs a frame whose payload is `text`, encoded in place: no Buffer of its own, one copy less. */
  private packText(type: number, flags: number, id: number, encoding: number, text: string, window: number, extra: number): boolean {
    this.schedule();
    // The room 3 bytes a character surely needs; counted exactly only when the slab is short of it.
    const room = this.slab.length - this.packedTo - HEADER_SIZE - extra;
    const at = this.reserve(HEADER_SIZE + extra + (room >= 3 * text.length ? 0 : Buffer.byteLength(text, 'utf8')));
    const start = at + HEADER_SIZE + extra;
    const length = (this.slab as Utf8Writable).utf8Write(text, start, this.slab.length - start);
    putHead(this.slab, at, type, flags, id, encoding, length, window);
    const size = HEADER_SIZE + extra + length;
    this.packedTo = at + size;
    this.corkedBytes += size;
    this.bytesOut += size;
    return this.packed();
  }

  /** Schedules the flush at the end of this tick, once a tick. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    unflushed.add(this);
    process.nextTick(this.flush);
  }

  /** The process exits: hands what waits for the end of the tick to the socket now (see `unflushed`). */
  flushNow(): void {
    if (!this.scheduled) return;
    if (this.socket.destroyed || this.socket.writableEnded) return void unflushed.delete(this);
    this.flush();
  }

  /**
   * Where the next packed frame of `size` bytes starts (a fresh slab when this one is short of room); the frame
   * ends the packed bytes (`packedTo`) once this returns.
   */
  private reserve(size: number): number {
    if (this.slab.length - this.packedTo < size) {
      // What this tick packed so far must reach the socket before the new slab's frames: cork, so that it all
      // still leaves in one writev at the end of the tick.
      if (this.packedTo > this.packedFrom) this.cork();
      this.flushPacked();
      // One tick outgrew a whole slab (or this is the first): the next is twice as large.
      if (this.slabOfThisTick) this.slabSize = Math.min(SLAB_SIZE, 2 * this.slabSize);
      this.slabOfThisTick = true;
      this.slab = Buffer.allocUnsafe(Math.max(this.slabSize, size));
      this.packedFrom = this.packedTo = 0;
    }
    const at = this.packedTo;
    this.packedTo += size;
    return at;
  }

  /** `write`'s answer after packing: false once the socket's buffer and the packed bytes reach its high-water mark. */
  private packed(): boolean {
    return !this.socket.writableNeedDrain && this.socket.writableLength + this.packedTo - this.packedFrom < this.socket.writableHighWaterMark;
  }

  /** In-memory links: the frame as one fresh buffer, so the receiver never shares the sender's bytes. */
  private writeCopy(
    type: number,
    flags: number,
    id: number,
    encoding: number,
    payload: Uint8Array,
    window: number,
    written?: (error?: Error | null) => void,
  ): boolean {
    const frame = Buffer.allocUnsafe(HEADER_SIZE + (window < 0 ? 0 : WINDOW_SIZE) + payload.length);
    frame.set(payload, putHead(frame, 0, type, flags, id, encoding, payload.length, window));
    try {
      return this.socket.write(frame, payload.length > PACK_LIMIT ? written : undefined);
    } catch (error) {
      // The peer reads within this call (an in-memory link) and its reading threw into it — say, a stack exhausted
      // by synchronous exchanges — possibly from inside the stream's own bookkeeping, which then stays 'writing'
      // and queues every later write: the link cannot go on in step. Destroyed out of this (maybe exhausted)
      // stack, so both ends see the connection end instead of a link that looks up and answers nothing.
      process.nextTick(() => this.socket.destroy(asError(error)));
      return false;
    }
  }

  /**
   * Hands what this tick has written to the socket now, without waiting for the tick to end, once it reaches
   * 16 KiB, or the stream's own `earlySend` (else does nothing). For the gaps between received frames: when one
   * chunk brings dozens of requests, their replies leave in pieces and the peer works on the first ones while this
   * side computes the rest, instead of the two processes taking turns (bench/README.md: "Replies to a batch").
   */
  sendEarly(): void {
    if (!this.scheduled || this.corkedBytes < this.earlySend) return;
    this.flushPacked();
    this.corkedBytes = 0;
    this.uncork();
  }

  /** Corks the socket until the end of the tick (or an early send), so what is handed to it leaves in one writev. */
  private cork(): void {
    if (this.socketCorked) return;
    this.socketCorked = true;
    this.socket.cork();
  }

  private uncork(): void {
    if (!this.socketCorked) return;
    this.socketCorked = false;
    this.socket.uncork();
  }

  /** Bytes written and not yet sent by the kernel (the socket's buffer plus packed frames not yet handed over). */
  get queuedBytes(): number {
    return this.socket.writableLength + this.packedTo - this.packedFrom;
  }

  /**
   * A `'drain'` is coming: the socket's buffer reached its high-water mark, or will once the packed frames are
   * handed to it (flushPacked then corks, so that its write says so). Below that mark no `'drain'` is ever emitted.
   */
  get drainDue(): boolean {
    return this.socket.writableNeedDrain || this.queuedBytes >= this.socket.writableHighWaterMark;
  }

  /** Ends the socket after everything written so far (packed frames included). */
  end(): void {
    this.flushPacked();
    this.socket.end();
  }

  /** Hands the packed frames to the socket (keeping their order with the frames written after them). */
  private flushPacked(): void {
    const packed = this.packedTo - this.packedFrom;
    if (packed === 0) return;
    // Bytes that reach the high-water mark go through the stream's buffer (corked until the flush, or the early
    // send, uncorks): written straight to a stream that takes them synchronously, `write` would return true and
    // no 'drain' would ever come for the senders our `write` told to wait (a one-way sender stalls for good).
    if (this.socket.writableLength + packed >= this.socket.writableHighWaterMark) this.cork();
    this.socket.write(this.slab.subarray(this.packedFrom, this.packedTo));
    this.packedFrom = this.packedTo;
  }
}

/**
 * Writes a frame's header at `offset` of `target`, followed by the `window` when it is ≥ 0 (`putWindow`; the
 * payload length then counts those bytes); returns how many bytes that took.
 */
function putHead(target: Buffer, offset: number, type: number, flags: number, id: number, encoding: number, length: number, window: number): number {
  if (window < 0) {
    encodeHeader(type, flags, id, encoding, length, target, offset);
    return HEADER_SIZE;
  }
  encodeHeader(type, flags, id, encoding, length + WINDOW_SIZE, target, offset);
  return HEADER_SIZE + putWindow(target, offset + HEADER_SIZE, window);
}
