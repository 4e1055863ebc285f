import { inspect } from 'node:util';
import type { ObservableInput } from 'rxjs';
import { FrameType } from '../protocol/constants';
import { encodeValue, type Codec } from '../protocol/Serializer';
import type { Connection } from './Connection';
import type { NodeSocket } from './NodeSocket';

/** A message received from a peer. */
export class NodeMessage<T = unknown> {
  #connection: Connection;
  #codec: Codec;
  #answered = false;

  /** @internal */
  constructor(
    connection: Connection,
    codec: Codec,
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
    this.#codec = codec;
  }

  /** The name of the peer that sent it. */
  get from(): string {
    return this.socket.name;
  }

  /**
   * Answers the message with `value`; the sender's `sendTo` resolves with it. Returns false, and does nothing,
   * when the message awaits no reply, was already answered, or its connection is gone.
   * @throws CodecError (`ERR_IPC_ENCODE`) when `value` cannot be encoded; the sender then gets that error.
   */
  reply(value: unknown): boolean {
    if (!this.claim()) return false;
    this.#connection.answered(this.id);
    let encoded;
    try {
      encoded = encodeValue(this.#codec, value);
    } catch (error) {
      this.#connection.writeError(this.id, error as Error);
      throw error;
    }
    this.#connection.write(FrameType.REPLY, 0, this.id, encoded.encoding, encoded.payload);
    return true;
  }

  /**
   * Fails the request: the sender's `sendTo` rejects with a `RemoteError` carrying this error's `name`,
   * `message` and `code`. Returns false when nothing awaits an answer (as {@link NodeMessage.reply}).
   */
  error(error: Error): boolean {
    if (!this.claim()) return false;
    this.#connection.answered(this.id);
    this.#connection.writeError(this.id, error);
    return true;
  }

  /**
   * Answers with a stream: every value of `source` goes to the requester's `request$` (a `sendTo` takes the
   * first), then its completion or error (a `RemoteError` there). An `AsyncIterable` is pulled only as fast as
   * the requester consumes (credits); an `Observable` pushes, and may run at most `streamBuffer` values ahead
   * before the stream fails with `ERR_IPC_STREAM_OVERFLOW`. When the requester unsubscribes or the connection
   * is lost, `source` is unsubscribed (its `finalize` runs) or the iterator returned. Returns false, and does
   * nothing, when the message awaits no reply, was already answered, or its connection is gone.
   */
  stream(source: ObservableInput<unknown> | AsyncIterable<unknown>): boolean {
    if (!this.claim()) return false;
    this.#connection.stream(this.id, source);
    return true;
  }

  private claim(): boolean {
    if (!this.receptive || this.#answered) return false;
    this.#answered = true;
    this.#connection.unanswered--;
    return this.#connection.writable;
  }

  /** @internal */
  [inspect.custom](depth: number, options: object): string {
    const { id, from, receptive, data } = this;
    return `NodeMessage ${inspect({ id, from, receptive, data }, { ...options, depth: depth - 1 })}`;
  }
}
