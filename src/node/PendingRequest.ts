import type { Observer } from 'rxjs';
import { ErrorCode, IpcError, IpcTimeoutError } from '../errors';
import type { Connection } from './Connection';
import { ExpiringEntry, type TimeoutQueue } from './TimeoutQueue';

/**
 * A request awaited through a Promise (`sendTo`, `pingTo`, `broadcast`): the registry's observer for its id and
 * its own entry in the node's {@link TimeoutQueue} — one small object per request, no RxJS pipe, no timer.
 * Answered by a stream, it takes the first value and cancels the rest.
 */
export class PendingRequest extends ExpiringEntry implements Observer<unknown> {
  id = 0;
  private answered = false;

  constructor(
    private readonly resolve: (value: unknown) => void,
    private readonly reject: (error: Error) => void,
    private readonly connection: Connection,
    private readonly timeouts: TimeoutQueue,
    private readonly timeout: number,
  ) {
    super();
  }

  next(value: unknown): void {
    this.timeouts.remove(this);
    this.answered = true;
    this.resolve(value);
    // Still registered: the answer is a stream. A Promise wants one value: cancel the rest.
    if (this.connection.registry.take(this.id) !== undefined) this.connection.cancelIfOpen(this.id);
  }

  error(error: Error): void {
    this.timeouts.remove(this);
    this.reject(error);
  }

  /** After a value this is nothing; alone it is a stream that ended empty: settle rather than wait for ever. */
  complete(): void {
    if (this.answered) return;
    this.timeouts.remove(this);
    this.reject(new IpcError(ErrorCode.EMPTY_REPLY, `The request to "${this.connection.peerName}" was answered by a stream that completed without a value`));
  }

  busy(): boolean {
    return this.connection.catchingUp;
  }

  expire(): void {
    if (this.connection.registry.take(this.id) !== undefined) this.connection.cancelIfOpen(this.id);
    this.reject(new IpcTimeoutError(`The request to "${this.connection.peerName}" got no answer within ${this.timeout} ms`));
  }
}
