import { setLongInterval } from './duration';

/** Heartbeat ticks without a byte from the peer before it is taken for dead. */
export const SILENT_TICKS = 3;
/** Heartbeat PINGs awaiting their PONG that are remembered (to take each PONG's round trip from its own PING). */
const MAX_UNANSWERED = 16;

/** What a {@link Heartbeat} does to its connection. */
export interface HeartbeatHost {
  /** Send a PING with id 0 (its PONG proves the peer reads; any byte from it proves it lives). */
  ping(): void;
  /** Nothing arrived for `silenceMs`: the peer is frozen, or the path to it is gone without a FIN. */
  dead(silenceMs: number): void;
}

/**
 * A connection's liveness check (as nats.js' `heartbeats.ts`, rsocket's keep-alive): every `interval` ms it pings
 * the peer and counts the ticks in which nothing at all arrived; after {@link SILENT_TICKS} of them in a row it
 * declares the peer dead (once) and stops. An `interval` of 0 or Infinity disables it. The timer is unref'd (it
 * never keeps the process up) and takes intervals above 2^31-1 ms (`setLongInterval`).
 */
export class Heartbeat {
  private timer: NodeJS.Timeout | null = null;
  /** Bytes arrived since the last tick. */
  private heardSinceTick = true;
  /** Ticks in a row without a byte from the peer. */
  private silentTicks = 0;
  /**
   * When each unanswered heartbeat PING was sent (`performance.now()`), oldest first: PONGs come back in order, so
   * a PONG answers the oldest. (One stamp, overwritten at each tick, took a PONG slower than `interval` for the
   * answer to the latest PING: a 250 ms round trip at a 100 ms interval read as 50 ms.) At most
   * {@link MAX_UNANSWERED}, the oldest forgotten first (a peer that answers none holds nothing).
   */
  private readonly sentAt: number[] = [];
  private rtt: number | null = null;

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
    if (this.timer !== null || !(interval > 0) || !Number.isFinite(interval)) return;
    this.timer = setLongInterval(() => this.tick(), interval).unref();
  }

  /** Bytes arrived from the peer: it is alive. */
  heard(): void {
    this.heardSinceTick = true;
  }

  /** A PONG with id 0 arrived: returns the round trip of the heartbeat PING it answers, or null when none awaits one. */
  pong(): number | null {
    const sentAt = this.sentAt.shift();
    if (sentAt === undefined) return null;
    this.rtt = performance.now() - sentAt;
    return this.rtt;
  }

  /** Stops ticking; idempotent. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    if (this.heardSinceTick) {
      this.heardSinceTick = false;
      this.silentTicks = 0;
    } else if (++this.silentTicks >= SILENT_TICKS) {
      this.stop();
      this.host.dead(SILENT_TICKS * this.interval);
      return;
    }
    if (this.sentAt.push(performance.now()) > MAX_UNANSWERED) this.sentAt.shift();
    this.host.ping();
  }
}
