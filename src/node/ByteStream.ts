import type { Duplex } from 'node:stream';

/**
 * What a connection runs over: any connected `stream.Duplex` — a `net.Socket`, a `tls.TLSSocket`, an in-memory
 * `LinkSocket` (`createLinkPair()`), or one of your own. Socket-only methods are used only when present.
 */
export type ByteStream = Duplex & {
  /** `net.Socket#setNoDelay`: called with `true` when present (Nagle off: small frames leave at once). */
  setNoDelay?(noDelay?: boolean): unknown;
};
