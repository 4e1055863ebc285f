import { ErrorCode, PeerDisconnectedError, ProtocolError } from '../errors';
import { DEFAULT_MAX_FRAME_SIZE, HEADER_SIZE, MAGIC, PROTOCOL_VERSION } from './constants';
import { EMPTY_PAYLOAD, type Frame } from './Frame';

/** The first two bytes of a TLS handshake record (a ClientHello): a TLS peer talking to a plain node. */
const TLS_RECORD = 0x1603;
const TLS_HINT = ' (a TLS ClientHello: the peer speaks TLS; give this node options.tls too, or the peer none)';

/** Read-into mode: size of the slabs that socket reads land in. */
const SLAB_SIZE = 64 * 1024;
/** Read-into mode: a slab with less room than this is retired (a read into it would be cut short). */
const MIN_READ = 8 * 1024;
/** Read-into mode: a body at least this large, not yet arrived and too big for the slab, gets its own buffer. */
const DIRECT_BODY = 32 * 1024;
/**
 * Push mode: a chunk smaller than this that stays held (its frame is not complete) is copied into a small slab
 * instead of being kept: a Buffer object costs ~200 bytes however few bytes it holds, so a peer trickling a large
 * frame one byte a read made us hold ~200 times what it sent.
 */
const SMALL_CHUNK = 1024;
/** Push mode: size of the slabs small held chunks are gathered in. */
const TAIL_SLAB_SIZE = 16 * 1024;

/** Options of {@link FrameDecoder} and `decodeFrames`. */
export interface FrameDecoderOptions {
  /**
   * Largest payload accepted, in bytes; a header declaring more fails the decoder with
   * `ERR_IPC_FRAME_TOO_LARGE` before any of the body is buffered. A function is read before each header,
   * so the limit can change over time (a node keeps it small until the handshake is done).
   * Default: 64 MiB.
   */
  maxFrameSize?: number | (() => number);
}

/**
 * Turns a byte stream cut into chunks of any size back into frames. Pure: no sockets, timers or RxJS.
 *
 * Push mode ({@link FrameDecoder.push}): the chunks are kept in a list and never glued together: a frame lying
 * inside one chunk is handed out as a view of that chunk (no copy); a frame spread over several chunks is copied
 * once, when its last byte has arrived. Memory held is the bytes received and not yet handed out, never a length
 * a peer merely claims: a small chunk that stays held is gathered into a slab, not kept as one Buffer object per read.
 *
 * Read-into mode, for sockets that let the reader choose where bytes land (`net.connect`'s `onread`): instead of
 * {@link FrameDecoder.push}, ask {@link FrameDecoder.readTarget} where the next read should go and report it with
 * {@link FrameDecoder.wrote}. Small frames then land in 64 KiB slabs, one read after the other, and come out as
 * views (copied only when one straddles two slabs); a large body is read straight into the buffer that becomes
 * its payload, so it is never copied at all. That buffer is allocated from the declared length once it has
 * passed the `maxFrameSize` check (the kernel commits its pages only as bytes arrive).
 *
 * After an error (bad magic, unsupported version, frame too large) the decoder stays failed and every later
 * {@link FrameDecoder.push} or {@link FrameDecoder.wrote} throws the same error: the stream cannot be
 * resynchronised.
 *
 * @example
 * const decoder = new FrameDecoder((frame) => console.log(frame.type, frame.payload));
 * socket.on('data', (chunk) => decoder.push(chunk));
 */
export class FrameDecoder {
  /** The chunks held; those before `head` are read (dropped from the list together, see advance). */
  private readonly chunks: Buffer[] = [];
  private head = 0;
  /** Read position inside `chunks[head]`. */
  private offset = 0;
  /** Unread bytes over all chunks. */
  private buffered = 0;
  /** Payload length of the frame whose header was read, or -1 while waiting for a header. */
  private bodyLength = -1;
  private type = 0;
  private flags = 0;
  private encoding = 0;
  private id = 0;
  private failure: ProtocolError | PeerDisconnectedError | null = null;
  private readonly scratch = Buffer.allocUnsafe(HEADER_SIZE);
  /** Read-into mode: the slab small reads land in, and how much of it is used. */
  private slab: Buffer | null = null;
  private slabUsed = 0;
  /** Read-into mode: the payload being read straight into its own buffer, and how much of it has arrived. */
  private body: Buffer | null = null;
  private bodyFilled = 0;
  /** Push mode: the slab small held chunks are gathered in, and how much of it is used. */
  private tail: Buffer | null = null;
  private tailUsed = 0;
  private readonly limit: () => number;

  /**
   * @param onFrame called synchronously, in order, for every complete frame.
   * @param options see {@link FrameDecoderOptions}.
   */
  constructor(
    private readonly onFrame: (frame: Frame) => void,
    options: FrameDecoderOptions = {},
  ) {
    const max = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    this.limit = typeof max === 'function' ? max : () => max;
  }

