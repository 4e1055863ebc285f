export * from './errors';
export {
  DEFAULT_MAX_DECODED_SIZE,
  DEFAULT_MAX_FRAME_SIZE,
  Encoding,
  FrameFlags,
  FrameType,
  HANDSHAKE_MAX_FRAME_SIZE,
  MIN_FRAME_SIZE,
  HEADER_SIZE,
  MAGIC,
  PROTOCOL_VERSION,
} from './protocol/constants';
export type { Frame } from './protocol/Frame';
export { FrameDecoder, type FrameDecoderOptions } from './protocol/FrameDecoder';
export { encodeFrame, encodeHeader, type OutgoingFrame } from './protocol/FrameEncoder';
export { Serializer, defaultCodec, type Codec, type EncodedPayload } from './protocol/Serializer';
export { decodeFrames } from './rx/decodeFrames';
export { request$, withTimeout, type RequestOptions } from './rx/request';
export { fromSocket } from './rx/fromSocket';
export { FrameReader } from './rx/FrameReader';
export { Handshake, PROTOCOL_NAME, type HandshakeResult } from './protocol/handshake';
export { RequestRegistry } from './rx/RequestRegistry';
export {
  Node,
  type BroadcastOptions,
  type BroadcastOutcome,
  type CloseOptions,
  type NodeEvents,
  type NodeOptions,
  type NodeStats,
  type RequestStreamOptions,
  type SendOptions,
  type Target,
} from './node/Node';
export { NodeMessage } from './node/NodeMessage';
export { NodeSocket } from './node/NodeSocket';
export { createLinkPair, LinkSocket } from './node/Link';
export { MAX_NAME_LENGTH } from './node/validate';
export type { ConnectionStats } from './node/Connection';
