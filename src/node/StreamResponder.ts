import { Readable } from 'node:stream';
import type { ObservableInput, Subscription } from 'rxjs';
import { Subject } from 'rxjs/internal/Subject';
import { isObservable } from 'rxjs/internal/util/isObservable';
import { Fifo } from '../Fifo';
import { ErrorCode, IpcError } from '../errors';
import { FrameType } from '../protocol/constants';
import { EMPTY_PAYLOAD } from '../protocol/Frame';
import { encodeWire, type Codec } from '../protocol/Serializer';
import { asError } from './asError';
import { PACK_LIMIT } from './FrameWriter';
import { from, takeUntil } from '../rx/lazy';

/** What a stream needs from its connection. */
export interface StreamSink {
  readonly codec: Codec;
  /** @throws IpcError (`ERR_IPC_FRAME_TOO_LARGE`) when `payload` (bytes, or text as UTF-8) exceeds the peer's limit. */
  checkSize(payload: Uint8Array | string): void;
  /**
   * Writes one frame; false when the connection is gone. `written` (see `FrameWriter#write`) is called once the
   * socket has taken a payload larger than {@link PACK_LIMIT}, which is written without a copy; never for a smaller
   * one (copied at once).
   */
  trySendFrame(type: number, id: number, encoding: number, payload: Uint8Array | string, written?: (error?: Error | null) => void): boolean;
  /** True while so much waits to be sent to the peer that a stream should wait for {@link StreamSink.drained}. */
  readonly backlogged: boolean;
  /** Resolves when the socket drained; rejects when the connection is gone. */
  drained(): Promise<void>;
  /** Writes an error frame of `type` describing `error`. */
  sendErrorIfOpen(type: number, id: number, error: Error): void;
  /** Forgets the stream (it ended). */
  release(id: number): void;
  /**
   * A value was taken from a pushed source: counted as a frame toward the reading turn (see `Connection#yieldTurn`),
   * as one frame can start a synchronous Observable's 1,025 values (to overflow).
   */
  tookValue(): void;
}

const MAX_CREDITS = 0xffff_ffff;
/** A pulled stream lets the event loop turn (I/O, timers, other peers) at least this often, in values. */
const YIELD_EVERY = 1024;

/** The iterator to pull `source` through, when it is an AsyncIterable or an iterable (and not an Observable). */
function pullable(source: unknown): AsyncIterator<unknown> | Iterator<unknown> | undefined {
  if (source === null || source === undefined || isObservable(source)) return undefined;
  const candidate = source as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
  const asyncIterate = candidate[Symbol.asyncIterator];
  if (typeof asyncIterate === 'function') return asyncIterate.call(source);
  const iterate = candidate[Symbol.iterator];
  if (typeof iterate === 'function') return iterate.call(source);
  return undefined;
}

/**
 * Releases a source that will not be streamed (any more): a Node `Readable` is destroyed (returning its iterator
 * does it only once it was pulled), another AsyncIterable or iterable returned — a generator's `finally` runs —
 * as a cancelled stream's would be. An Observable or a Promise holds nothing until subscribed: left alone.
 */
export function releaseSource(source: unknown, iterator?: AsyncIterator<unknown> | Iterator<unknown> | null): void {
  try {
    if (source instanceof Readable) {
      source.destroy();
      return;
    }
    void Promise.resolve((iterator ?? pullable(source))?.return?.()).catch(() => undefined);
  } catch {
    // asking for the iterator or returning it threw (a generator's finally): it is over all the same
  }
}

/**
 * The responder's side of one streamed reply (`message.stream(source)`), driven by the requester's credits:
 * each value costs one credit, REQUEST_N frames add credits, CANCEL stops everything.
 *
 * - An `AsyncIterable` or an iterable (array, generator, Set…) is pulled only while credits remain and the socket
 *   is not backlogged: true backpressure, the producer waits (and lets the event loop turn every 1024 values).
 * - An `Observable` (or Promise…) pushes: values beyond the credits (or while the socket is backlogged) are
 *   buffered up to `maxBuffer`, then the stream fails with `ERR_IPC_STREAM_OVERFLOW` and the source is
 *   unsubscribed — at once, even from inside a synchronous emission loop.
 * Cancellation (CANCEL frame, lost connection) unsubscribes the source / returns the iterator: its `finalize`
 * runs. The values a pushed source emits count toward the reading turn of the connection
 * (`StreamSink#tookValue`): a peer cannot have 1,024 synchronous streams started in one turn of the event loop.
 */
