// Review: time and the event loop as real processes live it. A process whose loop is blocked (synchronous work, a
// long GC pause) wakes up in the timers phase, before the poll phase reads what arrived meanwhile: a timer must not
// declare lost what already sits in the socket. Plus: many distinct timeouts, close() with many timers pending,
// heartbeats across a block longer than the peer's patience.
import { join } from 'node:path';
import { lastValueFrom, Subject, toArray } from 'rxjs';
import { ErrorCode, Node, type NodeMessage, type NodeOptions } from '../../src';
import { Heartbeat, SILENT_TICKS } from '../../src/node/Heartbeat';
import { MAX_CATCH_UP, TimeoutQueue, type Expiring } from '../../src/node/TimeoutQueue';
import { ROOT, exitWithin, killChildren, spawnNode } from '../helpers/child';
import { closeAll, delay, freePort, node, serveTcp, socketPath, until } from '../helpers/net';

afterEach(async () => {
  await closeAll();
  await killChildren();
});

/** Blocks this process's event loop for `ms` (synchronous work, a long GC pause). */
function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* busy */
  }
}

type Via = 'tcp' | 'unix';

async function pair(via: Via, options: NodeOptions = {}): Promise<{ hub: Node & { errors: Error[] }; client: Node & { errors: Error[] } }> {
  const hub = node('hub', { heartbeatInterval: 0, ...options });
  const client = node('client', { heartbeatInterval: 0, ...options });
  if (via === 'tcp') {
    const port = await serveTcp(hub);
    await client.connectTo('hub', port, '127.0.0.1');
  } else {
    const path = socketPath();
    hub.serve('hub', path);
    await new Promise((resolve) => hub.once('listening', resolve));
    await client.connectTo('hub', path);
  }
  return { hub, client };
}

function pending(n: Node): number {
  return n.stats().pendingRequests;
}

describe.each<Via>(['tcp', 'unix'])('an answer that sat in the socket while the loop was blocked past the deadline (%s)', (via) => {
  it('(was broken) sendTo resolves with it (once), not ERR_IPC_TIMEOUT; no slot left on either side', async () => {
    const { hub, client } = await pair(via);
    hub.on('message', (m: NodeMessage) => {
      m.reply('ok');
      // The answer is written (at the end of this tick); then the whole process stalls past the deadline.
      setImmediate(() => block(1000));
    });
    let settled = 0;
    const result = await client.sendTo('hub', 'x', { timeout: 400 }).then(
      (value) => (settled++, value),
      (error: { code?: string }) => (settled++, error.code),
    );
    expect(result).toBe('ok');
    await delay(50);
    expect(settled).toBe(1);
    expect(pending(client)).toBe(0);
    expect(pending(hub)).toBe(0);
    expect([...client.errors, ...hub.errors]).toEqual([]);
  });

  /**
   * Streams 'a', then 'b' 100 ms later — written at the end of that tick (the nextTick queued after it runs after the
   * flush) — then stalls the whole process past the idleTimeout armed at 'a'.
   */
  const streamThenBlock = (m: NodeMessage) => {
    const values = new Subject<string>();
    m.stream(values);
    values.next('a');
    setTimeout(() => setImmediate(() => {
      values.next('b');
      values.complete();
      process.nextTick(() => block(1200));
    }), 100);
  };

  it('(was broken) request$: a stream value that came during the block is delivered, not an idleTimeout', async () => {
    const { hub, client } = await pair(via);
    hub.on('message', streamThenBlock);
    const values = await lastValueFrom(client.request$('hub', 'x', { timeout: 5000, idleTimeout: 400 }).pipe(toArray())).catch((e: { code?: string }) => e.code);
    expect(values).toEqual(['a', 'b']);
    await until(() => pending(client) === 0 && hub.stats().openStreams === 0, 2000, 'slots freed');
  });

  it('(was broken) iterate: the same with its idleTimeout', async () => {
    const { hub, client } = await pair(via);
    hub.on('message', streamThenBlock);
    const values: unknown[] = [];
    const outcome = await (async () => {
      for await (const value of client.iterate('hub', 'x', { timeout: 5000, idleTimeout: 400 })) values.push(value);
      return 'done';
    })().catch((e: { code?: string }) => e.code);
    expect({ outcome, values }).toEqual({ outcome: 'done', values: ['a', 'b'] });
  });

  it('a request whose deadline truly passed with no answer in the socket still times out, once, after the block', async () => {
    const { hub, client } = await pair(via);
    hub.on('message', () => setImmediate(() => block(800)));
    const started = performance.now();
    const code = await client.sendTo('hub', 'x', { timeout: 300 }).then(
      () => 'answered',
      (e: { code?: string }) => e.code,
    );
    expect(code).toBe(ErrorCode.TIMEOUT);
    expect(performance.now() - started).toBeGreaterThanOrEqual(300);
    expect(pending(client)).toBe(0);
  });
});

