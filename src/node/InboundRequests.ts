import { IdTable } from '../IdTable';
import type { StreamResponder } from './StreamResponder';

/** A request a peer sent us, from its admission until it is answered, cancelled or its connection ends. */
export interface InboundRequest {
  /** The peer's id of it (which the peer may use again once this one is gone: its ids wrap at 2³²). */
  readonly id: number;
  /** Credits granted for a streamed answer that has not started yet (the responder holds them once it has). */
  credits: number;
  /** The streamed answer, once `message.stream(…)` started it. */
  responder: StreamResponder | null;
}

/** Why {@link InboundRequests.admit} refused a request. */
export type Refusal = 'full' | 'duplicate';

/** Credits are counted up to this (a peer granting more is not owed more). */
const MAX_CREDITS = 0xffff_ffff;

/**
 * The one owner of the requests a peer sent us on one connection: id → {@link InboundRequest}. Its size *is*
 * the number of requests awaiting our answer, so it is bounded by `maxPendingRequests` by construction. A
 * REQUEST_N or CANCEL for an id not in it is dropped: nothing is ever stored for an id we did not admit.
 */
export class InboundRequests {
  private readonly table = new IdTable<InboundRequest>();

  constructor(private readonly limit: number) {}

  /** Requests awaiting our answer (streams being sent included). */
  get size(): number {
    return this.table.size;
  }

  /** Streamed answers being sent. */
  get streaming(): number {
    let n = 0;
    for (const entry of this.table.values()) if (entry.responder) n++;
    return n;
  }

  /**
   * Admits request `id` with `credits` for a streamed answer: its entry, the handle its answer is given by; or why
   * not, when the table is full or has that id.
   */
  admit(id: number, credits: number): InboundRequest | Refusal {
    if (this.table.has(id)) return 'duplicate';
    if (this.table.size >= this.limit) return 'full';
    const entry: InboundRequest = { id, credits, responder: null };
    this.table.add(id, entry);
    return entry;
  }

  /**
   * True while `request` awaits an answer that has not started. By identity, not by id: once it was cancelled,
   * a later request of the peer under the same id is another one.
   */
  unanswered(request: InboundRequest): boolean {
    return request.responder === null && this.table.get(request.id) === request;
  }

  /** Takes `request` out to answer it with one frame; false when it is gone or a stream answers it. */
  take(request: InboundRequest): boolean {
    if (!this.unanswered(request)) return false;
    this.table.delete(request.id);
    return true;
  }

  /** The requester granted `n` more values (REQUEST_N); dropped for an id not admitted. */
  grant(id: number, n: number): void {
    const entry = this.table.get(id);
    if (entry === undefined) return;
    if (entry.responder) entry.responder.grant(n);
    else entry.credits = Math.min(MAX_CREDITS, entry.credits + n);
  }

  /** The requester gave up (CANCEL): forget the request and stop its stream; dropped for an id not admitted. */
  cancel(id: number): void {
    const entry = this.table.get(id);
    if (entry === undefined) return;
    this.table.delete(id);
    entry.responder?.cancel();
  }

  /** A streamed answer ended. */
  release(id: number): void {
    this.table.delete(id);
  }

  /** The connection ended: forget everything and stop every stream. */
  cancelAll(): void {
    const entries = this.table.values();
    this.table.clear();
    for (const entry of entries) entry.responder?.cancel();
  }
}
