import { MAX_COUNTED_DELAY, MAX_TIMER_DELAY } from './duration';

/**
 * Lanes a queue keeps armed while they are empty (see {@link TimeoutQueue.remove}): beyond this many lanes, one
 * that empties is retired at once, timer cleared.
 */
const IDLE_LANES = 8;

/** An entry of a {@link TimeoutQueue}: the queue links it in place (no allocation per entry). */
export interface Expiring {
  /** @internal */ expiresAt: number;
  /** @internal */ prevExpiring: Expiring | null;
  /** @internal */ nextExpiring: Expiring | null;
  /** @internal */ lane: Lane | null;
  /** Called once when the entry expires (it is already removed). */
  expire(): void;
  /**
   * True while the answer that would settle the entry may be among frames already read and not yet handled (its
   * connection handles them over the next turns of the event loop): a due entry then waits, its lane re-checked
   * every {@link CATCH_UP_CHECK} ms, for at most {@link MAX_CATCH_UP} ms.
   */
  busy?(): boolean;
}

/**
 * Longest a due entry waits for its connection to catch up with the frames it read ({@link Expiring.busy}): after
 * a blocked event loop, thousands of answers come in at once and are handled 1,024 a turn; a peer that floods us
 * without end must not hold a timeout off for ever.
 */
export const MAX_CATCH_UP = 1000;

/**
 * How often lanes whose due head waits for its connection to catch up are checked again (ms): the answer settles
 * its entry whenever it is handled; this only bounds how late an entry expires once the catch-up ended.
 */
const CATCH_UP_CHECK = 10;

/** An {@link Expiring} with its queue links in place: extend it and implement `expire()`. */
export abstract class ExpiringEntry implements Expiring {
  /** @internal */ expiresAt = 0;
  /** @internal */ prevExpiring: Expiring | null = null;
  /** @internal */ nextExpiring: Expiring | null = null;
  /** @internal */ lane: Lane | null = null;
  abstract expire(): void;
}

/** Entries that share one duration: insertion order is expiry order. */
export interface Lane {
  duration: number;
  head: Expiring | null;
  tail: Expiring | null;
  timer: NodeJS.Timeout | null;
  /** The timer is ref'd (see {@link TimeoutQueue.add}). */
  keepAlive: boolean;
  /** When a due entry was first left waiting for its connection to catch up ({@link Expiring.busy}); else null. */
  catchUpSince: number | null;
  /** The lane waits for the queue's shared catch-up check (see {@link TimeoutQueue.rearm}), not for a timer of its own. */
  catchingUp?: boolean;
}

/**
 * Timeouts for many pending requests without a timer each. Entries with the same duration expire in the order
 * they were added, so each duration is a linked list (add and remove are O(1)) with a single timer set for its
 * head. A node typically uses one or two durations, so it holds one or two timers however many requests wait.
 */
export class TimeoutQueue {
  private readonly lanes = new Map<number, Lane>();
  /**
   * Lanes whose due head waits for its connection to catch up, re-checked together by one timer:
   * a timer and an immediate per lane and per millisecond (2,000 lanes: a deadline passed down as each request's
   * timeout) read a flooding peer 7× slower for the whole second they waited.
   */
  private readonly catchingUp = new Set<Lane>();
  private catchUpTimer: NodeJS.Timeout | null = null;

  /**
   * Arms `entry` to expire after `duration` ms (a finite number; any size, see {@link MAX_TIMER_DELAY}). A duration
   * above {@link MAX_COUNTED_DELAY} (about 285,000 years) is never: the entry is not armed (no lane, no timer), as
   * `request$` with a `scheduler` treats it (`longDelays`).
   * @param keepAlive the timer must keep the process up (nothing else does, as for a request over an in-memory
   *   link); the lane's timer then stays ref'd until the lane empties.
   */
  add(entry: Expiring, duration: number, keepAlive = false): void {
    if (duration > MAX_COUNTED_DELAY) return;
    let lane = this.lanes.get(duration);
    if (lane === undefined) {
      lane = { duration, head: null, tail: null, timer: null, keepAlive, catchUpSince: null };
      this.lanes.set(duration, lane);
    } else if (keepAlive && !lane.keepAlive) {
      lane.keepAlive = true;
      lane.timer?.ref();
    }
    entry.expiresAt = performance.now() + duration;
    entry.lane = lane;
    entry.nextExpiring = null;
    entry.prevExpiring = lane.tail;
    if (lane.tail) lane.tail.nextExpiring = entry;
    else lane.head = entry;
    lane.tail = entry;
    if (lane.timer === null && !lane.catchingUp) this.schedule(lane);
  }

  /** Disarms `entry` (no-op when it is not armed). */
  remove(entry: Expiring): void {
    const lane = entry.lane;
    if (lane === null) return;
    if (entry.prevExpiring) entry.prevExpiring.nextExpiring = entry.nextExpiring;
    else lane.head = entry.nextExpiring;
    if (entry.nextExpiring) entry.nextExpiring.prevExpiring = entry.prevExpiring;
    else lane.tail = entry.prevExpiring;
    entry.prevExpiring = entry.nextExpiring = null;
    entry.lane = null;
    // The lane's timer stays armed: it fires, expires what is due and re-arms for the new head (or retires the
    // lane when it is empty). Requests that come and go never touch a timer — but an empty lane no longer keeps
    // the process up (it would, until the last request's timeout, after its answer came).
    if (lane.head === null && lane.keepAlive) {
      lane.keepAlive = false;
      lane.timer?.unref();
    }
    // Many durations (a deadline passed down as `timeout: deadline - performance.now()`, each request its own
    // duration): an empty lane kept armed until its timer fires held a lane and a timer per answered request for
    // its whole timeout — 10,000 requests answered at once with 60 s to go left 10,000 timers armed for a minute. Beyond
    // IDLE_LANES lanes, an empty one is retired now (the one or two durations of the common case are not).
    if (lane.head === null && this.lanes.size > IDLE_LANES) this.retire(lane);
  }