  /** Bytes received and not yet handed out as frames. */
  get bufferedBytes(): number {
    return this.buffered + this.bodyFilled;
  }

  /** True when part of a frame has been received and the rest is missing. */
  get inFrame(): boolean {
    return this.buffered > 0 || this.bodyLength >= 0;
  }

  /**
   * Feeds one chunk; calls `onFrame` for every frame it completes.
   * @throws ProtocolError when the bytes are not valid frames (also on every call after that).
   */
  push(chunk: Uint8Array): void {
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return;
    const held = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    this.chunks.push(held);
    this.buffered += chunk.length;
    this.decode();
    // Only when the last chunk is still this one: an `onFrame` that pushed again (re-entrant) may have left a
    // chunk of any size after it, which the tail slab cannot hold.
    if (chunk.length < SMALL_CHUNK && this.buffered > 0 && this.chunks[this.chunks.length - 1] === held) this.gatherLast();
  }

  /**
   * Push mode: the last chunk, small and still held, is copied to the end of the tail slab (growing the chunk
   * before it when that one ends there), so that what a trickling peer makes us hold is its bytes, not a Buffer
   * object per read. The slab is only appended to: frames handed out as views of it stay valid.
   */
  private gatherLast(): void {
    const last = this.chunks.length - 1;
    const start = last === this.head ? this.offset : 0;
    const held = this.chunks[last];
    const n = held.length - start;
    if (this.tail === null || this.tail.length - this.tailUsed < n) {
      this.tail = Buffer.allocUnsafeSlow(TAIL_SLAB_SIZE);
      this.tailUsed = 0;
    }
    const tail = this.tail;
    const at = this.tailUsed;
    held.copy(tail, at, start, held.length);
    this.tailUsed += n;
    const previous = last > this.head ? this.chunks[last - 1] : null;
    if (previous && previous.buffer === tail.buffer && previous.byteOffset + previous.length === tail.byteOffset + at) {
      this.chunks.pop();
      this.chunks[last - 1] = Buffer.from(tail.buffer, previous.byteOffset, previous.length + n);
    } else {
      this.chunks[last] = tail.subarray(at, at + n);
      if (last === this.head) this.offset = 0;
    }
  }

