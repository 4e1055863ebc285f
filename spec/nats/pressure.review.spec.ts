// The NATS transport under pressure: slow consumers, blocked event loops, small server limits (a review).
import { ErrorCode, type IpcError } from '../../src';
import { closeAll, until } from '../helpers/net';
import { describeNats, startNatsServer, type NatsServer } from '../helpers/natsServer';
import { natsNode, serving, within, expectNoneOfOurs } from '../helpers/natsNodes';

/** Blocks the event loop for `ms` (a sync handler busy for a while). */
function busy(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end);
}

describeNats('the NATS transport under pressure (slow consumers, small server limits)', () => {
  let server: NatsServer;
  // A server that cuts a client off as a slow consumer soon: 256 KiB pending, 200 ms to write to it.
  beforeAll(async () => (server = await startNatsServer({ maxPayload: 64 * 1024, config: 'max_pending: 262144\nwrite_deadline: "200ms"\n' })));
  afterEach(closeAll);

  it('(was broken) an instance cut off as a slow consumer (its event loop blocked): the client\'s pending request rejects with ERR_IPC_PEER_DISCONNECTED once the instance is back (it waited for its timeout: the FIN sent while disconnected was dropped by nats.js)', async () => {
    // nats.js's default reconnectTimeWait (2 s): what it publishes meanwhile is dropped when it reconnects.
    const sink = await serving('sink', server.url, { heartbeatInterval: 0 });
    let got = 0;
    sink.on('message', (m) => {
      if (++got === 1) busy(1000);
      // 'first' is never answered: only the end of the link can settle it (or its 30 s timeout).
      if (m.receptive && m.data !== 'first') m.reply('ok');
    });
    const api = natsNode('api', server.url, { heartbeatInterval: 0, requestTimeout: 30_000, maxRetries: Infinity });
    await api.connectTo('sink');
    let links = 0;
    api.on('connect', () => links++);
    const slowBefore = (await server.varz()).slow_consumers;
    const pending = api.sendTo('sink', 'first').then(
      () => 'resolved',
      (error: IpcError) => error.code,
    );
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (let i = 0; i < 160; i++) await api.sendTo('sink', chunk, { receptive: false }).catch(() => undefined);
    expect(await within(pending, 6000)).toBe(ErrorCode.PEER_DISCONNECTED);
    expect((await server.varz()).slow_consumers).toBeGreaterThan(slowBefore);
    // Both sides recover: the client links again, a new request is answered.
    await until(() => links === 1, 8000, 'a new link');
    expect(await within(api.sendTo('sink', 'again'), 5000)).toBe('ok');
    await within(api.close(), 5000);
    await within(sink.close(), 5000);
    await expectNoneOfOurs(server);
  }, 20_000);
});

describeNats('streams across a slow-consumer cut', () => {
  let server: NatsServer;
  beforeAll(async () => (server = await startNatsServer({ maxPayload: 64 * 1024, config: 'max_pending: 262144\nwrite_deadline: "200ms"\n' })));
  afterEach(closeAll);

  it('a consumer cut off while its event loop is blocked: its stream errors with ERR_IPC_PEER_DISCONNECTED, the producer\'s generator finally runs', async () => {
    const feed = await serving('feed', server.url, { heartbeatInterval: 0 });
    let finallyRan = false;
    let produced = 0;
    feed.on('message', (m) => {
      m.stream(
        (async function* () {
          try {
            for (;;) {
              produced++;
              yield Buffer.alloc(1024 * 1024, 2);
            }
          } finally {
            finallyRan = true;
          }
        })(),
      );
    });
    const api = natsNode('api', server.url, { heartbeatInterval: 0, maxFrameSize: 4 * 1024 * 1024, maxRetries: Infinity }, { reconnectTimeWait: 50 });
    await api.connectTo('feed');
    const slowBefore = (await server.varz()).slow_consumers;
    let values = 0;
    const ended = new Promise<string>((resolve) =>
      api.request$('feed', 'go', { window: 16, timeout: 30_000, idleTimeout: 30_000 }).subscribe({
        next: () => {
          if (++values === 1) busy(1000);
        },
        error: (error: IpcError) => resolve(error.code),
        complete: () => resolve('complete'),
      }),
    );
    expect(await within(ended, 6000)).toBe(ErrorCode.PEER_DISCONNECTED);
    await until(() => finallyRan, 6000, "the generator's finally");
    expect((await server.varz()).slow_consumers).toBeGreaterThan(slowBefore);
    expect(produced).toBeLessThan(40);
  }, 20_000);
});

