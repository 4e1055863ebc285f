import type { Observer, Subscriber, Unsubscribable } from 'rxjs';
import { IpcTimeoutError } from '../errors';
import { FrameFlags, FrameType } from '../protocol/constants';
import type { Connection } from './Connection';
import { ExpiringEntry, type TimeoutQueue } from './TimeoutQueue';

/** Settings of one {@link StreamRequest}. */
export interface StreamRequestOptions {
  /** Credits granted up front (topped up by half of it each time the subscriber received that many). */
  window: number;
  /** Ms allowed for the first value. */
  timeout: number;
  /** Ms allowed between two later values. */
  idleTimeout: number;
  /** Keep the process up while it waits (no socket does: an in-memory link). */
  keepAlive: boolean;
}

/**
 * One subscription of `node.request$`: the registry's observer for its id and its own entry in the node's
 * {@link TimeoutQueue} — no `defer`, no RxJS `timeout` pipe, no timer per request (what made `request$` a third
 * of `sendTo`'s rate). First the `timeout` entry, then, once values flow, an `idleTimeout` entry re-armed at each
 * value; credits topped up as values are delivered; `unsubscribe()` (unsubscribe, `take(n)`…) cancels on the
 * responder.
 */
export class StreamRequest extends ExpiringEntry implements Observer<unknown>, Unsubscribable {
  id = 0;
  private consumed = 0;
  private seen = 0;
  private readonly half: number;

  private readonly window: number;
  private readonly timeout: number;
  private readonly idleTimeout: number;
  private readonly keepAlive: boolean;

  constructor(
    private readonly subscriber: Subscriber<unknown>,
    private readonly connection: Connection,
    private readonly timeouts: TimeoutQueue,
    options: StreamRequestOptions,
  ) {
    super();
    // Kept as fields, not as the object: one allocation less per request (what a burst of requests pays in GC).
    this.window = options.window;
    this.timeout = options.timeout;
    this.idleTimeout = options.idleTimeout;
    this.keepAlive = options.keepAlive;
    this.half = Math.max(1, Math.ceil(options.window / 2));
  }

  /** Registers, arms the first timeout and sends the request: a receptive MESSAGE carrying `payload` and the window. */
  start(encoding: number, payload: Uint8Array | string): void {
    const { registry } = this.connection;
    this.id = registry.register(this);
    if (this.timeout > 0) this.arm(this.timeout);
    try {
      this.connection.send(FrameType.MESSAGE, FrameFlags.RECEPTIVE, this.id, encoding, payload, this.window);
    } catch (error) {
      registry.remove(this.id);
      this.timeouts.remove(this);
      this.subscriber.error(error);
      return;
    }
    // 0 is no time at all: only an answer that came within send (an in-memory link) beats it — not a timer's race.
    if (this.timeout === 0 && this.seen === 0 && registry.get(this.id) === this) this.expire();
  }

  next(value: unknown): void {
    this.seen++;
    this.timeouts.remove(this);
    this.subscriber.next(value);
    if (this.subscriber.closed) return;
    if (this.idleTimeout === 0) this.nextAtOnce();
    else this.arm(this.idleTimeout);
    // A single REPLY was already taken out of the table: nothing to grant credits for.
    if (++this.consumed >= this.half && this.connection.registry.get(this.id) === this) {
      this.connection.grantIfOpen(this.id, this.consumed);
      this.consumed = 0;
    }
  }

  error(error: unknown): void {
    this.timeouts.remove(this);
    this.subscriber.error(error);
  }

  complete(): void {
    this.timeouts.remove(this);
    this.subscriber.complete();
  }

  busy(): boolean {
    return this.connection.catchingUp;
  }

  expire(): void {
    if (this.connection.registry.take(this.id) !== undefined) this.connection.cancelIfOpen(this.id);
    const label = `The request to "${this.connection.peerName}"`;
    const message = this.seen > 0 ? `${label} sent no value for ${this.idleTimeout} ms` : `${label} got no answer within ${this.timeout} ms`;
    this.subscriber.error(new IpcTimeoutError(message));
  }

  /**
   * The subscriber left (or the request ended): forget it, and tell the responder when it still streams. Named
   * so that the request itself is its subscription's teardown (no closure per request).
   */
  unsubscribe(): void {
    this.timeouts.remove(this);
    if (this.connection.registry.take(this.id) !== undefined) this.connection.cancelIfOpen(this.id);
  }

  /**
   * `idleTimeout` 0 is no time at all: the next value must come in this same turn of the event loop (the same read
   * of the socket, or what an in-memory link delivers on its ticks), or the stream fails — checked once this turn's
   * I/O is handled (`setImmediate`), not by a clock. A timer of 0 ms (1 ms to Node) raced the next reads: over TCP a
   * value written a turn later passed or failed by chance.
   */
  private nextAtOnce(): void {
    const seen = this.seen;
    setImmediate(() => {
      if (this.seen === seen && !this.subscriber.closed && this.connection.registry.get(this.id) === this) this.expire();
    });
  }

  private arm(ms: number): void {
    if (Number.isFinite(ms)) this.timeouts.add(this, ms, this.keepAlive);
  }
}
