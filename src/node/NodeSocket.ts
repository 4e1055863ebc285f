import { inspect } from 'node:util';
import type { Connection, ConnectionStats } from './Connection';

/** The counters of no connection at all. */
export const NO_TRAFFIC: Readonly<ConnectionStats> = Object.freeze({
  framesIn: 0,
  framesOut: 0,
  bytesIn: 0,
  bytesOut: 0,
  pendingRequests: 0,
  openStreams: 0,
  lastRtt: null,
});

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
  #name: string;
  /** The peer's instance id, as its last connection announced it (see {@link instance}). */
  #instance: string | undefined;
  readonly #link: { readonly connection: Connection | null };

  /**
   * Private: a NodeSocket is only handed out by its node (`connectTo`, `'connection'`…); one made by hand has no
   * node to send through. (marked internal, it would be dropped from the typings, leaving an implicit public `new NodeSocket()`.)
   */
  private constructor(
    private readonly owner: SocketOwner,
    /** `'client'`: we connected to this peer; `'server'`: it connected to our server. */
    readonly role: 'client' | 'server',
    name: string,
    /** Who holds the live connection: the client's Dialler, or the accepted connection. */
    link: { readonly connection: Connection | null },
  ) {
    this.#name = name;
    this.#link = link;
  }

  /** @internal The way the node makes one (the constructor is private). */
  static create(owner: SocketOwner, role: 'client' | 'server', name: string, link: { readonly connection: Connection | null }): NodeSocket {
    return new NodeSocket(owner, role, name, link);
  }

  /** @internal the live connection, if any */
  get connection(): Connection | null {
    return this.#link.connection;
  }

  /** The peer's name (as it announced itself in the handshake). */
  get name(): string {
    return this.#name;
  }

  /** @internal */
  setName(name: string): void {
    this.#name = name;
  }

  /**
   * The peer's instance id, as announced in its handshake (`node.instance` over there): tells apart the
   * instances of one service reached through a transport. Once a connection ended, still the instance it was to (a
   * `'disconnect'` listener or `disconnections$` can tell which instance left); undefined before the first handshake.
   */
  get instance(): string | undefined {
    return this.connection?.peerInstance ?? this.#instance;
  }

  /** @internal A connection of this socket completed its handshake with that instance. */
  setInstance(instance: string | undefined): void {
    this.#instance = instance;
  }

  /** True while the connection is up and usable. */
  get connected(): boolean {
    return this.connection?.writable ?? false;
  }

  /** Counters of the current connection (zeros while disconnected). */
  stats(): ConnectionStats {
    return this.connection?.stats() ?? { ...NO_TRAFFIC };
  }

  /** Shorthand for `node.sendTo(this, data, options)`. */
  send(data: unknown, options: { receptive: false; timeout?: number }): Promise<undefined>;
  send<T = unknown>(data: unknown, options?: { receptive?: boolean; timeout?: number }): Promise<T>;
  send<T = unknown>(data: unknown, options?: { receptive?: boolean; timeout?: number }): Promise<T> {
    return this.owner.sendTo(this, data, options) as Promise<T>;
  }

  /** @internal */
  [inspect.custom](): string {
    return `NodeSocket { name: ${inspect(this.name)}, role: '${this.role}', connected: ${this.connected} }`;
  }
}
