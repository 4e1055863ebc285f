import type { OperatorFunction } from 'rxjs';
import { Observable } from 'rxjs/internal/Observable';
import { Subscriber } from 'rxjs/internal/Subscriber';
import { FrameDecoder, type FrameDecoderOptions } from '../protocol/FrameDecoder';
import type { Frame } from '../protocol/Frame';

/**
 * RxJS operator: turns a stream of byte chunks (of any size) into a stream of {@link Frame}s.
 *
 * Errors with a `ProtocolError` (`ERR_IPC_PROTOCOL`, `ERR_IPC_FRAME_TOO_LARGE`) when the bytes are not valid
 * frames, and with a `PeerDisconnectedError` (`ERR_IPC_PEER_DISCONNECTED`) when the source completes in the middle
 * of a frame. Unsubscribing drops any partial frame.
 * Each subscription has its own decoder, so the operator can be reused. A subscriber that leaves from within
 * `next` (`take(1)`) unsubscribes the source at once, also while it emits synchronously.
 *
 * @example
 * fromSocket(socket).pipe(decodeFrames({ maxFrameSize: 1 << 20 })).subscribe((frame) => …);
 */
export function decodeFrames(options?: FrameDecoderOptions): OperatorFunction<Uint8Array, Frame> {
  return (source) =>
    new Observable<Frame>((subscriber) => {
      const decoder = new FrameDecoder((frame) => subscriber.next(frame), options);
      // A Subscriber, not a plain observer, closed with `subscriber`: a source emitting synchronously during
      // `subscribe` (before its Subscription is returned) sees it closed as soon as the subscriber leaves, where
      // a plain observer was fed to the source's end — for ever, for an endless one.
      const upstream = new Subscriber<Uint8Array>({
        next(chunk) {
          try {
            decoder.push(chunk);
          } catch (error) {
            subscriber.error(error);
          }
        },
        error(error: unknown) {
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
      subscriber.add(upstream);
      source.subscribe(upstream);
    });
}
