/**
 * The API of ipc-link-core: exactly what README.md documents (spec/surface.spec.ts checks that every value
 * exported here is shown there). Internals the specs need are in `./internal`, never here.
 */
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
export { fromSocket } from './rx/fromSocket';
export { pullEach } from './rx/pullEach';
export { FrameReader } from './rx/FrameReader';
export { PROTOCOL_NAME } from './protocol/control';
export {
  Node,
  type BroadcastOptions,
  type BroadcastOutcome,
  type CloseOptions,
  type IterateOptions,
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
export type { ByteStream } from './node/ByteStream';
export { MAX_NAME_LENGTH } from './node/validate';
export type { ConnectionStats } from './node/Connection';
export type { TlsSettings } from './node/transport';