  /** Clears the timer of the empty `lane` and forgets it (unless the table holds another lane of its duration). */
  private retire(lane: Lane): void {
    if (lane.timer !== null) clearTimeout(lane.timer);
    lane.timer = null;
    if (this.lanes.get(lane.duration) === lane) this.lanes.delete(lane.duration);
  }

  /** Disarms every entry without expiring it, and clears every timer. */
  clear(): void {
    if (this.catchUpTimer) clearTimeout(this.catchUpTimer);
    this.catchUpTimer = null;
    this.catchingUp.clear();
    for (const lane of this.lanes.values()) {
      if (lane.timer) clearTimeout(lane.timer);
      while (lane.head) this.remove(lane.head);
    }
    this.lanes.clear();
  }

  private schedule(lane: Lane): void {
    // Unref'd unless an entry asked otherwise: a request over a socket has the socket to keep the process up; one
    // over an in-memory link has none and must still time out. A head due in more than 2^31-1 ms (which
    // setTimeout would take for 1 ms) is reached in steps: fire() re-arms while it is not due.
    const delay = Math.min(Math.max(0, lane.head!.expiresAt - performance.now()) + 1, MAX_TIMER_DELAY);
    lane.timer = setTimeout(() => this.due(lane), delay);
    if (!lane.keepAlive) lane.timer.unref();
  }

  /**
   * The lane's timer fired: expire what is due once this turn's I/O has been read. Node runs due timers before it
   * polls the sockets, so after the event loop was blocked past a deadline (synchronous work, a long GC pause) the
   * answer that arrived meanwhile still sat unread in the socket, and its request failed with `ERR_IPC_TIMEOUT`
   * (the answer then dropped as late). `setImmediate` runs after the poll phase: such an answer settles its entry
   * first. `lane.timer` keeps the fired timer until then, so no entry added meanwhile arms another. Ref'd (it holds
   * the process for this one turn only): an entry that needs the process kept up may join the lane meanwhile.
   */
  private due(lane: Lane): void {
    setImmediate(() => this.fire(lane));
  }

  private fire(lane: Lane): void {
    lane.timer = null;
    const now = performance.now();
    let waiting = false;
    try {
      // The last due entry left waiting (still in the lane): the walk goes on after it. An expire() may remove others
      // (a subscriber that unsubscribes more requests): then it starts again from the head, never from a removed one.
      let kept: Expiring | null = null;
      for (;;) {
        if (kept !== null && kept.lane !== lane) kept = null;
        const entry: Expiring | null = kept === null ? lane.head : kept.nextExpiring;
        if (entry === null || entry.expiresAt > now) break;
        // Its answer may wait among the frames read and not yet handled: left in place (the lane re-arms for it).
        if (entry.busy?.() && now - (lane.catchUpSince ??= now) < MAX_CATCH_UP) {
          waiting = true;
          kept = entry;
          continue;
        }
        this.remove(entry);
        entry.expire();
      }
    } finally {
      if (!waiting) lane.catchUpSince = null;
      // An expire() that throws (say, a user's byte stream whose write throws) must not strand the entries behind
      // it: the lane is re-armed (they expire a millisecond later) before the error goes on.
      if (waiting && lane.timer === null) this.checkLater(lane);
      else this.rearm(lane);
    }
  }

  /** `lane` fires again at the next shared catch-up check (in {@link CATCH_UP_CHECK} ms, after that turn's I/O). */
  private checkLater(lane: Lane): void {
    lane.catchingUp = true;
    this.catchingUp.add(lane);
    if (this.catchUpTimer === null) {
      this.catchUpTimer = setTimeout(() => setImmediate(() => this.checkCatchingUp()), CATCH_UP_CHECK);
      if (![...this.catchingUp].some((l) => l.keepAlive)) this.catchUpTimer.unref();
    } else if (lane.keepAlive) this.catchUpTimer.ref();
  }

  private checkCatchingUp(): void {
    this.catchUpTimer = null;
    const lanes = [...this.catchingUp];
    this.catchingUp.clear();
    for (const lane of lanes) lane.catchingUp = false;
    let failure: unknown = null;
    for (const lane of lanes) {
      try {
        // A lane retired meanwhile (emptied) is only retired again; one with a timer armed since fires on it.
        if (lane.timer === null) this.fire(lane);
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== null) throw failure;
  }

  /** After a firing: arms the lane's timer for its head, or retires the lane when it is empty. */
  private rearm(lane: Lane): void {
    if (lane.head !== null) {
      if (lane.timer === null) this.schedule(lane);
      return;
    }
    // Retired. An expire() that added and removed an entry of this duration armed a timer again: clear it, or it
    // would fire later and retire whichever lane of this duration the table holds by then.
    this.retire(lane);
  }
}
