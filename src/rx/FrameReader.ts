import type { OnReadOpts } from 'node:net';
import type { Observable, Subscriber } from 'rxjs';
import { Observable as RxObservable } from 'rxjs/internal/Observable';
import { ErrorCode, ProtocolError } from '../errors';
import type { Frame } from '../protocol/Frame';
import { DEFAULT_MAX_FRAME_SIZE } from '../protocol/constants';
import { FrameDecoder, type FrameDecoderOptions } from '../protocol/FrameDecoder';

/** Bytes of one read. */
const READ_SIZE = 64 * 1024;

/**
 * The buffer every FrameReader's reads land in, one per process: a read is copied out of it within its `onread`
 * callback (synchronous, one socket at a time: libuv reads one socket, then calls back, then the next), so no
 * socket needs one of its own. One each held 64 KiB per dialled connection for its whole life, idle or not (1,000
 * idle connections: 64 MB). Allocated on first use.
 */
let sharedScratch: Buffer | null = null;
/**
 * The reader whose read is being copied out of `sharedScratch`, if any. Node reads one socket at a time, so no other
 * read can land there meanwhile; if one ever did (a read re-entered from within a frame's handling), the rest of the
 * first read was overwritten: that connection fails instead of decoding another socket's bytes as its own.
 */
let copying: FrameReader | null = null;

/**
 * Frames read from a socket without a chunk per read: create the socket with `reader.onread`
 * (`net.connect({ ..., onread: reader.onread })`), then subscribe to `reader.frames(socket)`. It is
 * `fromSocket(socket).pipe(decodeFrames())` without the stream's chunks: each read lands in one fixed 64 KiB
 * buffer (shared by every reader of the process) and is copied once, straight where the decoder wants it — small
 * frames into slabs, handed out as views; a large body into the buffer that becomes its payload, so it is never
 * reassembled from chunks (see {@link FrameDecoder.readTarget}).
 *
 * Subscribe before the socket can receive anything (in the same tick as creating it): bytes that arrive with
 * no subscriber are dropped. One subscriber at a time. A socket that ignores `onread` (a TLS socket wrapping
 * another socket) emits 'data' instead: those chunks are decoded as `decodeFrames` would, so it still works.
 *
 * @example
 * const reader = new FrameReader();
 * const socket = net.connect({ port, onread: reader.onread });
 * reader.frames(socket, { maxFrameSize: 1 << 20 }).subscribe((frame) => …);
 */
export class FrameReader {
  /** The `onread` option to create the socket with. */
  readonly onread: OnReadOpts;
  private readonly decoder: FrameDecoder;
  private subscriber: Subscriber<Frame> | null = null;
  private limit: () => number = () => 0;
  private onChunk: ((chunk: Buffer) => void) | undefined;
  /** Another reader's read landed in the shared buffer while this one's was being copied out (see `copying`). */
  private overwritten = false;

  constructor() {
    this.decoder = new FrameDecoder((frame) => this.subscriber?.next(frame), { maxFrameSize: () => this.limit() });
    // One fixed read buffer, never a buffer function: Node forgets the buffer a function returned when an
    // exception is thrown in a process.nextTick callback queued during that read (one the process survives
    // through 'uncaughtException'), and the next read then lands in memory already handed out as payloads.
    const scratch = (sharedScratch ??= Buffer.allocUnsafeSlow(READ_SIZE));
    this.onread = {
      buffer: scratch,
      callback: (n) => {
        const outer = copying;
        if (outer !== null) outer.overwritten = true;
        copying = this;
        try {
          for (let at = 0; at < n && this.subscriber; ) {
            const target = this.decoder.readTarget();
            const length = Math.min(target.length, n - at);
            scratch.copy(target, 0, at, at + length);
            at += length;
            this.arrived(length);
            if (this.overwritten && at < n) {
              this.subscriber?.error(new ProtocolError(ErrorCode.PROTOCOL, 'Another socket\'s read overwrote the rest of this read before it was decoded (a re-entrant read): the connection cannot go on'));
              break;
            }
          }
        } finally {
          this.overwritten = false;
          copying = outer;
        }
        return true;
      },
    };
  }

  /**
   * The frames `socket` receives: errors like `decodeFrames` (and with the socket's 'error'), completes when the
   * socket closes.
   * @param socket the socket created with {@link FrameReader.onread}.
   * @param options the decoder's options (`maxFrameSize`).
   * @param onChunk called with each read's bytes (a view that stays valid), after the frames they complete.
   */
  frames(socket: NodeJS.EventEmitter, options: FrameDecoderOptions = {}, onChunk?: (chunk: Buffer) => void): Observable<Frame> {
    return new RxObservable<Frame>((subscriber) => {
      if (this.subscriber) throw new Error('FrameReader#frames has a subscriber already');
      const max = options.maxFrameSize;
      this.limit = typeof max === 'function' ? max : () => max ?? DEFAULT_MAX_FRAME_SIZE;
      this.subscriber = subscriber;
      this.onChunk = onChunk;
      const onData = (chunk: Buffer) => {
        try {
          this.decoder.push(chunk);
          onChunk?.(chunk);
        } catch (error) {
          subscriber.error(error);
        }
      };
      const onError = (error: Error) => subscriber.error(error);
      const onClose = () => {
        try {
          this.decoder.end();
          subscriber.complete();
        } catch (error) {
          subscriber.error(error);
        }
      };
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onClose);
      return () => {
        this.subscriber = null;
        this.onChunk = undefined;
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
      };
    });
  }

  private arrived(n: number): void {
    const subscriber = this.subscriber;
    if (!subscriber) return;
    try {
      const bytes = this.decoder.wrote(n);
      this.onChunk?.(bytes);
    } catch (error) {
      subscriber.error(error);
    }
  }
}
