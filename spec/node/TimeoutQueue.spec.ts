// The shared timeout queue of Promise requests, in virtual time.
import { TimeoutQueue, type Expiring } from '../../src/node/TimeoutQueue';

function entry(name: string, log: string[]): Expiring {
  return { expiresAt: 0, prevExpiring: null, nextExpiring: null, lane: null, expire: () => log.push(name) };
}

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

describe('TimeoutQueue', () => {
  it('expires each entry after its duration, in order, with one timer per duration', () => {
    const queue = new TimeoutQueue();
    const log: string[] = [];
    queue.add(entry('a', log), 100);
    jest.advanceTimersByTime(40);
    queue.add(entry('b', log), 100);
    queue.add(entry('c', log), 30);
    expect(jest.getTimerCount()).toBe(2);
    // The timer fires at 71 ms; the expiry waits for that turn's I/O (a setImmediate: 1 ms under fake timers).
    jest.advanceTimersByTime(32);
    expect(log).toEqual(['c']);
    jest.advanceTimersByTime(30);
    expect(log).toEqual(['c', 'a']);
    jest.advanceTimersByTime(40);
    expect(log).toEqual(['c', 'a', 'b']);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('an expire() that throws does not strand the entries due after it: they expire on the next timer', () => {
    const queue = new TimeoutQueue();
    const log: string[] = [];
    const throwing = { ...entry('boom', log), expire: () => { throw new Error('boom'); } };
    queue.add(entry('a', log), 100);
    queue.add(throwing, 100);
    queue.add(entry('b', log), 100);
    queue.add(entry('c', log), 100);
    expect(() => jest.advanceTimersByTime(102)).toThrow('boom');
    expect(log).toEqual(['a']);
    jest.advanceTimersByTime(2);
    expect(log).toEqual(['a', 'b', 'c']);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('a removed entry never expires; many come and go without touching a timer', () => {
    const queue = new TimeoutQueue();
    const log: string[] = [];
    const armed = jest.spyOn(global, 'setTimeout');
    const entries = Array.from({ length: 1000 }, (_, i) => entry(`e${i}`, log));
    for (const e of entries) {
      queue.add(e, 50);
      queue.remove(e);
    }
    expect(armed).toHaveBeenCalledTimes(1);
    jest.advanceTimersByTime(1000);
    expect(log).toEqual([]);
    armed.mockRestore();
  });

  it('clear() disarms everything and clears its timers', () => {
    const queue = new TimeoutQueue();
    const log: string[] = [];
    queue.add(entry('a', log), 10);
    queue.add(entry('b', log), 20);
    queue.clear();
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(100);
    expect(log).toEqual([]);
  });

  it('timers are unref’d unless an entry needs the process kept up (an in-memory link)', () => {
    const queue = new TimeoutQueue();
    const timers: NodeJS.Timeout[] = [];
    const real = global.setTimeout;
    const armed = jest.spyOn(global, 'setTimeout').mockImplementation(((fn: () => void, ms: number) => {
      const t = real(fn, ms);
      timers.push(t);
      return t;
    }) as typeof setTimeout);
    queue.add(entry('socket', []), 10);
    expect(timers[0].hasRef()).toBe(false);
    queue.add(entry('link', []), 10, true);
    expect(timers[0].hasRef()).toBe(true);
    queue.clear();
    armed.mockRestore();
  });

  it('an entry whose expire() adds and removes another of its duration leaves no stray timer that could drop a later lane', () => {
    const queue = new TimeoutQueue();
    const log: string[] = [];
    const passing = entry('passing', log);
    queue.add({ ...entry('first', log), expire: () => (log.push('first'), queue.add(passing, 100), queue.remove(passing)) }, 100);
    jest.advanceTimersByTime(102);
    expect(log).toEqual(['first']);
    expect(jest.getTimerCount()).toBe(0);
    // A later entry of that duration gets a lane that clear() still knows of.
    queue.add(entry('later', log), 100);
    jest.advanceTimersByTime(50);
    queue.clear();
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(1000);
    expect(log).toEqual(['first']);
  });
});
