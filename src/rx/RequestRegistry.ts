import type { Observer } from 'rxjs';
import { IdTable } from '../IdTable';

/**
 * The pending requests of one connection: request id → the observer waiting for the answer. Lookup, insertion
 * and removal are O(1). Ids are per connection and per direction, counted from 1, wrapping at 2³², skipping 0
 * and ids still pending; they never come from a clock. A single pending request costs no allocation in the table
 * ({@link IdTable}).
 */
export class RequestRegistry {
  private readonly pending = new IdTable<Observer<unknown>>();
  private lastId = 0;

  /** Number of requests waiting for an answer. */
  get size(): number {
    return this.pending.size;
  }

  /** Registers `observer` under a fresh id and returns the id. */
  register(observer: Observer<unknown>): number {
    let id = this.lastId;
    do {
      id = (id + 1) >>> 0 || 1;
    } while (this.pending.has(id));
    this.lastId = id;
    this.pending.add(id, observer);
    return id;
  }

  /** Removes and returns the observer of `id`; undefined when it is not pending (late or unknown answer). */
  take(id: number): Observer<unknown> | undefined {
    const observer = this.pending.get(id);
    if (observer !== undefined) this.pending.delete(id);
    return observer;
  }

  /** The observer of `id` without removing it (stream values), undefined when not pending. */
  get(id: number): Observer<unknown> | undefined {
    return this.pending.get(id);
  }

  /** Forgets `id` (the requester gave up). */
  remove(id: number): void {
    this.pending.delete(id);
  }

  /** Fails every pending request with `error` and empties the registry. */
  rejectAll(error: Error): void {
    if (this.pending.size === 0) return;
    const observers = this.pending.values();
    this.pending.clear();
    for (const observer of observers) observer.error(error);
  }
}
