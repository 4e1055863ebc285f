import { inspect } from 'node:util';
import type { Connection, ConnectionStats } from './Connection';

/** What a {@link NodeSocket} needs from its node. */
interface SocketOwner {
  sendTo(target: NodeSocket, data: unknown, options?: { receptive?: boolean; timeout?: number }): Promise<unknown>;
}

/**
 * A peer, as handed out by `'connection'`, `'connect'`, `connections$` and `connectTo`. Pass it (or its name)
 * to `sendTo`.
 *
 * A socket we opened with `connectTo` (role `'client'`) stays the same object across reconnections; a socket
 * of a peer connected to our server (role `'server'`) lives as long as that connection.
 */
export class NodeSocket {
  /** @internal the live connection, if any */
  connection: Connection | null = null;
  /** @internal client role: arguments for `net.connect` */
  connectArgs: unknown[] = [];
  /** @internal client role: the given socket of `connectVia` (used once, never redialled) */
  via: import('node:net').Socket | null = null;
  /** @internal client role: failed attempts since the last successful handshake */
  attempts = 0;
  /** @internal client role: pending reconnection */
  retryTimer: NodeJS.Timeout | null = null;
  /** @internal client role: disconnectFrom/close was called */
  closing = false;
  /** @internal client role: the pending connectTo promise */
  pendingConnect: { resolve(socket: NodeSocket): void; reject(error: Error): void } | null = null;
  #name: string;

  /** @internal */
  constructor(
    private readonly owner: SocketOwner,
    /** `'client'`: we connected to this peer; `'server'`: it connected to our server. */
    readonly role: 'client' | 'server',
    name: string,
  ) {
    this.#name = name;
  }

  /** The peer's name (as it announced itself in the handshake). */
  get name(): string {
    return this.#name;
  }

  /** @internal */
  setName(name: string): void {
    this.#name = name;
  }

  /** True while the connection is up and usable. */
  get connected(): boolean {
    return this.connection?.writable ?? false;
  }

  /** Counters of the current connection (zeros while disconnected). */
  stats(): ConnectionStats {
    return this.connection?.stats() ?? { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, pendingRequests: 0, openStreams: 0, lastRtt: null };
  }

  /** Shorthand for `node.sendTo(this, data, options)`. */
  send<T = unknown>(data: unknown, options?: { receptive?: boolean; timeout?: number }): Promise<T> {
    return this.owner.sendTo(this, data, options) as Promise<T>;
  }

  /** @internal */
  [inspect.custom](): string {
    return `NodeSocket { name: ${inspect(this.name)}, role: '${this.role}', connected: ${this.connected} }`;
  }
}
