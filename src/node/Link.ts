import { Duplex } from 'node:stream';

/**
 * One end of an in-memory link (see {@link createLinkPair}): a Duplex whose writes arrive at the other end
 * synchronously, in the same call stack. Two nodes linked this way need no socket, no port and no event-loop
 * turn to talk, so their exchanges can be driven by an RxJS `TestScheduler` in virtual time.
 */
export class LinkSocket extends Duplex {
  /** @internal */ peer!: LinkSocket;

  constructor() {
    super({ allowHalfOpen: false });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.peer.readableEnded) this.peer.push(null);
    callback();
  }

  override _read(): void {}

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.peer.destroyed && !this.peer.readableEnded) this.peer.push(null);
    callback(error);
  }

  /** Mirrors `net.Socket#setNoDelay` (nothing to do in memory). */
  setNoDelay(): this {
    return this;
  }
}

/**
 * Two connected in-memory sockets. Hand one to `serverNode.acceptVia(a)` and the other to
 * `clientNode.connectVia(name, b)`: the two nodes then talk exactly as over TCP (handshake, requests,
 * streams, cancellation), synchronously.
 *
 * @example
 * const [a, b] = createLinkPair();
 * server.acceptVia(a);
 * await client.connectVia('server', b);
 */
export function createLinkPair(): [LinkSocket, LinkSocket] {
  const a = new LinkSocket();
  const b = new LinkSocket();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
