import { firstValueFrom, NEVER } from 'rxjs';
import { createLinkPair, ErrorCode, IpcTimeoutError } from '../../src';
import { MAX_TIMER_DELAY, request$, RequestRegistry, setLongInterval, setLongTimeout, TimeoutQueue, withTimeout, type Expiring } from '../../src/internal';
import { testScheduler } from '../helpers/marbles';
import { closeAll, delay, freePort, node, serveTcp } from '../helpers/net';

afterEach(closeAll);

const LONG = 2 ** 31; // one more than Node's timers take: setTimeout(fn, 2 ** 31) fires after 1 ms

/** Settles `promise` into 'pending' if it has not settled after `ms`. */
function stateAfter(promise: Promise<unknown>, ms: number): Promise<string> {
  return Promise.race([
    promise.then(
      () => 'resolved',
      (error: Error) => `rejected: ${error.message}`,
    ),
    delay(ms).then(() => 'pending'),
  ]);
}

describe('timer helpers (fake timers)', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('setLongTimeout fires after a delay above 2^31-1 ms, not before', () => {
    const fired = jest.fn();
    setLongTimeout(fired, LONG + 5);
    jest.advanceTimersByTime(MAX_TIMER_DELAY);
    expect(fired).not.toHaveBeenCalled();
    jest.advanceTimersByTime(LONG + 5 - MAX_TIMER_DELAY - 1);
    expect(fired).not.toHaveBeenCalled();
    jest.advanceTimersByTime(2); // whole-ms chunks: never early, at most 1 ms late per 2^31 ms
    expect(fired).toHaveBeenCalledTimes(1);
    jest.advanceTimersByTime(3 * LONG);
    expect(fired).toHaveBeenCalledTimes(1);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('setLongTimeout(Infinity) arms nothing; clearTimeout stops a long one', () => {
    expect(setLongTimeout(() => undefined, Infinity)).toBeNull();
    const fired = jest.fn();
    const timer = setLongTimeout(fired, 3 * LONG);
    jest.advanceTimersByTime(LONG);
    clearTimeout(timer!);
    jest.advanceTimersByTime(3 * LONG);
    expect(fired).not.toHaveBeenCalled();
  });

  it('setLongInterval ticks every 2^31 ms, not every millisecond', () => {
    const ticks = jest.fn();
    const timer = setLongInterval(ticks, LONG);
    jest.advanceTimersByTime(1000);
    expect(ticks).toHaveBeenCalledTimes(0);
    jest.advanceTimersByTime(2 * LONG - 1000);
    expect(ticks).toHaveBeenCalledTimes(2);
    clearInterval(timer);
  });

  it('TimeoutQueue: an entry due in 2^31 ms arms one timer (no re-arming every millisecond) and expires on time', () => {
    const queue = new TimeoutQueue();
    const expired = jest.fn();
    const entry: Expiring = { expiresAt: 0, prevExpiring: null, nextExpiring: null, lane: null, expire: expired };
    const armed = jest.spyOn(global, 'setTimeout');
    queue.add(entry, LONG);
    jest.advanceTimersByTime(1000);
    expect(armed.mock.calls.length).toBeLessThanOrEqual(1);
    expect(expired).not.toHaveBeenCalled();
    jest.advanceTimersByTime(LONG);
    expect(expired).toHaveBeenCalledTimes(1);
    queue.clear();
  });
});

describe('request$ timeouts above 2^31-1 ms', () => {
  it('a 2^31 ms timeout is still pending after 50 ms (real timers)', async () => {
    const registry = new RequestRegistry();
    let outcome = 'pending';
    const subscription = request$(registry, () => undefined, { timeout: LONG }).subscribe({
      next: () => (outcome = 'answered'),
      error: (error: Error) => (outcome = `failed: ${error.message}`),
    });
    await delay(50);
    expect(outcome).toBe('pending');
    subscription.unsubscribe();
  });

  it('a 2^31 ms idleTimeout does not fire after 50 ms (real timers)', async () => {
    const registry = new RequestRegistry();
    let id = 0;
    const values: unknown[] = [];
    let failed: unknown;
    const subscription = request$(registry, (sent) => (id = sent), { timeout: Infinity, idleTimeout: LONG }).subscribe({
      next: (v) => values.push(v),
      error: (e) => (failed = e),
    });
    registry.get(id)!.next('first');
    await delay(50);
    expect(values).toEqual(['first']);
    expect(failed).toBeUndefined();
    subscription.unsubscribe();
  });

  it('still times out, at exactly the given (virtual) time', () => {
    testScheduler().run(({ expectObservable }) => {
      const long = withTimeout(NEVER, { timeout: 2 * LONG + 3, label: 'Ask' });
      expectObservable(long).toBe(`${2 * LONG + 3}ms #`, undefined, new IpcTimeoutError(`Ask got no answer within ${2 * LONG + 3} ms`));
    });
  });
});

describe('Node durations above 2^31-1 ms, and Infinity', () => {
  it('request$ and sendTo with a 2^31 ms timeout wait (no early ERR_IPC_TIMEOUT)', async () => {
    const [a, b] = createLinkPair();
    const server = node('server');
    const client = node('client');
    server.acceptVia(a);
    await client.connectVia('server', b);
    const viaRx = firstValueFrom(client.request$('server', 'never answered', { timeout: LONG }));
    const viaPromise = client.sendTo('server', 'never answered', { timeout: LONG });
    expect(await stateAfter(Promise.race([viaRx, viaPromise]), 50)).toBe('pending');
    await client.close();
    await expect(viaRx).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await expect(viaPromise).rejects.toMatchObject({ code: ErrorCode.CLOSED });
  });

  it('handshakeTimeout: Infinity connects (no handshake timer at all)', async () => {
    const server = node('server', { handshakeTimeout: Infinity });
    const client = node('client', { handshakeTimeout: Infinity });
    const port = await serveTcp(server);
    await expect(client.connectTo('server', port, '127.0.0.1')).resolves.toMatchObject({ name: 'server' });
  });

  it('heartbeatInterval: 2^31 sends no ping within 100 ms', async () => {
    const server = node('server', { heartbeatInterval: LONG });
    const client = node('client', { heartbeatInterval: LONG });
    const port = await serveTcp(server);
    const accepted = firstValueFrom(server.connections$);
    await client.connectTo('server', port, '127.0.0.1');
    await accepted;
    const before = client.stats().framesOut + server.stats().framesOut;
    await delay(100);
    expect(client.stats().framesOut + server.stats().framesOut).toBe(before);
  });

  it('retryTime/maxRetryTime above 2^31-1 ms: the next attempt waits (it is not made at once)', async () => {
    const port = await freePort();
    const client = node('client', { maxRetries: 1, retryTime: 2 * LONG, maxRetryTime: 2 * LONG });
    const connecting = client.connectTo('server', port, '127.0.0.1');
    expect(await stateAfter(connecting, 100)).toBe('pending');
    await client.close();
    await expect(connecting).rejects.toMatchObject({ code: ErrorCode.CLOSED });
  });

  it('maxRetryTime: Infinity is no cap; retryTime must be finite', () => {
    expect(() => node('a', { maxRetryTime: Infinity })).not.toThrow();
    expect(() => node('b', { retryTime: Infinity })).toThrow(/options\.retryTime must be a number of ms from 0 to .*finite.*received Infinity/);
  });
});