  /**
   * Read-into mode: where the next read should put its bytes. The bytes already there are never overwritten
   * by a later target, so frames handed out as views stay valid. Calling it again before {@link wrote} returns
   * the same place.
   */
  readTarget(): Buffer {
    if (this.body) return this.body.subarray(this.bodyFilled);
    if (this.slab === null || this.slab.length - this.slabUsed < MIN_READ) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      this.slabUsed = 0;
    }
    return this.slab.subarray(this.slabUsed);
  }

  /**
   * Read-into mode: `n` bytes were written at the start of the last {@link readTarget}; calls `onFrame` for
   * every frame they complete, and returns those bytes (a view that stays valid).
   * @throws ProtocolError when the bytes are not valid frames (also on every call after that).
   */
  wrote(n: number): Buffer {
    if (this.failure) throw this.failure;
    const body = this.body;
    if (body) {
      const bytes = body.subarray(this.bodyFilled, this.bodyFilled + n);
      this.bodyFilled += n;
      if (this.bodyFilled === body.length) {
        this.body = null;
        this.bodyFilled = 0;
        this.emit(body);
      }
      return bytes;
    }
    const slab = this.slab!;
    const start = this.slabUsed;
    this.slabUsed += n;
    const bytes = slab.subarray(start, this.slabUsed);
    // Reads follow each other in the slab: the last chunk grows instead of a new one starting (fewer copies).
    const last = this.chunks.length - 1;
    const previous = last >= this.head ? this.chunks[last] : null;
    if (previous && previous.buffer === slab.buffer && previous.byteOffset + previous.length === bytes.byteOffset) {
      this.chunks[last] = Buffer.from(previous.buffer, previous.byteOffset, previous.length + n);
    } else {
      this.chunks.push(bytes);
    }
    this.buffered += n;
    this.decode();
    const missing = this.bodyLength - this.buffered;
    if (this.bodyLength >= DIRECT_BODY && missing > SLAB_SIZE - this.slabUsed) {
      // The rest of this body goes straight into its own buffer; the part already here is copied once.
      const have = this.buffered;
      this.body = this.copyInto(Buffer.allocUnsafe(this.bodyLength), have);
      this.bodyFilled = have;
    }
    return bytes;
  }

  /** Hands out every frame the buffered bytes complete. */
  private decode(): void {
    for (;;) {
      if (this.bodyLength < 0) {
        if (this.buffered < HEADER_SIZE) return;
        this.readHeader();
      }
      const length = this.bodyLength;
      if (this.buffered < length) return;
      this.emit(this.take(length));
    }
  }

  /** Hands out the frame whose header was read last, with `payload`. */
  private emit(payload: Buffer): void {
    const frame: Frame = { type: this.type, flags: this.flags, id: this.id, encoding: this.encoding, payload };
    this.bodyLength = -1;
    this.onFrame(frame);
  }

  /**
   * Declares the end of the stream.
   * @throws PeerDisconnectedError (`ERR_IPC_PEER_DISCONNECTED`) when it ends inside a frame: the peer went away
   *   mid-frame (its bytes were fine so far).
   */
  end(): void {
    if (this.failure) throw this.failure;
    if (this.inFrame) {
      const missing = this.bodyLength >= 0 ? this.bodyLength - this.bufferedBytes : HEADER_SIZE - this.buffered;
      this.fail(new PeerDisconnectedError(`Stream ended inside a frame: ${missing} more byte(s) were expected`));
    }
  }

  private readHeader(): void {
    const first = this.chunks[this.head];
    let header: Buffer;
    let at: number;
    if (first.length - this.offset >= HEADER_SIZE) {
      header = first;
      at = this.offset;
      this.advance(HEADER_SIZE);
    } else {
      header = this.copyInto(this.scratch, HEADER_SIZE);
      at = 0;
    }
    // Byte by byte, as encodeHeader writes them: Buffer#readUInt16BE/32BE check their range on every frame.
    const magic = (header[at] << 8) | header[at + 1];
    if (magic !== MAGIC) {
      this.fail(
        new ProtocolError(
          ErrorCode.PROTOCOL,
          `Not an ipc-link-core frame: expected magic 0x${MAGIC.toString(16)}, received 0x${magic.toString(16).padStart(4, '0')}${magic === TLS_RECORD ? TLS_HINT : ''}`,
        ),
      );
    }
    const version = header[at + 2];
    if (version !== PROTOCOL_VERSION) {
      this.fail(new ProtocolError(ErrorCode.PROTOCOL, `Unsupported protocol version ${version}: this node speaks version ${PROTOCOL_VERSION}`));
    }
    const length = u32(header, at + 12);
    const max = this.limit();
    if (length > max) {
      this.fail(new ProtocolError(ErrorCode.FRAME_TOO_LARGE, `Frame payload of ${length} bytes exceeds maxFrameSize (${max} bytes)`));
    }
    this.type = header[at + 3];
    this.flags = header[at + 4];
    this.encoding = header[at + 5];
    this.id = u32(header, at + 8);
    this.bodyLength = length;
  }

  /** Hands out the next `length` bytes: a view when they lie in one chunk, one copy otherwise. */
  private take(length: number): Buffer {
    const first = this.chunks[this.head];
    if (length === 0) return EMPTY_PAYLOAD;
    if (first.length - this.offset >= length) {
      const view = first.subarray(this.offset, this.offset + length);
      this.advance(length);
      return view;
    }
    return this.copyInto(Buffer.allocUnsafe(length), length);
  }

  /** Moves the read position forward inside `chunks[head]` (the caller knows the bytes are there). */
  private advance(length: number): void {
    this.offset += length;
    this.buffered -= length;
    if (this.offset === this.chunks[this.head].length) {
      // Not `shift()`: that moves every chunk after it (V8 cannot trim a long array in place), and a large frame
      // received in small reads — a 64 MiB one in 61,000 reads of 1.1 KiB — took 6.8 s of blocked event loop to
      // copy out, quadratic in its chunks. The read chunk is released; the list is cut once half of it is read.
      this.chunks[this.head++] = EMPTY_PAYLOAD;
      this.offset = 0;
      if (this.head === this.chunks.length) {
        this.chunks.length = 0;
        this.head = 0;
      } else if (this.head >= 1024 && 2 * this.head >= this.chunks.length) {
        this.chunks.splice(0, this.head);
        this.head = 0;
      }
    }
  }

  /** Copies the next `length` bytes, which span chunks, into `target`. */
  private copyInto(target: Buffer, length: number): Buffer {
    let written = 0;
    while (written < length) {
      const first = this.chunks[this.head];
      const n = Math.min(first.length - this.offset, length - written);
      first.copy(target, written, this.offset, this.offset + n);
      written += n;
      this.advance(n);
    }
    return target;
  }

  private fail(error: ProtocolError | PeerDisconnectedError): never {
    this.failure = error;
    this.chunks.length = 0;
    this.head = 0;
    this.buffered = 0;
    this.offset = 0;
    this.bodyLength = -1;
    this.body = null;
    this.bodyFilled = 0;
    this.tail = null;
    throw this.failure;
  }
}

/** The big-endian u32 at `at` of `bytes` (which holds it). */
function u32(bytes: Buffer, at: number): number {
  return bytes[at] * 0x1000000 + ((bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]);
}