export class StreamResponder {
  private credits: number;
  private readonly queue = new Fifo<unknown>();
  private completed = false;
  /**
   * A pushed source failed while values still waited for credits (or for the socket): sent after them, as a
   * completion is — RxJS order, the values an Observable emitted come before its error.
   */
  private failure: Error | null = null;
  private ended = false;
  private subscription: Subscription | null = null;
  private iterator: AsyncIterator<unknown> | Iterator<unknown> | null = null;
  private wake: (() => void) | null = null;
  /** Emits once when the stream ends: stops a pushed source even while it emits synchronously. */
  private stop: Subject<void> | null = null;
  /** A wait for the socket to drain is armed (pushed sources). */
  private waitingForDrain = false;
  /**
   * Pulled sources: the last value's payload was written without a copy (over {@link PACK_LIMIT} bytes, a Buffer
   * or Uint8Array sent as it is); settles once the socket has taken it. The next value is pulled only then: a
   * source may reuse its buffer once asked for the next value (a reader that fills one chunk again and again).
   */
  private taken: Promise<void> | null = null;
  /** The pulled source (released with its iterator at the end). */
  private source: unknown = null;

  constructor(
    private readonly sink: StreamSink,
    private readonly id: number,
    credits: number,
    private readonly maxBuffer: number,
  ) {
    this.credits = credits;
  }

  /**
   * Starts sending the values of `source`.
   * @throws TypeError when `source` is not something to stream from (the requester then gets that error).
   */
  start(source: ObservableInput<unknown> | AsyncIterable<unknown> | Iterable<unknown>): void {
    if (typeof source === 'string' || ArrayBuffer.isView(source)) {
      // Iterables of characters / bytes, but one value each: streamed, 'hello' arrived as 'h', 'e'… (a Buffer as
      // one number per byte), and a sendTo resolved with the first character. Asked for explicitly, they stream.
      const what = typeof source === 'string' ? 'a string' : `a ${source.constructor?.name ?? 'typed array'}`;
      const error = new TypeError(
        `message.stream() was given ${what}, which is one value: answer with message.reply(value), or stream([value]); to stream its ${typeof source === 'string' ? 'characters' : 'elements'}, stream(from(value))`,
      );
      this.fail(error);
      throw error;
    }
    let iterator;
    try {
      iterator = pullable(source);
    } catch (error) {
      // Asking for the iterator threw (a locked stream…): the requester gets that error.
      this.fail(asError(error));
      throw error;
    }
    if (iterator) {
      this.source = source;
      void this.pull(iterator);
      return;
    }
    let observable;
    try {
      observable = from(source as ObservableInput<unknown>);
    } catch {
      const error = new TypeError(
        `message.stream() needs an Observable, a Promise, an AsyncIterable or an iterable; received ${source === null ? 'null' : typeof source}`,
      );
      this.fail(error);
      throw error;
    }
    this.stop = new Subject<void>();
    this.subscription = observable.pipe(takeUntil(this.stop)).subscribe({
      next: (value) => this.push(value),
      error: (error: unknown) => {
        this.failure = asError(error);
        this.flush();
      },
      complete: () => {
        this.completed = true;
        this.flush();
      },
    });
  }

  /** True while `source` is the pulled source this stream sends (an Observable is never released: not needed). */
  pulls(source: unknown): boolean {
    return this.source !== null && this.source === source;
  }

  /** The requester granted `n` more values. */
  grant(n: number): void {
    this.credits = Math.min(MAX_CREDITS, this.credits + n);
    if (this.iterator) this.wake?.();
    else this.flush();
  }