describe('heartbeats across a blocked loop', () => {
  it('both sides blocked 1.5 s (15 intervals) in one process: neither declares the other dead on waking', async () => {
    const { hub, client } = await pair('tcp', { heartbeatInterval: 100 });
    hub.on('message', (m: NodeMessage) => m.reply('ok'));
    const drops: string[] = [];
    client.on('disconnect', () => drops.push('client'));
    hub.on('socketClose', () => drops.push('hub'));
    await delay(250);
    block(1500);
    await delay(400);
    expect(drops).toEqual([]);
    await expect(client.sendTo('hub', 'x', { timeout: 2000 })).resolves.toBe('ok');
  });

  it('a client blocked longer than its server\'s 3 heartbeat intervals notices the loss on waking and reconnects once (no storm)', async () => {
    const port = await freePort();
    const server = spawnNode([join(ROOT, 'spec', 'fixtures', 'peer.js'), 'server', String(port)], { PEER_OPTIONS: JSON.stringify({ heartbeatInterval: 100 }) });
    await server.waitFor('listening');
    const client = node('client', { heartbeatInterval: 100, maxRetries: 50, retryTime: 50 });
    let connects = 0;
    const drops: string[] = [];
    client.on('connect', () => connects++);
    client.on('disconnect', () => drops.push('disconnect'));
    await client.connectTo('hub', port, '127.0.0.1');
    expect(await client.sendTo('hub', 'a', { timeout: 3000 })).toBe('echo:a');
    block(1500); // the server drops us after ~300–400 ms of silence
    await until(() => connects === 2, 5000, 'reconnected');
    expect(drops).toEqual(['disconnect']);
    expect(await client.sendTo('hub', 'b', { timeout: 3000 })).toBe('echo:b');
    await delay(600);
    expect({ connects, drops: drops.length }).toEqual({ connects: 2, drops: 1 });
  });
});

describe('many answers that sat in the socket while the loop was blocked past their deadline', () => {
  it('(was broken) 3,000 answers written at once (all taken by the kernel: a Unix socket), then a 1 s block: every request resolves, none ERR_IPC_TIMEOUT', async () => {
    const { hub, client } = await pair('unix');
    const count = 3000;
    const waiting: NodeMessage[] = [];
    let taken = false;
    hub.on('message', (m: NodeMessage) => {
      if (waiting.push(m) < count) return;
      for (const w of waiting) w.reply(w.data);
      setImmediate(() => {
        taken = m.socket.connection!.queuedBytes === 0; // every answer is in the kernel, none left to write
        block(1000);
      });
    });
    const calls = Array.from({ length: count }, (_, i) => client.sendTo('hub', i, { timeout: 500 }).then(() => 'ok', (e: { code?: string }) => e.code));
    const codes = await Promise.all(calls);
    const tally: Record<string, number> = {};
    for (const code of codes) tally[String(code)] = (tally[String(code)] ?? 0) + 1;
    expect({ taken, tally }).toEqual({ taken: true, tally: { ok: count } });
    expect(pending(client)).toBe(0);
  });
});

