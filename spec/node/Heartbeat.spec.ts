import { MAX_TIMER_DELAY } from '../../src/node/duration';
import { Heartbeat, SILENT_TICKS } from '../../src/node/Heartbeat';

function heartbeat(interval: number) {
  const ping = jest.fn<void, [Buffer]>();
  const dead = jest.fn<void, [number]>();
  return { beat: new Heartbeat(interval, { ping, dead }), ping, dead };
}

describe('Heartbeat', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('pings once every interval while the peer talks', () => {
    const { beat, ping, dead } = heartbeat(100);
    beat.start();
    jest.advanceTimersByTime(99);
    expect(ping).not.toHaveBeenCalled();
    for (let tick = 1; tick <= 10; tick++) {
      beat.heard();
      jest.advanceTimersByTime(100);
      expect(ping).toHaveBeenCalledTimes(tick);
    }
    expect(dead).not.toHaveBeenCalled();
    beat.stop();
  });

  it(`declares the peer dead after ${SILENT_TICKS} silent intervals, not before, and only once`, () => {
    const { beat, ping, dead } = heartbeat(100);
    beat.start();
    jest.advanceTimersByTime(100); // the first tick counts what arrived since start: nothing is owed yet
    jest.advanceTimersByTime(100 * (SILENT_TICKS - 1));
    expect(dead).not.toHaveBeenCalled();
    jest.advanceTimersByTime(101); // judged once that turn's I/O is read (a setImmediate: 1 ms under fake timers)
    expect(dead).toHaveBeenCalledTimes(1);
    expect(dead).toHaveBeenCalledWith(SILENT_TICKS * 100);
    expect(ping).toHaveBeenCalledTimes(SILENT_TICKS);
    jest.advanceTimersByTime(1000);
    expect(dead).toHaveBeenCalledTimes(1);
    expect(ping).toHaveBeenCalledTimes(SILENT_TICKS);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('any byte resets the count of silent intervals', () => {
    const { beat, dead } = heartbeat(100);
    beat.start();
    jest.advanceTimersByTime(100 * SILENT_TICKS); // SILENT_TICKS - 1 silent ticks
    beat.heard();
    jest.advanceTimersByTime(100 * SILENT_TICKS);
    expect(dead).not.toHaveBeenCalled();
    jest.advanceTimersByTime(101);
    expect(dead).toHaveBeenCalledTimes(1);
  });

  it('takes the round trip from the PONG of its PING: the PING carries its send time, the PONG echoes it', () => {
    const { beat, ping } = heartbeat(100);
    expect(beat.lastRtt).toBeNull();
    expect(beat.pong(Buffer.alloc(0))).toBeNull(); // no stamp: an answer to nothing of ours
    beat.start();
    jest.advanceTimersByTime(100);
    const first = ping.mock.calls[0][0];
    jest.advanceTimersByTime(7);
    expect(beat.pong(first)).toBe(7);
    expect(beat.lastRtt).toBe(7);
    // PONGs slower than the interval: each is timed from its own PING, not from the latest one.
    beat.heard();
    jest.advanceTimersByTime(93); // second PING at 200
    beat.heard();
    jest.advanceTimersByTime(100); // third PING at 300
    jest.advanceTimersByTime(50);
    expect(ping).toHaveBeenCalledTimes(3);
    expect(beat.pong(ping.mock.calls[1][0])).toBe(150);
    // The third's PONG never comes (the peer answers no PING while 1 MiB waits for us): later ones are not shifted.
    beat.heard();
    jest.advanceTimersByTime(50); // fourth PING at 400
    jest.advanceTimersByTime(20);
    expect(beat.pong(ping.mock.calls[3][0])).toBe(20);
    // Not a stamp of ours (a wrong size, a time in the future, NaN): ignored, the last round trip stays.
    const future = Buffer.alloc(8);
    future.writeDoubleBE(performance.now() + 1000);
    const nan = Buffer.alloc(8);
    nan.writeDoubleBE(NaN);
    for (const bogus of [Buffer.alloc(4), future, nan]) expect(beat.pong(bogus)).toBeNull();
    expect(beat.lastRtt).toBe(20);
    beat.stop();
  });

  it('stop() clears its timer (idempotent), start() twice makes one timer', () => {
    const { beat, ping } = heartbeat(100);
    beat.start();
    beat.start();
    expect(jest.getTimerCount()).toBe(1);
    beat.stop();
    beat.stop();
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(1000);
    expect(ping).not.toHaveBeenCalled();
  });

  // Above 2^53-1 ms (~285,000 years) it is never, as every duration of the node: no timer at all (it kept an
  // interval that woke every 24.8 days and never ticked).
  it.each([0, Infinity, 2 ** 53, 1e300])('is disabled for an interval of %s', (interval) => {
    const { beat, ping, dead } = heartbeat(interval);
    beat.start();
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(10 * MAX_TIMER_DELAY);
    expect(ping).not.toHaveBeenCalled();
    expect(dead).not.toHaveBeenCalled();
  });

  it('takes intervals above 2^31-1 ms (no 1 ms ticks)', () => {
    const interval = 2 * MAX_TIMER_DELAY + 10;
    const { beat, ping } = heartbeat(interval);
    beat.start();
    jest.advanceTimersByTime(interval - 1);
    expect(ping).not.toHaveBeenCalled();
    jest.advanceTimersByTime(1);
    expect(ping).toHaveBeenCalledTimes(1);
    beat.stop();
  });

  it('never keeps the process up (its timer is unref\'d)', () => {
    jest.useRealTimers();
    const { beat } = heartbeat(100);
    const probe = setInterval(() => undefined, 1e6);
    clearInterval(probe);
    const unref = jest.spyOn(Object.getPrototypeOf(probe) as NodeJS.Timeout, 'unref');
    beat.start();
    expect(unref).toHaveBeenCalled();
    beat.stop();
    unref.mockRestore();
  });
});
