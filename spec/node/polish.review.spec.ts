// Small findings of the last reviews: each one reproduced here, then fixed.
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Subscription, type SchedulerLike } from 'rxjs';
import { backoffDelay } from '../../src/node/backoff';
import { MAX_COUNTED_DELAY, MAX_TIMER_DELAY, setLongTimeout } from '../../src/node/duration';
import { ExpiringEntry, TimeoutQueue } from '../../src/node/TimeoutQueue';
import { longDelays } from '../../src/rx/request';
import { ErrorCode } from '../../src';
import { closeAll, delay, node, serveTcp, until } from '../helpers/net';

afterEach(closeAll);

/** A TCP server that counts connections and drops each one at once (as a refusal: no handshake, redial). */
async function dropper(): Promise<{ server: Server; port: number; dials: () => number }> {
  let dials = 0;
  const server = createServer((socket) => {
    dials++;
    socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, dials: () => dials };
}

describe('retryTime 0 with unlimited maxRetries', () => {
  it('backoff: the first retry at once, then doubling from 1 ms, still capped by maxRetryTime', () => {
    const upper = (attempt: number, cap = Infinity) => backoffDelay(attempt, 0, cap, () => 1);
    expect([1, 2, 3, 4, 5].map((a) => upper(a))).toEqual([0, 2, 4, 8, 16]);
    expect(upper(20, 50)).toBe(50);
    expect(backoffDelay(1, 200, 10_000, () => 1)).toBe(200);
    expect(backoffDelay(3, 200, 10_000, () => 1)).toBe(800);
  });

  it('a client whose server drops every connection redials a dozen times in 1 s, not hundreds', async () => {
    const { server, port, dials } = await dropper();
    try {
      const client = node('client', { retryTime: 0, maxRetries: Infinity });
      client.connectTo('srv', port, '127.0.0.1').catch(() => undefined);
      await delay(1000);
      expect(dials()).toBeGreaterThanOrEqual(5);
      expect(dials()).toBeLessThanOrEqual(20);
    } finally {
      server.close();
    }
  });

  it('maxRetryTime still caps it', async () => {
    const { server, port, dials } = await dropper();
    try {
      const client = node('client', { retryTime: 0, maxRetryTime: 50, maxRetries: Infinity });
      client.connectTo('srv', port, '127.0.0.1').catch(() => undefined);
      await delay(1000);
      // 0, 1-2, 2-4, 4-8, 8-16, 16-32, then 25-50 ms each: about 25 dials in the second, far from hundreds.
      expect(dials()).toBeGreaterThanOrEqual(15);
      expect(dials()).toBeLessThanOrEqual(50);
    } finally {
      server.close();
    }
  });
});

describe('giving up after a dropped connection', () => {
  it('with maxRetries 0 says no reconnection was attempted (it said "after 1 attempt")', async () => {
    const hub = node('hub');
    const port = await serveTcp(hub);
    const client = node('client', { maxRetries: 0 });
    await client.connectTo('hub', port, '127.0.0.1');
    await hub.close();
    await until(() => client.errors.length > 0);
    expect(client.errors[0]).toMatchObject({
      code: ErrorCode.CONNECT,
      message: expect.stringMatching(/^Lost the connection to "hub" and made no attempt to reconnect \(maxRetries is 0\)/),
    });
  });

  it('with maxRetries 2 counts only the redials', async () => {
    const hub = node('hub');
    const port = await serveTcp(hub);
    const client = node('client', { maxRetries: 2, retryTime: 1 });
    await client.connectTo('hub', port, '127.0.0.1');
    await hub.close();
    await until(() => client.errors.length > 0);
    expect(client.errors[0]).toMatchObject({
      code: ErrorCode.CONNECT,
      message: expect.stringMatching(/^Lost the connection to "hub" and could not reconnect after 2 attempts/),
    });
  });

  it('a first connection that never came up still counts its dials', async () => {
    const { server, port } = await dropper();
    await new Promise((resolve) => server.close(resolve)); // a closed port: refused at once
    const client = node('client', { maxRetries: 0 });
    await expect(client.connectTo('srv', port, '127.0.0.1')).rejects.toMatchObject({
      code: ErrorCode.CONNECT,
      message: expect.stringMatching(/^Could not connect to "srv" after 1 attempt: /),
    });
  });
});

describe('maxPendingRequests refusal', () => {
  it.each([
    [1, '1 request to "hub" already awaits an answer (the maxPendingRequests of "client")'],
    [2, '2 requests to "hub" already await an answer (the maxPendingRequests of "client")'],
  ])('maxPendingRequests %i: "%s"', async (max, text) => {
    const hub = node('hub');
    hub.on('message', () => undefined); // never answers
    const port = await serveTcp(hub);
    const client = node('client', { maxPendingRequests: max });
    await client.connectTo('hub', port, '127.0.0.1');
    for (let i = 0; i < max; i++) client.sendTo('hub', i).catch(() => undefined);
    await expect(client.sendTo('hub', 'one too many')).rejects.toMatchObject({ code: ErrorCode.TOO_MANY_REQUESTS, message: text });
  });
});

describe('pingTo options', () => {
  it('receptive: false is a TypeError (a ping cannot be one-way); true and absent still ping', async () => {
    const hub = node('hub');
    const port = await serveTcp(hub);
    const client = node('client');
    await client.connectTo('hub', port, '127.0.0.1');
    const oneWay = { receptive: false } as { timeout?: number };
    await expect(client.pingTo('hub', oneWay)).rejects.toThrow(
      new TypeError('pingTo(target, options): options.receptive must be true or absent (a ping always awaits its pong: it cannot be one-way), received false'),
    );
    await expect(client.pingTo('hub', { receptive: true } as { timeout?: number })).resolves.toEqual(expect.any(Number));
    await expect(client.pingTo('hub')).resolves.toEqual(expect.any(Number));
  });
});

describe('delays too large to count down: never, on every path', () => {
  /** A scheduler that records what it is asked to schedule and runs nothing. */
  function recorder(): SchedulerLike & { delays: number[] } {
    const delays: number[] = [];
    return { delays, now: () => 0, schedule: (_work: unknown, delay = 0) => (delays.push(delay), new Subscription()) } as never;
  }

  it('longDelays schedules nothing above MAX_COUNTED_DELAY (it stepped every 24.8 days for ever: 1e300 - step === 1e300)', () => {
    expect(1e300 - MAX_TIMER_DELAY).toBe(1e300);
    const scheduler = recorder();
    longDelays(scheduler).schedule(() => undefined, 1e300);
    expect(scheduler.delays).toEqual([]);
    longDelays(scheduler).schedule(() => undefined, MAX_COUNTED_DELAY);
    expect(scheduler.delays).toEqual([MAX_TIMER_DELAY]); // the largest counted delay still counts down
  });

  it('setLongTimeout arms no timer above MAX_COUNTED_DELAY, as for Infinity', () => {
    expect(setLongTimeout(() => undefined, Infinity)).toBeNull();
    expect(setLongTimeout(() => undefined, 1e300)).toBeNull();
    expect(setLongTimeout(() => undefined, 2 ** 53)).toBeNull();
    const counted = setLongTimeout(() => undefined, MAX_COUNTED_DELAY);
    expect(counted).not.toBeNull();
    clearInterval(counted!);
  });

  it("the node's TimeoutQueue arms no lane nor timer above MAX_COUNTED_DELAY (it re-armed every 24.8 days)", () => {
    jest.useFakeTimers();
    try {
      const queue = new TimeoutQueue();
      const entry = new (class extends ExpiringEntry {
        expire = jest.fn();
      })();
      queue.add(entry, 1e300, true);
      expect(jest.getTimerCount()).toBe(0);
      queue.remove(entry); // a no-op
      queue.add(entry, MAX_COUNTED_DELAY);
      expect(jest.getTimerCount()).toBe(1);
      queue.clear();
    } finally {
      jest.useRealTimers();
    }
  });
});