describe('TimeoutQueue (unit, fake timers): a due entry whose connection is catching up', () => {
  afterEach(() => jest.useRealTimers());
  it('waits while busy, expires once no longer busy — and at most MAX_CATCH_UP ms after it first waited (a peer that floods for ever)', () => {
    jest.useFakeTimers();
    const queue = new TimeoutQueue();
    const log: string[] = [];
    let busy = true;
    const entry = (name: string, isBusy: () => boolean): Expiring => ({ expiresAt: 0, prevExpiring: null, nextExpiring: null, lane: null, expire: () => log.push(name), busy: isBusy });
    queue.add(entry('catching-up', () => busy), 100);
    queue.add(entry('other', () => false), 100);
    jest.advanceTimersByTime(110);
    expect(log).toEqual(['other']); // the one behind it is not held up
    busy = false;
    jest.advanceTimersByTime(3);
    expect(log).toEqual(['other', 'catching-up']);
    queue.add(entry('flooded', () => true), 100);
    jest.advanceTimersByTime(102 + MAX_CATCH_UP - 10);
    expect(log).toEqual(['other', 'catching-up']);
    jest.advanceTimersByTime(20);
    expect(log).toEqual(['other', 'catching-up', 'flooded']);
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('TimeoutQueue (unit, fake timers): expiries that change the lane', () => {
  afterEach(() => jest.useRealTimers());
  it('an expire() that removes the next due entry (a subscriber unsubscribing another request) never expires the removed one', () => {
    jest.useFakeTimers();
    const queue = new TimeoutQueue();
    const log: string[] = [];
    const make = (name: string, onExpire: () => void = () => undefined, busy?: () => boolean): Expiring => ({
      expiresAt: 0, prevExpiring: null, nextExpiring: null, lane: null, busy,
      expire: () => (log.push(name), onExpire()),
    });
    const waiting = make('waiting', undefined, () => log.length < 10 && !log.includes('third'));
    const second = make('second');
    const first = make('first', () => queue.remove(second));
    queue.add(waiting, 100);
    queue.add(first, 100);
    queue.add(second, 100);
    queue.add(make('third'), 100);
    jest.advanceTimersByTime(125); // a waiting lane is checked again every CATCH_UP_CHECK (10) ms
    expect(log).toEqual(['first', 'third', 'waiting']);
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('handshake and a blocked loop', () => {
  it.each<Via>(['tcp', 'unix'])('(was broken) %s: the handshake\'s last step (id=4) that sat in the socket while the loop was blocked past handshakeTimeout completes it', async (via) => {
    const hub = node('hub', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0, handshakeTimeout: 300 });
    // The server sends the handshake's last step (id=4, written at the end of this tick), then the process stalls.
    let blocked = false;
    hub.on('connection', () => {
      if (!blocked) setImmediate(() => block(800));
      blocked = true;
    });
    let where: [number, string] | [string];
    if (via === 'tcp') where = [await serveTcp(hub), '127.0.0.1'];
    else {
      where = [socketPath()];
      hub.serve('hub', where[0]);
      await new Promise((resolve) => hub.once('listening', resolve));
    }
    const outcome = await client.connectTo('hub', ...(where as [number, string])).then(
      () => 'connected',
      (e: { code?: string }) => e.code,
    );
    expect({ outcome, blocked, errors: client.errors.map((e) => (e as { code?: string }).code) }).toEqual({ outcome: 'connected', blocked: true, errors: [] });
    hub.on('message', (m: NodeMessage) => m.reply('ok'));
    await expect(client.sendTo('hub', 'x', { timeout: 2000 })).resolves.toBe('ok');
  });
});

describe('a server blocked longer than its client\'s 3 heartbeat intervals', () => {
  it('the client (another process) drops it, reconnects once it answers again — one new connection, no storm, no NAME_IN_USE', async () => {
    const hub = node('hub', { heartbeatInterval: 100 });
    const port = await serveTcp(hub);
    const connections: string[] = [];
    const closes: string[] = [];
    hub.on('connection', (name: string) => connections.push(name));
    hub.on('socketClose', (name: string) => closes.push(name));
    const child = spawnNode([join(ROOT, 'spec', 'fixtures', 'peer.js'), 'responder', String(port), 'worker'], {
      PEER_OPTIONS: JSON.stringify({ heartbeatInterval: 100, maxRetries: 100, retryTime: 50 }),
    });
    await child.waitFor('ready');
    await until(() => connections.length === 1, 5000, 'first connection');
    expect(await hub.sendTo('worker', 'a', { timeout: 3000 })).toBe('worker:a');
    let settled = 0;
    const hung = hub.sendTo('worker', 'hang', { timeout: 20_000 }).then(
      () => (settled++, 'answered'),
      (e: { code?: string }) => (settled++, e.code),
    );
    await delay(50);
    block(1500); // the worker takes us for dead after ~300–400 ms, and dials again (its connect waits in our backlog)
    await until(() => connections.length === 2, 8000, 'reconnection');
    expect(await hung).toBe(ErrorCode.PEER_DISCONNECTED); // at once on waking, not after its 20 s
    expect(await hub.sendTo('worker', 'b', { timeout: 3000 })).toBe('worker:b');
    await delay(500);
    expect({ settled, pending: pending(hub) }).toEqual({ settled: 1, pending: 0 });
    expect({ connections, closes, errors: hub.errors.map((e) => (e as { code?: string }).code ?? e.message) }).toEqual({ connections: ['worker', 'worker'], closes: ['worker'], errors: [] });
  });
});

describe('close({ drain }) and a blocked loop', () => {
  it.each<Via>(['tcp', 'unix'])('%s: an answer that sat in the socket when the drain deadline passed during the block is delivered, not cut by ERR_IPC_CLOSED', async (via) => {
    const { hub, client } = await pair(via);
    let asked!: () => void;
    const seen = new Promise<void>((resolve) => (asked = resolve));
    hub.on('message', (m: NodeMessage) => {
      asked();
      setTimeout(() => {
        m.reply('ok');
        setImmediate(() => block(800)); // the answer is written; then the process stalls past the drain deadline
      }, 50);
    });
    const answer = client.sendTo('hub', 'x', { timeout: 5000 }).then(
      (value) => value,
      (e: { code?: string }) => e.code,
    );
    await seen;
    const closed = client.close({ drain: 300 });
    expect(await answer).toBe('ok');
    await closed;
  });
});

describe('heartbeat: the peer was silent 2 intervals, then talked while our loop was blocked', () => {
  it('(was broken) on waking, the third silent tick does not declare it dead: its bytes sat unread in the socket', async () => {
    const port = await freePort();
    const server = spawnNode([join(ROOT, 'spec', 'fixtures', 'peer.js'), 'server', String(port)], { PEER_OPTIONS: JSON.stringify({ heartbeatInterval: 200 }) });
    await server.waitFor('listening');
    const client = node('client', { heartbeatInterval: 200, maxRetries: 50, retryTime: 50 });
    const drops: unknown[] = [];
    client.on('disconnect', () => drops.push('disconnect'));
    const socket = await client.connectTo('hub', port, '127.0.0.1');
    expect(await client.sendTo('hub', 'a', { timeout: 3000 })).toBe('echo:a');
    const heartbeat = () => (socket.connection as unknown as { heartbeat: { silentTicks: number } }).heartbeat;
    server.process.kill('SIGSTOP');
    // Two silent ticks (one more is death); then the peer resumes — and talks — while our loop is blocked.
    const deadline = performance.now() + 5000;
    while (heartbeat().silentTicks < 2 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1));
    expect(heartbeat().silentTicks).toBe(2);
    server.process.kill('SIGCONT');
    block(800);
    await delay(300);
    expect(drops).toEqual([]);
    expect(await client.sendTo('hub', 'b', { timeout: 3000 })).toBe('echo:b');
  });
});

describe('Heartbeat (unit, fake timers)', () => {
  afterEach(() => jest.useRealTimers());
  it('(was broken) bytes read in the turn of the third silent tick (after it, before its verdict) keep the peer alive', () => {
    jest.useFakeTimers();
    const dead = jest.fn();
    const ping = jest.fn();
    const beat = new Heartbeat(100, { ping, dead });
    beat.start();
    jest.advanceTimersByTime(100 * (SILENT_TICKS + 1)); // the first tick resets; then SILENT_TICKS silent ones
    beat.heard(); // the poll phase of that turn reads the peer's bytes
    jest.advanceTimersByTime(1);
    expect(dead).not.toHaveBeenCalled();
    jest.advanceTimersByTime(100 * (SILENT_TICKS + 1));
    expect(dead).toHaveBeenCalledTimes(1); // still judged when it really is silent
    beat.stop();
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('many requests with distinct timeouts', () => {
  it('2,000 requests with 2,000 different timeouts: each fails at its own deadline — none early, none far late — and nothing is left', async () => {
    const { hub, client } = await pair('tcp');
    hub.on('message', () => undefined); // never answers
    const count = 2000;
    const lateness: number[] = [];
    const early: number[] = [];
    const started = performance.now();
    const calls = Array.from({ length: count }, (_, i) => {
      const timeout = 200 + ((i * 7919) % count) * 0.6; // 200–1400 ms, all distinct, not in send order
      const sent = performance.now();
      return client.sendTo('hub', i, { timeout }).then(
        () => 'answered',
        (e: { code?: string }) => {
          const elapsed = performance.now() - sent;
          if (elapsed < timeout) early.push(elapsed - timeout);
          lateness.push(elapsed - timeout);
          return e.code;
        },
      );
    });
    const codes = await Promise.all(calls);
    expect(new Set(codes)).toEqual(new Set([ErrorCode.TIMEOUT]));
    expect(early).toEqual([]);
    expect(Math.max(...lateness)).toBeLessThan(3000);
    expect(performance.now() - started).toBeLessThan(1400 + 4000);
    expect(pending(client)).toBe(0);
    expect((client as unknown as { timeouts: { lanes: Map<number, unknown> } }).timeouts.lanes.size).toBeLessThanOrEqual(8);
  });
});

describe('close() while many timers are pending', () => {
  it('a process with 1,000 pending sendTo, streams waiting on idleTimeouts, iterators and heartbeats exits by itself after close()', async () => {
    const script = `
      const { Node } = require('ipc-link-core');
      (async () => {
        const hub = new Node('hub', { heartbeatInterval: 50 });
        hub.on('message', (m) => { if (m.data === 'stream') m.stream(require('rxjs').concat(require('rxjs').of(1), require('rxjs').NEVER)); });
        hub.serve('hub', 0, '127.0.0.1');
        await new Promise((r) => hub.once('listening', r));
        const client = new Node('client', { heartbeatInterval: 50 });
        await client.connectTo('hub', hub.server.address().port, '127.0.0.1');
        const codes = new Set();
        const note = (e) => codes.add(e && e.code);
        const all = [];
        for (let i = 0; i < 1000; i++) all.push(client.sendTo('hub', i, { timeout: 60000 + i }).catch(note));
        for (let i = 0; i < 20; i++) client.request$('hub', 'stream', { timeout: 60000, idleTimeout: 90000 + i }).subscribe({ error: note });
        const it = client.iterate('hub', 'stream', { timeout: 60000, idleTimeout: 70000 });
        await it.next();
        all.push(it.next().catch(note));
        await new Promise((r) => setTimeout(r, 200));
        await Promise.all([client.close(), hub.close()]);
        await Promise.all(all);
        console.log('closed ' + [...codes].join(','));
      })();
    `;
    const child = spawnNode(['-e', script]);
    const exit = await exitWithin(child, 8000);
    expect({ exit, output: child.output().trim() }).toEqual({ exit: { code: 0, signal: null }, output: `closed ${ErrorCode.CLOSED}` });
  });
});

