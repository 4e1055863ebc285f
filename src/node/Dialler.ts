import { ClosedError, ConnectError, ErrorCode, IpcError, PeerDisconnectedError } from '../errors';
import { backoffDelay } from './backoff';
import type { ByteStream } from './ByteStream';
import type { Connection } from './Connection';
import { setLongTimeout } from './duration';
import type { NodeSocket } from './NodeSocket';

/** Where a client connects: `net.connect` arguments (redialled after a loss), or a byte stream used once. */
export type DialTarget = { readonly connectArgs: unknown[] } | { readonly via: ByteStream };

/** How often and how patiently a {@link Dialler} reconnects (the node's options). */
export interface RetryPolicy {
  readonly maxRetries: number;
  readonly retryTime: number;
  readonly maxRetryTime: number;
}

/** What a {@link Dialler} needs from its node. */
export interface DiallerHost {
  /** Opens and starts a connection to the dialler's target. @throws when it cannot even start. */
  open(dialler: Dialler): Connection;
  /** The dialler gave up for good, because of `error`: forget it (its name is free again). */
  forget(dialler: Dialler, error: Error): void;
  /** An `'error'` event. */
  report(error: Error): void;
}

/**
 * The client side of one peer we connect to (`connectTo`, `connectVia`), across its reconnections: the target,
 * the attempts since the last handshake, the backoff timer, the pending `connectTo` — and the one place that
 * decides, when a connection ends, whether to dial again or give up ({@link Dialler.ended}).
 */
export class Dialler {
  /** The live (or handshaking) connection, if any. */
  connection: Connection | null = null;
  /** The resume token the server gave our last connection: shown when we come back, to take that one over. */
  resumeToken: string | undefined;
  /**
   * The peer ended our last connection on purpose saying not to come back (its `disconnectFrom`,
   * `close({ reconnect: false })`): a fleet never links to that instance again. Not set by a refusal over an error
   * the peer found in what it received (see {@link Dialler.ended}).
   */
  toldNotToReturn = false;
  /** Failed attempts since the last successful handshake (after one, the loss of that connection counts as one). */
  private attempts = 0;
  /** A handshake succeeded once: a give-up is about reconnecting, and the first "attempt" was the lost connection. */
  private wasUp = false;
  private timer: NodeJS.Timeout | null = null;
  private pending: { resolve(socket: NodeSocket): void; reject(error: Error): void } | null = null;
  /** `disconnectFrom` or `close` was called: never dial again. */
  private stopped = false;

  constructor(
    /** The public handle of this peer: the same object across reconnections. */
    readonly socket: NodeSocket,
    readonly target: DialTarget,
    private readonly policy: RetryPolicy,
    private readonly host: DiallerHost,
  ) {}

  /** Dials for the first time. Resolves once the peer accepted us; rejects when the dialler gives up first. */
  start(): Promise<NodeSocket> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.dial();
    });
  }

  /** The connection finished its handshake. */
  ready(): void {
    this.attempts = 0;
    this.wasUp = true;
    const pending = this.pending;
    this.pending = null;
    pending?.resolve(this.socket);
  }

  /**
   * The connection ended: give up (the node or we closed it on purpose, a `connectVia` stream, a refusal that is
   * final, `maxRetries` spent) or dial again after a backoff. Returns the error for the node to report once it
   * told its listeners, or null when there is nothing to say.
   * @param closing the node is closing.
   */
  ended(connection: Connection, closing: boolean): Error | null {
    if (this.connection === connection) this.connection = null;
    const { name } = this.socket;
    const error = connection.error;
    if (closing || this.stopped) return this.giveUp(new ClosedError(`The connection to "${name}" was closed on purpose`));
    if (connection.final && !error) {
      // The peer said not to come back. On purpose (its disconnectFrom, a close({ reconnect: false }): a CLOSE
      // ERR_IPC_CLOSED), a fleet never links to that instance again; over an error in what it received (a protocol
      // violation), it links again: over NATS anyone who may publish on the link's subject can cause one, and one
      // forged message cut a client off from that instance for good.
      this.toldNotToReturn = connection.peerCloseCode === ErrorCode.CLOSED;
      return this.giveUp(new PeerDisconnectedError(`"${name}" closed the connection for good`));
    }
    if ('via' in this.target) return this.giveUp(error ?? new PeerDisconnectedError(`The link to "${name}" closed`));
    if (connection.final) return this.giveUp(error!);
    return this.retry(error);
  }

  /**
   * Never dial again; closes the live connection (telling the peer not to reconnect), if any. A pending `connectTo`
   * rejects at once, not once the socket closed (a silent peer in the middle of the handshake takes seconds to).
   */
  stop(message: string): Promise<void> {
    this.stopped = true;
    this.clearTimer();
    const pending = this.pending;
    this.pending = null;
    pending?.reject(new ClosedError(message));
    if (this.connection) return this.connection.close({ code: ErrorCode.CLOSED, message, reconnect: false });
    this.giveUp(new ClosedError(message));
    return Promise.resolve();
  }

  private dial(): void {
    try {
      this.connection = this.host.open(this);
    } catch (error) {
      const unreported = this.giveUp(error as Error);
      if (unreported) this.host.report(unreported);
    }
  }

  /** Schedules the next attempt, or gives up after `maxRetries`. */
  private retry(error: Error | null): Error | null {
    const { name } = this.socket;
    this.attempts++;
    if (this.attempts > this.policy.maxRetries) {
      // A refusal by the peer (name in use, handshake timeout…) says more than "could not connect".
      if (error instanceof IpcError) return this.giveUp(error);
      const message = this.giveUpMessage(name);
      return this.giveUp(new ConnectError(error ? `${message}: ${error.message}` : message, { cause: error ?? undefined }));
    }
    const delay = backoffDelay(this.attempts, this.policy.retryTime, this.policy.maxRetryTime);
    this.timer = setLongTimeout(() => {
      this.timer = null;
      this.dial();
    }, delay);
    // A refusal by the peer (its name taken by another client…) is worth knowing about while we retry; a peer that
    // went away (even mid-frame, or silent for the heartbeat) is only a 'disconnect', as for a peer of our server.
    return error instanceof IpcError && !(error instanceof PeerDisconnectedError) ? error : null;
  }

  /**
   * Why we stop dialling, true to the count: the loss of an established connection is no dial of ours, so with
   * `maxRetries: 0` there was no reconnection attempt at all (it said "after 1 attempt").
   */
  private giveUpMessage(name: string): string {
    const attempts = (n: number) => `${n} attempt${n === 1 ? '' : 's'}`;
    if (!this.wasUp) return `Could not connect to "${name}" after ${attempts(this.attempts)}`;
    const dials = this.attempts - 1;
    return dials === 0
      ? `Lost the connection to "${name}" and made no attempt to reconnect (maxRetries is 0)`
      : `Lost the connection to "${name}" and could not reconnect after ${attempts(dials)}`;
  }

  /**
   * Gives up for good: the node forgets this peer and a pending `connectTo` rejects with `error`; without one,
   * returns `error` for the node to report (null for a close on purpose).
   */
  private giveUp(error: Error): Error | null {
    this.clearTimer();
    this.host.forget(this, error);
    const pending = this.pending;
    this.pending = null;
    if (pending) pending.reject(error);
    return pending || error instanceof ClosedError ? null : error;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
