import type { Observer } from 'rxjs';
import { IpcTimeoutError } from '../errors';
import type { RequestRegistry } from './RequestRegistry';
import type { Expiring, Lane, TimeoutQueue } from './TimeoutQueue';

/**
 * A request awaited through a Promise (`sendTo`, `pingTo`, `broadcast`): the registry's observer for its id and
 * its own entry in the node's {@link TimeoutQueue} — one small object per request, no RxJS pipe, no timer.
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
    private readonly registry: RequestRegistry,
    private readonly timeouts: TimeoutQueue,
    private readonly timeout: number,
    private readonly peer: string,
  ) {}

  next(value: unknown): void {
    this.timeouts.remove(this);
    this.resolve(value);
  }

  error(error: Error): void {
    this.timeouts.remove(this);
    this.reject(error);
  }

  complete(): void {}

  expire(): void {
    this.registry.remove(this.id);
    this.reject(new IpcTimeoutError(`The request to "${this.peer}" got no answer within ${this.timeout} ms`));
  }
}
