import type { OperatorFunction } from 'rxjs';
import { Observable } from 'rxjs/internal/Observable';
import { FrameDecoder, type FrameDecoderOptions } from '../protocol/FrameDecoder';
import type { Frame } from '../protocol/Frame';

/**
 * RxJS operator: turns a stream of byte chunks (of any size) into a stream of {@link Frame}s.
 *
 * Errors with a `ProtocolError` (`ERR_IPC_PROTOCOL`, `ERR_IPC_FRAME_TOO_LARGE`) when the bytes are not valid
 * frames, and with a `PeerDisconnectedError` (`ERR_IPC_PEER_DISCONNECTED`) when the source completes in the middle
 * of a frame. Unsubscribing drops any partial frame.
 * Each subscription has its own decoder, so the operator can be reused.
 *
 * @example
 * fromSocket(socket).pipe(decodeFrames({ maxFrameSize: 1 << 20 })).subscribe((frame) => …);
 */
export function decodeFrames(options?: FrameDecoderOptions): OperatorFunction<Uint8Array, Frame> {
  return (source) =>
    new Observable<Frame>((subscriber) => {
      const decoder = new FrameDecoder((frame) => subscriber.next(frame), options);
      return source.subscribe({
        next(chunk) {
          try {
            decoder.push(chunk);
          } catch (error) {
            subscriber.error(error);
          }
        },
        error(error) {
          subscriber.error(error);
        },
        complete() {
          try {
            decoder.end();
            subscriber.complete();
          } catch (error) {
            subscriber.error(error);
          }
        },
      });
    });
}
