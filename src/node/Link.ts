import { Duplex } from 'node:stream';
import { asError } from './asError';

/**
 * One end of an in-memory link (see {@link createLinkPair}): a Duplex whose writes arrive at the other end
 * synchronously, in the same call stack. Two nodes linked this way need no socket, no port and no event-loop
 * turn to talk, so their exchanges can be driven by an RxJS `TestScheduler` in virtual time.
 */
export class LinkSocket extends Duplex {
  /** @internal */ peer!: LinkSocket;
  /** The peer's reading threw: nothing more crosses, both ends are being destroyed. */
  private broken = false;

  constructor() {
    super({ allowHalfOpen: false });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.broken && !this.peer.destroyed) {
      try {
        this.peer.push(chunk);
      } catch (error) {
        this.break(error);
      }
    }
    // Always: a throw that unwound past it left this Writable 'writing' for ever, every later write queued.
    callback();
  }

  /**
   * The peer's reading threw into our write — its own `'data'` listener, or a stack exhausted by synchronous
   * exchanges (a `repeat()` of a request answered at once) that left it mid-frame: the link cannot go on in
   * step. Both ends are destroyed with that error, out of this (possibly exhausted) stack, so both nodes see the
   * connection end — instead of a link that looks up and answers nothing.
   */
  private break(error: unknown): void {
    this.broken = true;
    const reason = asError(error);
    process.nextTick(() => {
      this.peer.destroy(reason);
      this.destroy(reason);
    });
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
