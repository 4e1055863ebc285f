import type { Duplex } from 'node:stream';
import { ClosedError, ConnectError, HandshakeError } from '../errors';
import { backoffDelay } from './backoff';
import type { Connection } from './Connection';
import type { Dialler, DiallerHost, RetryPolicy } from './Dialler';
import { setLongTimeout } from './duration';
import type { NodeSocket } from './NodeSocket';
import type { Discovery, TransportSession } from './NodeTransport';

/** Shortest wait for answers in one search round with no instance found, in ms. */
const SEARCH_ROUND_MS = 250;

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
 * if not). With no member left, the fleet searches with backoff and gives up after `maxRetries` rounds that found
 * nothing, as a Dialler gives up after `maxRetries` failed attempts.
 *
 * `pick()` chooses the member for one request: the least pending, ties taken in turn.
 */
export class Fleet {
  /** Live (or handshaking) members, by instance id. */
  private readonly members = new Map<string, Dialler>();
  /** Instances whose link is being opened. */
  private readonly opening = new Set<string>();
  private discovery: Discovery | null = null;
  private pending: { resolve(socket: NodeSocket): void; reject(error: Error): void } | null = null;
  /** Search rounds without any member, since the last member was ready. */
  private attempts = 0;
  private timer: NodeJS.Timeout | null = null;
  /** A search round is under way (see searchLater). */
  private searching = false;
  private stopped = false;
  /** Where the next tie-break starts. */
  private turn = 0;
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
        this.discovery = this.session.discover(this.name, (instance) => this.found(instance));
      } catch (error) {
        this.giveUp(error as Error);
        return;
      }
      this.searchLater();
    });
  }

  /** The sockets of the members, ready or not (kept with `members`: read on every request, never copied). */
  private memberSockets: readonly NodeSocket[] = [];

  /** The sockets of the members, ready or not. */
  sockets(): readonly NodeSocket[] {
    return this.memberSockets;
  }

  /** `socket` is one of the members'. */
  has(socket: NodeSocket): boolean {
    return this.memberSockets.includes(socket);
  }

  private membersChanged(): void {
    this.memberSockets = [...this.members.values()].map((member) => member.socket);
  }

  /** The member of `connection`, if it is one of ours. */
  memberOf(connection: Connection): Dialler | undefined {
    for (const member of this.members.values()) if (member.socket === connection.owner) return member;
    return undefined;
  }

  /** The member for one request: see {@link leastPending}. */
  pick(): NodeSocket | undefined {
    return leastPending(this.sockets(), this.turn++);
  }

  /** A member finished its handshake. */
  ready(member: Dialler): void {
    member.ready();
    this.attempts = 0;
    const pending = this.pending;
    this.pending = null;
    pending?.resolve(member.socket);
  }

  /** Stops for good: no more search, every member closed (their peers told not to reconnect). */
  async stop(message: string): Promise<void> {
    this.stopped = true;
    this.clearTimer();
    this.discovery?.stop();
    await Promise.all([...this.members.values()].map((member) => member.stop(message)));
    this.giveUp(new ClosedError(message));
  }

  /** Discovery found an instance: link to it unless we have it, or have enough. */
  private found(instance: string): void {
    if (this.stopped || this.members.has(instance) || this.opening.has(instance)) return;
    if (this.members.size + this.opening.size >= this.session.maxInstances) return;
    this.opening.add(instance);
    this.session.open(this.name, instance).then(
      (link) => {
        this.opening.delete(instance);
        if (this.stopped) {
          link.destroy();
          return;
        }
        const member = this.host.member(link, this.memberHost);
        this.members.set(instance, member);
        this.membersChanged();
        // A refusal that is final (a wrong secret) fails a pending connectTo; any other failure only drops the member.
        member.start().catch((error: Error) => {
          if (this.pending && error instanceof HandshakeError && !error.retryable) this.giveUp(error);
        });
      },
      (error: Error) => {
        this.opening.delete(instance);
        if (!this.stopped) this.host.report(error);
        if (this.members.size === 0) this.searchLater();
      },
    );
  }

  /** A member's dialler gave up (its link ended): forget it; with none left, search again. */
  private dropped(member: Dialler): void {
    for (const [instance, candidate] of this.members) if (candidate === member) this.members.delete(instance);
    this.membersChanged();
    if (this.stopped || this.members.size > 0) return;
    this.searchLater();
  }

  /**
   * One search round: asks who serves the service, waits for answers (a backoff delay, at least
   * {@link SEARCH_ROUND_MS}), and if nobody was found, asks again — or gives up after `maxRetries` rounds.
   */
  private searchLater(): void {
    if (this.searching || this.stopped || !this.discovery) return;
    this.searching = true;
    const delay = Math.max(SEARCH_ROUND_MS, backoffDelay(this.attempts + 1, this.policy.retryTime, this.policy.maxRetryTime));
    void this.discovery.refresh().then(() => {
      if (this.stopped) return;
      this.timer = setLongTimeout(() => {
        this.timer = null;
        this.searching = false;
        if (this.stopped || this.members.size > 0) return;
        if (this.opening.size > 0) return this.searchLater();
        this.attempts++;
        if (this.attempts > this.policy.maxRetries) {
          const error = new ConnectError(`No instance of "${this.name}" answered after ${this.attempts} search${this.attempts === 1 ? '' : 'es'}`);
          const unreported = this.giveUp(error);
          if (unreported) this.host.report(unreported);
          return;
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


/**
 * The socket for one request among peers of one name: of the connected ones, the one with the fewest requests
 * awaiting an answer, ties broken in turn from index `turn` (so sequential requests spread evenly); the first
 * socket when none is connected (sending then fails with `ERR_IPC_NOT_CONNECTED`).
 */
export function leastPending(sockets: readonly NodeSocket[], turn: number): NodeSocket | undefined {
  let best: NodeSocket | undefined;
  let fewest = Infinity;
  for (let i = 0; i < sockets.length; i++) {
    const socket = sockets[(turn + i) % sockets.length];
    const connection = socket.connection;
    if (connection?.writable && connection.registry.size < fewest) {
      best = socket;
      fewest = connection.registry.size;
    }
  }
  return best ?? sockets[0];
}