  /** The requester cancelled, or the connection is gone: stop the source. */
  cancel(): void {
    if (this.ended) return;
    this.end();
  }

  private async pull(iterator: AsyncIterator<unknown> | Iterator<unknown>): Promise<void> {
    this.iterator = iterator;
    try {
      for (let sent = 0; ; sent++) {
        while (this.credits === 0 && !this.ended) await new Promise<void>((resolve) => (this.wake = resolve));
        while (this.sink.backlogged && !this.ended) await this.sink.drained();
        if (sent % YIELD_EVERY === YIELD_EVERY - 1) await new Promise((resolve) => setImmediate(resolve));
        if (this.taken) {
          await this.taken;
          this.taken = null;
        }
        if (this.ended) return;
        const { value, done } = await iterator.next();
        if (this.ended) return;
        if (done) {
          this.complete();
          return;
        }
        this.credits--;
        if (!this.sendValue(value)) return;
      }
    } catch (error) {
      if (!this.ended) this.fail(asError(error));
    }
  }

  private push(value: unknown): void {
    if (this.ended) return;
    this.sink.tookValue();
    if (this.credits > 0 && this.queue.length === 0 && !this.sink.backlogged) {
      this.credits--;
      this.sendValue(value);
      return;
    }
    this.queue.push(value);
    if (this.sink.backlogged) this.flushOnDrain();
    if (this.queue.length > this.maxBuffer) {
      this.fail(
        new IpcError(
          ErrorCode.STREAM_OVERFLOW,
          `The stream produced more than ${this.maxBuffer} values ahead of what the requester consumed: use an AsyncIterable for backpressure, or raise streamBuffer`,
        ),
      );
    }
  }

  private flush(): void {
    while (!this.ended && this.credits > 0 && this.queue.length > 0) {
      if (this.sink.backlogged) return this.flushOnDrain();
      this.credits--;
      if (!this.sendValue(this.queue.shift())) return;
    }
    if (this.ended || this.queue.length > 0) return;
    if (this.failure) this.fail(this.failure);
    else if (this.completed) this.complete();
  }

  /** Flushes the queue of a pushed source again once the socket drained. */
  private flushOnDrain(): void {
    if (this.waitingForDrain) return;
    this.waitingForDrain = true;
    this.sink.drained().then(
      () => {
        this.waitingForDrain = false;
        this.flush();
      },
      () => this.end(),
    );
  }

  private sendValue(value: unknown): boolean {
    let encoded;
    try {
      encoded = encodeWire(this.sink.codec, value);
      this.sink.checkSize(encoded.payload);
    } catch (error) {
      this.fail(asError(error));
      return false;
    }
    const { payload } = encoded;
    let written: ((error?: Error | null) => void) | undefined;
    if (this.iterator !== null && typeof payload !== 'string' && payload.length > PACK_LIMIT) {
      // Settles on a failed write too: the connection then ends the stream.
      this.taken = new Promise<void>((resolve) => (written = () => resolve()));
    }
    if (this.sink.trySendFrame(FrameType.STREAM_NEXT, this.id, encoded.encoding, payload, written)) return true;
    this.end();
    return false;
  }

  private complete(): void {
    this.sink.trySendFrame(FrameType.STREAM_COMPLETE, this.id, 0, EMPTY_PAYLOAD);
    this.end();
  }

  private fail(error: Error): void {
    if (this.ended) return;
    this.sink.sendErrorIfOpen(FrameType.STREAM_ERROR, this.id, error);
    this.end();
  }

  /**
   * Ends the stream: frees its request, then stops its source. In that order: a pushed source's teardown that
   * throws (an `UnsubscriptionError`, RxJS's to report, as for any subscriber) must not leave the request's slot
   * held, and the stream counted in `openStreams`, until the connection ends.
   */
  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.queue.clear();
    this.sink.release(this.id);
    const iterator = this.iterator;
    this.iterator = null;
    this.wake?.();
    if (iterator) releaseSource(this.source, iterator);
    this.source = null;
    this.stop?.next();
    this.subscription?.unsubscribe();
  }
}
