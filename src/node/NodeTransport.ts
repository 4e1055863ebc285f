import type { Duplex } from 'node:stream';

/**
 * A way for nodes to find each other by name instead of by address (`NodeOptions.transport`), such as the NATS
 * transport of `ipc-link-core/nats`. A transport only carries bytes: every link it opens is a Duplex over which
 * the node runs its usual protocol (handshake, requests, streams, heartbeats), exactly as over a socket.
 *
 * A service may have many instances (nodes serving the same name); a client links to each of them.
 */
export interface NodeTransport {
  /** One node's use of the transport, for the node's whole life (closed by `node.close()`). */
  attach(node: TransportNode): TransportSession;
}

/** What a transport knows of the node using it. */
export interface TransportNode {
  /** The node's name. */
  readonly name: string;
  /** The node's instance id (`node.instance`): tells apart nodes of the same name. */
  readonly instance: string;
  /** Reports what no call can return (a malformed message from the network, a lost connection…). */
  report(error: Error): void;
}

/** A node's session on a transport: see {@link NodeTransport.attach}. */
export interface TransportSession {
  /**
   * Makes the node reachable as one instance of `service`. Resolves, with a description of where, once clients
   * can reach it; every link a client opens comes to `onLink`.
   * @throws when `service` is not a valid name for this transport (synchronously); rejects when the transport is
   *   unreachable.
   */
  serve(service: string, onLink: (link: Duplex) => void): Promise<string>;
  /**
   * Looks for the live instances of `service` as they appear (and, every so often, asks who is there), calling
   * `found` with each one's id (possibly again for an instance already known). `refresh()` asks at once.
   * @throws when `service` is not a valid name for this transport.
   */
  discover(service: string, found: (instance: string) => void): Discovery;
  /** Opens a link to one instance of `service` (an id given to `found`). */
  open(service: string, instance: string): Promise<Duplex>;
  /** The most instances of one service a client links to. */
  readonly maxInstances: number;
  /**
   * Why the transport can never work again, once that is so (say, the connection given to it was closed); null or
   * absent while it may. Searches then stop: a pending `connectTo` rejects with it, whatever `maxRetries`.
   */
  readonly failure?: Error | null;
  /** Stops serving (the node closes): no longer reachable, the links already up stay until the node ends them. */
  stopServing?(): void;
  /** Ends the session: its searches stop, its links are destroyed, what it holds on the transport is released. */
  close(): Promise<void>;
}

/** A running search for the instances of a service: see {@link TransportSession.discover}. */
export interface Discovery {
  /**
   * Asks who serves the service; resolves once the question is out (answers come to `found`), or with why it
   * could not be asked (the transport is unreachable…). Never rejects.
   */
  refresh(): Promise<Error | undefined>;
  stop(): void;
}
