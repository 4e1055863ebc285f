import type { Socket } from 'node:net';
import { Encoding, HEADER_SIZE } from '../protocol/constants';
import { encodeHeader } from '../protocol/FrameEncoder';

/** Size of the buffers small frames are packed into. */
const SLAB_SIZE = 64 * 1024;
/** Codec-made payloads up to this size are packed next to their header instead of written on their own. */
const PACK_LIMIT = 8 * 1024;
/** Bytes written in one tick from which {@link FrameWriter.sendEarly} hands them to the socket before it ends. */
const EARLY_SEND = 16 * 1024;

/**
 * The one place frames are written, and the reason many small frames cost one system call:
 *
 * - The socket is corked on the first write of a tick and uncorked on the next tick, so everything written in
 *   one tick leaves in one `writev`.
 * - Except while a batch of received frames is being worked through: between two of them the connection calls
 *   {@link FrameWriter.sendEarly}, and once the tick has written 16 KiB those frames leave at once, so the peer
 *   starts on the first replies while this side computes the rest.
 * - Small payloads made by the codec (strings, numbers, objects) are copied next to their header into a shared
 *   slab, and consecutive ones are handed to the socket as one buffer: a tick of small messages is one write.
 * - Buffers and Uint8Arrays the user sent are never copied: their header and the payload go out as two buffers.
 */
export class FrameWriter {
  private slab = Buffer.allocUnsafe(0);
  /** Packed bytes not yet handed to the socket: `slab[packedFrom, packedTo)`. */
  private packedFrom = 0;
  private packedTo = 0;
  private corked = false;
  /** Bytes written since the socket was corked (or last sent early). */
  private corkedBytes = 0;
  /** Frames and bytes written so far (stats). */
  framesOut = 0;
  bytesOut = 0;
  private readonly flush = () => {
    this.flushPacked();
    this.corked = false;
    this.corkedBytes = 0;
    this.socket.uncork();
  };

  /**
   * @param immediate hand every frame to the socket at once (no cork, no packing across a tick): for in-memory
   *   links, whose delivery is synchronous.
   */
  constructor(
    private readonly socket: Socket,
    private readonly immediate = false,
  ) {}

  /**
   * Writes one frame. Returns false when the socket's buffer is at or above its high-water mark: wait for
   * `'drain'` before writing more.
   * @param window when ≥ 0, a u32 written between the header and the payload (a MESSAGE's `WINDOW`).
   */
  write(type: number, flags: number, id: number, encoding: number, payload: Uint8Array, window = -1): boolean {
    const extra = window < 0 ? 0 : 4;
    this.framesOut++;
    this.bytesOut += HEADER_SIZE + extra + payload.length;
    if (this.immediate) {
      this.socket.write(head(type, flags, id, encoding, payload.length, window));
      return payload.length === 0 || this.socket.write(payload);
    }
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.flush);
    }
    const length = payload.length;
    this.corkedBytes += HEADER_SIZE + extra + length;
    if (length <= PACK_LIMIT && encoding !== Encoding.BUFFER && encoding !== Encoding.UINT8ARRAY) {
      const size = HEADER_SIZE + extra + length;
      if (this.slab.length - this.packedTo < size) {
        this.flushPacked();
        this.slab = Buffer.allocUnsafe(Math.max(SLAB_SIZE, size));
        this.packedFrom = this.packedTo = 0;
      }
      encodeHeader(type, flags, id, encoding, extra + length, this.slab, this.packedTo);
      if (extra > 0) this.slab.writeUInt32BE(window, this.packedTo + HEADER_SIZE);
      if (length > 0) this.slab.set(payload, this.packedTo + HEADER_SIZE + extra);
      this.packedTo += size;
      return !this.socket.writableNeedDrain && this.socket.writableLength + this.packedTo - this.packedFrom < this.socket.writableHighWaterMark;
    }
    this.flushPacked();
    this.socket.write(head(type, flags, id, encoding, length, window));
    return this.socket.write(payload);
  }

  /**
   * Hands what this tick has written to the socket now, without waiting for the tick to end, once it reaches
   * 16 KiB (else does nothing). For the gaps between received frames: when one chunk brings dozens of requests,
   * their replies leave in pieces and the peer works on the first ones while this side computes the rest, instead
   * of the two processes taking turns (bench/README.md: "Replies to a batch").
   */
  sendEarly(): void {
    if (!this.corked || this.corkedBytes < EARLY_SEND) return;
    this.flushPacked();
    this.corkedBytes = 0;
    this.socket.uncork();
    this.socket.cork();
  }

  /** Bytes written and not yet sent by the kernel (the socket's buffer plus packed frames not yet handed over). */
  get queuedBytes(): number {
    return this.socket.writableLength + this.packedTo - this.packedFrom;
  }

  /** Ends the socket after everything written so far (packed frames included). */
  end(): void {
    this.flushPacked();
    this.socket.end();
  }

  /** Hands the packed frames to the socket (keeping their order with the frames written after them). */
  private flushPacked(): void {
    if (this.packedTo === this.packedFrom) return;
    this.socket.write(this.slab.subarray(this.packedFrom, this.packedTo));
    this.packedFrom = this.packedTo;
  }
}

/** A frame's header on its own, followed by the u32 `window` when it is ≥ 0. */
function head(type: number, flags: number, id: number, encoding: number, length: number, window: number): Buffer {
  if (window < 0) return encodeHeader(type, flags, id, encoding, length);
  const buffer = encodeHeader(type, flags, id, encoding, length + 4, Buffer.allocUnsafe(HEADER_SIZE + 4));
  buffer.writeUInt32BE(window, HEADER_SIZE);
  return buffer;
}
