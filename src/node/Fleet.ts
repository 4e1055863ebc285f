import type { Duplex } from 'node:stream';
import { ClosedError, ConnectError, HandshakeError, IpcError } from '../errors';
import { backoffDelay } from './backoff';
import type { Connection } from './Connection';
import type { Dialler, DiallerHost, RetryPolicy } from './Dialler';
import { setLongTimeout } from './duration';
import type { NodeSocket } from './NodeSocket';
import type { Discovery, TransportSession } from './NodeTransport';

/** Most resume tokens a fleet keeps (one per instance it was linked to). */
const MAX_RESUME_TOKENS = 1024;
/** Shortest wait for answers in one search round with no instance found, in ms. */
const SEARCH_ROUND_MS = 250;
/** Most links a fleet sets up at once, opening or handshaking (a flood of fake announcements sets up no more). */
const MAX_OPENING = 16;

/** What a {@link Fleet} needs from its node. */
export interface FleetHost {
  /** A dialler (with a NodeSocket of its own) for one instance's link; `host` is the fleet's. */
  member(link: Duplex, host: DiallerHost): Dialler;
  /** Opens the connection of a member (the node's `DiallerHost#open`). */
  open(dialler: Dialler): Connection;
  /** The fleet gave up for good (or was stopped): forget it. */
  forget(fleet: Fleet): void;
  /** An `'error'` event. */
  report(error: Error): void;
}

/**
 * The client side of a service reached through a transport (`connectTo(name)` with `NodeOptions.transport`): one
 * link — a {@link Dialler} of its own — to every live instance of the service, found by the transport's discovery,
 * up to `maxInstances`. A member whose link ends is dropped (its instance may be gone; discovery brings it back
 * if not); an instance that refuses us for good (a wrong secret) is left alone for a while, and reported.
 *
 * Attempts are counted as a Dialler counts them: every link that failed before its handshake completed, and every
 * search round that found nobody. While no member is ready and nothing is under way, more than `maxRetries`
 * attempts make the fleet give up (`connectTo` rejects with the last failure, or `ERR_IPC_CONNECT`).
 *
 * `pick()` chooses the member for one request: the least pending, ties taken in turn.
 */
export class Fleet {
  /** Members (a link each, ready or handshaking), by instance id. */
  private readonly members = new Map<string, Dialler>();
  /** Members whose handshake completed. */
  private readonly ready = new Set<Dialler>();
  /** Instances whose link is being opened. */
  private readonly opening = new Set<string>();
  /** Instances that refused us for good, and until when they are left alone (ms, performance.now()). */
  private readonly refused = new Map<string, number>();
  /**
   * The resume token each instance gave our last link to it (see `AckBody.resume`), kept once that link ended so
   * that the next one takes it over there; at most {@link MAX_RESUME_TOKENS}, the oldest forgotten first.
   */
  private readonly resumeTokens = new Map<string, string>();
  private discovery: Discovery | null = null;
  private pending: { resolve(socket: NodeSocket): void; reject(error: Error): void } | null = null;
  /** Failed attempts since a member was last ready. */
  private attempts = 0;
  /** The last failure, what `connectTo` rejects with when the fleet gives up. */
  private lastError: Error | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** A search round is under way (see searchLater). */
  private searching = false;
  private stopped = false;
  /** Where the next tie-break starts. */
  private turn = 0;
  /** The sockets of the members, ready or not (kept with `members`: read on every request, never copied). */
  private memberSockets: readonly NodeSocket[] = [];
  private readonly memberHost: DiallerHost;

  constructor(
    /** The service's name (also the name its instances announce). */
    readonly name: string,
    private readonly session: TransportSession,
    private readonly policy: RetryPolicy,
    private readonly host: FleetHost,
  ) {
    this.memberHost = {
      open: (dialler) => this.host.open(dialler),
      forget: (dialler) => this.dropped(dialler),
      report: (error) => this.host.report(error),
    };
  }

