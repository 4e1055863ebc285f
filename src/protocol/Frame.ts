/** One decoded (or to-be-encoded) protocol frame. */
export interface Frame {
  /** What the frame is (see `FrameType`). */
  type: number;
  /** Flag bits (see `FrameFlags`). */
  flags: number;
  /** Request id, chosen by the requester, unique among its pending requests on this connection. */
  id: number;
  /** Payload encoding tag (see `Encoding`). */
  encoding: number;
  /** The payload bytes (may be a view into a larger received chunk). */
  payload: Buffer;
}

/** The payload of every frame without a body (PING, PONG, CANCEL, STREAM_COMPLETE, an empty value): one shared empty Buffer. */
export const EMPTY_PAYLOAD: Buffer = Buffer.alloc(0);
