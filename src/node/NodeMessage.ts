import { inspect } from 'node:util';
import type { ObservableInput } from 'rxjs';
import type { Connection } from './Connection';
import type { InboundRequest } from './InboundRequests';
import type { NodeSocket } from './NodeSocket';
import { releaseSource } from './StreamResponder';

/** A message received from a peer. */
export class NodeMessage<T = unknown> {
  #connection: Connection;
  /** Its admission among the requests awaiting our answer (null when it awaits none): what an answer is given to. */
  #request: InboundRequest | null;
  #answered = false;

  /**
   * Private: messages are made by their node (`'message'`, `messages$`); one made by hand could answer nothing.
   * (marked internal, it would be dropped from the typings, leaving an implicit public `new NodeMessage()`.)
   */
  private constructor(
    connection: Connection,
    request: InboundRequest | null,
    /** The socket it came from. */
    readonly socket: NodeSocket,
    /** Request id (per connection; 0 for a message that awaits no reply). */
    readonly id: number,
    /** Whether the sender awaits a reply. */
    readonly receptive: boolean,
    /** The decoded payload. */
    readonly data: T,
  ) {
    this.#connection = connection;
    this.#request = request;
  }

  /** @internal The way the node makes one (the constructor is private). */
  static create<T>(connection: Connection, request: InboundRequest | null, socket: NodeSocket, id: number, receptive: boolean, data: T): NodeMessage<T> {
    return new NodeMessage(connection, request, socket, id, receptive, data);
  }

  /** The name of the peer that sent it. */
  get from(): string {
    return this.socket.name;
  }

  /**
   * Answers the message with `value`; the sender's `sendTo` resolves with it. Returns false, and does nothing,
   * when the message awaits no reply, was already answered, the requester gave up (timeout, unsubscribe), or
   * its connection is gone; also false when more than `maxWriteBuffer` already waits for a requester that does not
   * read (the requester then gets `ERR_IPC_WRITE_BUFFER_FULL` instead, and the node one `'error'` event). A Buffer
   * or Uint8Array of up to 8 KiB is copied (reuse it at once); a larger one is sent without a copy, with no signal
   * when the socket has taken it, so it must not change after `reply` (reply with a fresh Buffer, or a copy of a
   * scratch one).
   * @throws CodecError (`ERR_IPC_ENCODE`) when `value` cannot be encoded, IpcError (`ERR_IPC_FRAME_TOO_LARGE`)
   *   when it exceeds the requester's `maxFrameSize`; the requester then gets that error instead.
   */
  reply(value: unknown): boolean {
    return this.claim() && this.#connection.reply(this.#request!, value);
  }

  /**
   * Fails the request: the sender's `sendTo` rejects with a `RemoteError` carrying this error's `name`,
   * `message` and `code`. Returns false when nothing awaits an answer (as {@link NodeMessage.reply}).
   */
  error(error: Error): boolean {
    return this.claim() && this.#connection.replyError(this.#request!, error);
  }

  /**
   * Answers with a stream: every value of `source` goes to the requester's `request$` (a `sendTo` takes the
   * first), then its completion or error (a `RemoteError` there). An `AsyncIterable` or an iterable (array,
   * generator, Set…) is pulled only as fast as the requester consumes (credits) — but a string, a Buffer or a
   * typed array is one value, refused with a `TypeError` rather than split into characters or bytes (`reply(value)`,
   * or `stream([value])`; `stream(from(value))` streams its elements); an `Observable` pushes, and may
   * run at most `streamBuffer` values ahead before the stream fails with `ERR_IPC_STREAM_OVERFLOW`. When the
   * requester unsubscribes or the connection is lost, `source` is unsubscribed (its `finalize` runs) or the
   * iterator returned, and the request's slot freed at once — an async generator awaiting inside its body runs its
   * `finally` only once that await settles (its `return()` waits for the pending `next()`). A pulled source may reuse a Buffer it yielded once asked for the next value (a large one
   * is sent without a copy, and the next value is pulled once the socket has taken it); a pushed one must not
   * change a value it emitted. Returns false when nothing awaits an answer (as {@link NodeMessage.reply}):
   * `source` is then released as a cancelled stream's would be — an iterator returned (a Readable destroyed, a
   * generator's `finally` run), an Observable never subscribed — so that one handed over too late leaks nothing;
   * but not the source this message streams already (a second `stream(source)` leaves that stream alone).
   * @throws TypeError when `source` is none of those, or a string, Buffer or typed array; the requester then gets
   *   that error.
   */
  stream(source: ObservableInput<unknown> | AsyncIterable<unknown> | Iterable<unknown>): boolean {
    if (this.claim() && this.#connection.stream(this.#request!, source)) return true;
    // Called again with the source it streams already: releasing that one would end its own stream early.
    if (this.#request?.responder?.pulls(source)) return false;
    releaseSource(source);
    return false;
  }

  /** True the first time an answer is attempted for a receptive message. */
  private claim(): boolean {
    if (!this.receptive || this.#answered) return false;
    this.#answered = true;
    return true;
  }

  /** @internal */
  [inspect.custom](depth: number, options: object): string {
    const { id, from, receptive, data } = this;
    return `NodeMessage ${inspect({ id, from, receptive, data }, { ...options, depth: depth - 1 })}`;
  }
}
