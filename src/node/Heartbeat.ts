import { MAX_COUNTED_DELAY, setLongInterval } from './duration';

/** Heartbeat ticks without a byte from the peer before it is taken for dead. */
export const SILENT_TICKS = 3;
/** Size of a heartbeat PING's payload: its send time (`performance.now()`, float64), which the PONG echoes. */
export const PING_STAMP_SIZE = 8;

/** What a {@link Heartbeat} does to its connection. */
export interface HeartbeatHost {
  /**
   * Send a PING with id 0 carrying `stamp` (its PONG, which echoes the stamp, proves the peer reads; any byte from
   * it proves it lives).
   */
  ping(stamp: Buffer): void;
  /** Nothing arrived for `silenceMs`: the peer is frozen, or the path to it is gone without a FIN. */
  dead(silenceMs: number): void;
}

/**
 * A connection's liveness check (as nats.js' `heartbeats.ts`, rsocket's keep-alive): every `interval` ms it pings
 * the peer and counts the ticks in which nothing at all arrived; after {@link SILENT_TICKS} of them in a row it
 * declares the peer dead (once) and stops — judged once the I/O of that turn is read, so bytes that arrived while our own
 * event loop was blocked count. An `interval` of 0, Infinity or above {@link MAX_COUNTED_DELAY} (never,
 * as every duration of the node) disables it. The timer is unref'd (it
 * never keeps the process up) and takes intervals above 2^31-1 ms (`setLongInterval`).
 */
export class Heartbeat {
  private timer: NodeJS.Timeout | null = null;
  /** The verdict on a peer silent for {@link SILENT_TICKS} ticks, due once this turn's I/O is read. */
  private verdict: NodeJS.Immediate | null = null;
  /** Bytes arrived since the last tick. */
  private heardSinceTick = true;
  /** Ticks in a row without a byte from the peer. */
  private silentTicks = 0;
  private rtt: number | null = null;
  /**
   * Send times of the first and the latest heartbeat PING (NaN before the first): a PONG's stamp outside them is no
   * stamp of ours (a forged or unsolicited PONG: NaN, ±Infinity, a time before any PING — it set lastRtt to Infinity
   * or 1e308, or to anything on a node whose heartbeat is off).
   */
  private firstSent = NaN;
  private lastSent = NaN;

  constructor(
    readonly interval: number,
    private readonly host: HeartbeatHost,
  ) {}

  /** Round trip of the last heartbeat PING, in ms; null before the first PONG. */
  get lastRtt(): number | null {
    return this.rtt;
  }

  /** Starts ticking (nothing when disabled or already started). */
  start(): void {
    const { interval } = this;
    if (this.timer !== null || !(interval > 0) || !(interval <= MAX_COUNTED_DELAY)) return;
    this.timer = setLongInterval(() => this.tick(), interval).unref();
  }

  /** Bytes arrived from the peer: it is alive. */
  heard(): void {
    this.heardSinceTick = true;
  }

  /**
   * A PONG with id 0 arrived: returns the round trip of the heartbeat PING it answers — timed from the send time
   * that PING carried and the PONG echoes, so a PONG slower than `interval`, or one the peer skipped (it answers no
   * PING while 1 MiB waits for us), never gets another PING's time — or null when `payload` is no stamp of ours.
   */
  pong(payload: Uint8Array): number | null {
    if (payload.length !== PING_STAMP_SIZE) return null;
    const sent = Buffer.from(payload.buffer, payload.byteOffset, PING_STAMP_SIZE).readDoubleBE(0);
    if (!(sent >= this.firstSent && sent <= this.lastSent)) return null;
    const rtt = performance.now() - sent;
    if (!(rtt >= 0)) return null;
    this.rtt = rtt;
    return rtt;
  }

  /** Stops ticking; idempotent. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    if (this.verdict !== null) clearImmediate(this.verdict);
    this.timer = null;
    this.verdict = null;
  }

  /** A peer silent for {@link SILENT_TICKS} ticks, now this turn's I/O was read: dead, unless it spoke after all. */
  private judge(): void {
    this.verdict = null;
    if (this.heardSinceTick) {
      this.silentTicks = 0;
      return;
    }
    this.stop();
    this.host.dead(SILENT_TICKS * this.interval);
  }

  private tick(): void {
    if (this.heardSinceTick) {
      this.heardSinceTick = false;
      this.silentTicks = 0;
    } else if (++this.silentTicks >= SILENT_TICKS) {
      // Node runs due timers before it reads the sockets: after our own loop was blocked (synchronous work, a GC
      // pause), what the peer sent meanwhile still sits unread. Judged once this turn's I/O is read (setImmediate).
      this.verdict ??= setImmediate(() => this.judge()).unref();
      return;
    }
    const stamp = Buffer.allocUnsafe(PING_STAMP_SIZE);
    this.lastSent = performance.now();
    if (Number.isNaN(this.firstSent)) this.firstSent = this.lastSent;
    stamp.writeDoubleBE(this.lastSent, 0);
    this.host.ping(stamp);
  }
}