describeNats('one-way sends to a receiver slower than its sender', () => {
  let server: NatsServer;
  // The server holds at most 16 MiB for a client that does not read (5 s to write to it).
  beforeAll(async () => (server = await startNatsServer({ maxPayload: 64 * 1024, config: 'max_pending: 16777216\nwrite_deadline: "5s"\n' })));
  afterEach(closeAll);

  it('a producer that awaits each one-way send waits for a receiver whose event loop is blocked: no slow-consumer cut, nothing lost (the server stalls the producer, its confirmations slow its writes)', async () => {
    const sink = await serving('sink', server.url, { heartbeatInterval: 0 });
    let got = 0;
    sink.on('message', () => {
      if (++got === 1) busy(1000);
    });
    const api = natsNode('api', server.url, { heartbeatInterval: 0 });
    await api.connectTo('sink');
    let disconnects = 0;
    api.on('disconnect', () => disconnects++);
    const slowBefore = (await server.varz()).slow_consumers;
    const chunk = Buffer.alloc(64 * 1024, 1);
    const count = 480; // 30 MiB
    let failed: unknown;
    for (let i = 0; i < count && failed === undefined; i++) await api.sendTo('sink', chunk, { receptive: false }).catch((error: unknown) => (failed = error));
    await until(() => got === count || disconnects > 0, 8000, 'every message or the end of the link');
    expect({ failed, disconnects, got, slow: (await server.varz()).slow_consumers - slowBefore }).toEqual({ failed: undefined, disconnects: 0, got: count, slow: 0 });
  }, 20_000);
});

describeNats('a nats-server restarted while large messages are split in flight', () => {
  let server: NatsServer;
  beforeAll(async () => (server = await startNatsServer({ maxPayload: 64 * 1024 })));
  afterEach(closeAll);

  /** 2 MiB that say which one they are in every byte (so a mix of two, or a hole, shows). */
  const payload = (i: number) => Buffer.alloc(2 * 1024 * 1024, i + 1);
  const whole = (data: unknown) => Buffer.isBuffer(data) && data.length === 2 * 1024 * 1024 && data.every((b) => b === data[0]);

  it('every large request arrives whole or rejects with ERR_IPC_PEER_DISCONNECTED; both sides link again', async () => {
    const sink = await serving('sink', server.url, { heartbeatInterval: 0, maxFrameSize: 4 * 1024 * 1024 });
    const garbled: unknown[] = [];
    sink.on('message', (m) => {
      if (m.data === 'ping') return m.reply('pong');
      if (!whole(m.data)) garbled.push(m.data);
      m.reply((m.data as Buffer)[0]);
    });
    const api = natsNode('api', server.url, { heartbeatInterval: 0, maxFrameSize: 4 * 1024 * 1024, requestTimeout: 30_000, maxRetries: Infinity }, { reconnectTimeWait: 50 });
    await api.connectTo('sink');
    let links = 0;
    api.on('connect', () => links++);
    let answered = 0;
    const results = Array.from({ length: 8 }, (_, i) =>
      api.sendTo('sink', payload(i)).then(
        (value) => (answered++, value === i + 1 ? 'whole' : `wrong answer ${String(value)}`),
        (error: IpcError) => error.code,
      ),
    );
    // Killed mid-way: some requests were answered, the next is split in flight.
    await until(() => answered >= 2, 8000, 'a few answers');
    await server.restart();
    const outcomes = await within(Promise.all(results), 8000);
    for (const outcome of outcomes) expect(['whole', ErrorCode.PEER_DISCONNECTED]).toContain(outcome);
    expect(outcomes).toContain(ErrorCode.PEER_DISCONNECTED);
    expect(outcomes).toContain('whole');
    expect(garbled).toEqual([]);
    await until(() => links >= 1, 8000, 'a new link');
    expect(await within(api.sendTo('sink', 'ping'), 5000)).toBe('pong');
  }, 20_000);
});
