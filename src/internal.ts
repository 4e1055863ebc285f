/**
 * Internals that the specs and the benchmarks reach into — not part of the package's API (`src/index.ts` is).
 * Nothing here is exported by `ipc-link-core`; it may change in any release. (nats.js keeps its `internal_mod.ts`
 * apart from `mod.ts` the same way.) Import it as `../../src/internal` from specs, `../dist/internal` from scripts.
 */
export { MAX_TIMER_DELAY } from './limits';
export { decodeValue, encodeValue, encodeWire, TEXT_LIMIT } from './protocol/Serializer';
export { Handshake, HandshakeStep, type HandshakeResult } from './protocol/handshake';
export { jsonFrame } from './protocol/control';
export { RequestRegistry } from './rx/RequestRegistry';
export { request$, withTimeout, type RequestOptions } from './rx/request';
export { setLongInterval, setLongTimeout } from './node/duration';
export { FrameWriter } from './node/FrameWriter';
export { TimeoutQueue, type Expiring } from './node/TimeoutQueue';