  /** Starts the search. Resolves with the first member ready; rejects when the fleet gives up first. */
  start(): Promise<NodeSocket> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      try {
        if (this.session.failure) throw this.session.failure;
        this.discovery = this.session.discover(this.name, (instance) => this.found(instance));
      } catch (error) {
        this.giveUp(error as Error);
        return;
      }
      this.searchLater();
    });
  }

  /** The sockets of the members, ready or not. */
  sockets(): readonly NodeSocket[] {
    return this.memberSockets;
  }

  /** `socket` is one of the members'. */
  has(socket: NodeSocket): boolean {
    return this.memberSockets.includes(socket);
  }

  /** The member of `connection`, if it is one of ours. */
  memberOf(connection: Connection): Dialler | undefined {
    for (const member of this.members.values()) if (member.socket === connection.owner) return member;
    return undefined;
  }

  /** The member for one request: see {@link leastPending}. */
  pick(): NodeSocket | undefined {
    return leastPending(this.memberSockets, this.turn++);
  }

  /** A member finished its handshake. */
  memberReady(member: Dialler): void {
    for (const [instance, candidate] of this.members) {
      if (candidate !== member || member.resumeToken === undefined) continue;
      this.resumeTokens.delete(instance);
      this.resumeTokens.set(instance, member.resumeToken);
      if (this.resumeTokens.size > MAX_RESUME_TOKENS) this.resumeTokens.delete(this.resumeTokens.keys().next().value!);
    }
    member.ready();
    this.ready.add(member);
    this.attempts = 0;
    this.lastError = null;
    const pending = this.pending;
    this.pending = null;
    pending?.resolve(member.socket);
  }

  /** Stops for good: no more search, every member closed (their peers told not to reconnect). */
  async stop(message: string): Promise<void> {
    this.giveUp(new ClosedError(message));
    await Promise.all([...this.members.values()].map((member) => member.stop(message)));
  }

  /**
   * The node closes with a drain: dial nothing more — no search, no new link, members still handshaking closed, a
   * pending connectTo rejected (all of it, as {@link Fleet.stop}, when no member is ready) — while the ready members
   * finish the requests in flight; `stop` ends them afterwards.
   */
  quiesce(message: string): Promise<void> {
    if (this.ready.size === 0) return this.stop(message);
    this.stopped = true;
    this.clearTimer();
    this.discovery?.stop();
    const handshaking = [...this.members.values()].filter((member) => !this.ready.has(member));
    return Promise.all(handshaking.map((member) => member.stop(message))).then(() => undefined);
  }

  /** Discovery found an instance: link to it unless we have it, have enough, or it refused us lately. */
  private found(instance: string): void {
    if (this.stopped || this.members.has(instance) || this.opening.has(instance)) return;
    if ((this.refused.get(instance) ?? 0) > performance.now()) return;
    const handshaking = this.members.size - this.ready.size;
    if (this.members.size + this.opening.size >= this.session.maxInstances || this.opening.size + handshaking >= MAX_OPENING) return;
    this.refused.delete(instance);
    this.opening.add(instance);
    this.session.open(this.name, instance).then(
      (link) => {
        this.opening.delete(instance);
        if (this.stopped) {
          link.destroy();
          return;
        }
        const member = this.host.member(link, this.memberHost);
        member.resumeToken = this.resumeTokens.get(instance);
        this.members.set(instance, member);
        this.membersChanged();
        // Rejects when the link ends before its handshake completed (the member is dropped: see `dropped`).
        member.start().catch((error: Error) => {
          if (error instanceof HandshakeError && !error.retryable) this.refuse(instance);
          this.failed(error);
        });
      },
      (error: Error) => {
        this.opening.delete(instance);
        this.failed(error);
      },
    );
  }

  /**
   * `instance` refused us for good: left alone for `maxRetryTime`. The refusals that expired are dropped now: an
   * entry was deleted only when its instance was found again, so every refusing instance that never came back
   * (a deploy with the wrong secret crash-looping, a new instance id each time) stayed for the fleet's whole life.
   */
  private refuse(instance: string): void {
    const now = performance.now();
    for (const [id, until] of this.refused) if (until <= now) this.refused.delete(id);
    this.refused.set(instance, now + this.policy.maxRetryTime);
  }

  /** A link failed before its handshake completed: one attempt more; reported once (unless we stopped). */
  private failed(error: Error): void {
    if (this.stopped) return;
    this.lastError = error;
    this.attempts++;
    // The attempt that spends the retries is told once, as a Dialler tells it: by the rejection of a pending
    // connectTo, else by the give-up's own 'error' (it was reported here first, then again, or beside the rejection).
    if (!this.giveUpIfSpent()) this.host.report(error);
  }

  /** A member's dialler gave up (its link ended): forget it; search again when none is ready. */
  private dropped(member: Dialler): void {
    for (const [instance, candidate] of this.members) {
      if (candidate !== member) continue;
      this.members.delete(instance);
      // It told us not to come back (disconnectFrom, close({ reconnect: false })): never linked again, as a TCP
      // client is not (the search goes on for the service's other instances). One that ended the link over a
      // protocol violation is found and linked again: the bytes may have been forged by another NATS client.
      if (member.toldNotToReturn) this.refused.set(instance, Infinity);
    }
    this.ready.delete(member);
    this.membersChanged();
    if (!this.stopped && this.ready.size === 0) this.searchLater();
  }

  /** Gives up when `maxRetries` attempts are spent while no member is ready and nothing is under way. */
  private giveUpIfSpent(): boolean {
    if (this.stopped || this.attempts <= this.policy.maxRetries) return false;
    if (this.ready.size > 0 || this.opening.size > 0 || this.members.size > 0) return false;
    const last = this.lastError;
    const searches = `${this.attempts} attempt${this.attempts === 1 ? '' : 's'}`;
    // A refusal by an instance (a wrong secret, a handshake timeout…) says more than "could not connect".
    const error =
      last instanceof IpcError
        ? last
        : new ConnectError(`No instance of "${this.name}" could be reached after ${searches}${last ? `: ${last.message}` : ''}`, { cause: last ?? undefined });
    const unreported = this.giveUp(error);
    if (unreported) this.host.report(unreported);
    return true;
  }

  private membersChanged(): void {
    this.memberSockets = [...this.members.values()].map((member) => member.socket);
  }

  /**
   * One search round: asks who serves the service and waits for answers (a backoff delay, at least
   * {@link SEARCH_ROUND_MS}); a round that found nobody is an attempt. Rounds go on until a member is ready.
   */
  private searchLater(): void {
    if (this.searching || this.stopped || !this.discovery) return;
    this.searching = true;
    const delay = Math.max(SEARCH_ROUND_MS, backoffDelay(this.attempts + 1, this.policy.retryTime, this.policy.maxRetryTime));
    void this.discovery.refresh().then((failure) => {
      if (this.stopped) return;
      if (failure) this.lastError = failure;
      // The transport can never work again: give up now (it reported why; a pending connectTo rejects with it).
      const final = this.session.failure;
      if (final) return void this.giveUp(final);
      this.timer = setLongTimeout(() => {
        this.timer = null;
        this.searching = false;
        if (this.stopped || this.ready.size > 0) return;
        if (this.members.size === 0 && this.opening.size === 0) {
          this.attempts++;
          if (this.giveUpIfSpent()) return;
        }
        this.searchLater();
      }, delay);
    });
  }

  /** Gives up for good: forgotten by the node; a pending connectTo rejects, else the error is returned to report. */
  private giveUp(error: Error): Error | null {
    this.stopped = true;
    this.clearTimer();
    this.discovery?.stop();
    this.host.forget(this);
    // Members still handshaking would be orphans: close them.
    for (const member of this.members.values()) void member.stop(error.message);
    const pending = this.pending;
    this.pending = null;
    pending?.reject(error);
    return pending || error instanceof ClosedError ? null : error;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Added to the load of a peer that drains: more than any number of pending requests. */
const DRAINING = 2 ** 32;

/**
 * The socket for one request among peers of one name: of the connected ones, the one with the fewest requests
 * awaiting an answer, ties broken in turn from index `turn` (so sequential requests spread evenly), a peer that
 * drains (GOAWAY) only when all do; the first socket when none is connected (sending then fails with
 * `ERR_IPC_NOT_CONNECTED`).
 */
export function leastPending(sockets: readonly NodeSocket[], turn: number): NodeSocket | undefined {
  let best: NodeSocket | undefined;
  let fewest = Infinity;
  for (let i = 0; i < sockets.length; i++) {
    const socket = sockets[(turn + i) % sockets.length];
    const connection = socket.connection;
    if (!connection?.writable) continue;
    const load = connection.goingAway ? DRAINING + connection.registry.size : connection.registry.size;
    if (load < fewest) {
      best = socket;
      fewest = load;
    }
  }
  return best ?? sockets[0];
}
