import type { Observer } from 'rxjs';
import { IpcTimeoutError } from '../errors';
import type { Connection } from './Connection';
import type { Expiring, Lane, TimeoutQueue } from './TimeoutQueue';

/**
 * A request awaited through a Promise (`sendTo`, `pingTo`, `broadcast`): the registry's observer for its id and
 * its own entry in the node's {@link TimeoutQueue} — one small object per request, no RxJS pipe, no timer.
 * Answered by a stream, it takes the first value and cancels the rest.
 */
export class PendingRequest implements Observer<unknown>, Expiring {
  expiresAt = 0;
  prevExpiring: Expiring | null = null;
  nextExpiring: Expiring | null = null;
  lane: Lane | null = null;
  id = 0;

  constructor(
    private readonly resolve: (value: unknown) => void,
    private readonly reject: (error: Error) => void,
    private readonly connection: Connection,
    private readonly timeouts: TimeoutQueue,
    private readonly timeout: number,
  ) {}

  next(value: unknown): void {
    this.timeouts.remove(this);
    this.resolve(value);
    // Still registered: the answer is a stream. A Promise wants one value: cancel the rest.
    if (this.connection.registry.take(this.id) !== undefined) this.connection.cancelRequest(this.id);
  }

  error(error: Error): void {
    this.timeouts.remove(this);
    this.reject(error);
  }

  complete(): void {}

  expire(): void {
    if (this.connection.registry.take(this.id) !== undefined) this.connection.cancelRequest(this.id);
    this.reject(new IpcTimeoutError(`The request to "${this.connection.peerName}" got no answer within ${this.timeout} ms`));
  }
}
