import { join } from 'node:path';
import { ErrorCode } from '../../src';
import { exitWithin, killChildren, ROOT, spawnNode } from '../helpers/child';
import { closeAll, delay, until } from '../helpers/net';
import { describeNats, startNatsCluster, type NatsCluster } from '../helpers/natsServer';
import { natsNode, serving } from '../helpers/natsNodes';

/** Settles every promise; resolves with, for each, the time it settled and its error code (or 'ok'). */
function settleTimes(promises: Promise<unknown>[]): Promise<Array<{ at: number; code: string }>> {
  return Promise.all(
    promises.map((p) =>
      p.then(
        () => ({ at: performance.now(), code: 'ok' }),
        (error: { code?: string }) => ({ at: performance.now(), code: error.code ?? String(error) }),
      ),
    ),
  );
}

describeNats('the NATS transport when things fail', () => {
  let cluster: NatsCluster;
  beforeEach(async () => (cluster = await startNatsCluster(3)));
  afterEach(async () => {
    await killChildren();
    await closeAll();
    await cluster.stop();
  });

  it("kill -9 of the requester's server: 64 requests in flight reject at once, then it reconnects and asks again", async () => {
    const [a, b, c] = cluster.urls;
    const service = await serving('service', c, { heartbeatInterval: 60_000 });
    service.on('message', (m) => {
      if (m.data !== 'hang') m.reply(`re:${String(m.data)}`);
    });
    // Servers in this order (nats.js shuffles them otherwise): connected to A, failing over to B.
    const api = natsNode('api', [a, b], { heartbeatInterval: 60_000, requestTimeout: 30_000, maxRetries: Infinity, retryTime: 50 }, { noRandomize: true });
    const events: string[] = [];
    api.on('disconnect', () => events.push('disconnect'));
    api.on('connect', () => events.push('connect'));
    await api.connectTo('service');
    expect(await api.sendTo('service', 'first')).toBe('re:first');
    const inFlight = Array.from({ length: 64 }, () => api.sendTo('service', 'hang'));
    const settled = settleTimes(inFlight);
    await delay(50);
    const killed = performance.now();
    await cluster.servers[0].kill();
    const outcomes = await settled;
    expect(outcomes.map((o) => o.code)).toEqual(Array(64).fill(ErrorCode.PEER_DISCONNECTED));
    expect(Math.max(...outcomes.map((o) => o.at - killed))).toBeLessThan(500);
    const started = performance.now();
    let reply: unknown;
    while (reply === undefined && performance.now() - started < 3000) {
      reply = await api.sendTo('service', 'again', { timeout: 500 }).catch(() => undefined);
      if (reply === undefined) await delay(20);
    }
    expect(reply).toBe('re:again');
    expect(events.slice(0, 3)).toEqual(['connect', 'disconnect', 'connect']);
    // The service (heartbeat 60 s) did not wait for its heartbeat: the same node's new link took the stale one over.
    await until(() => Object.keys(service.stats().peers).length === 1, 2000, 'the stale link to be dropped');
    expect(service.get('api')!.instance).toBe(api.instance);
  }, 30_000);

  it('kill -9 of an instance process: its requests reject within 3 heartbeats, the others take the new requests', async () => {
    const fixture = join(ROOT, 'spec', 'fixtures', 'nats-instance.js');
    const options = { NODE_OPTIONS_JSON: JSON.stringify({ heartbeatInterval: 200 }) };
    const children = cluster.urls.map((url) => spawnNode([fixture, 'worker', url], options));
    await Promise.all(children.map((child) => child.waitFor('listening')));
    const api = natsNode('api', cluster.urls[0], { heartbeatInterval: 200, requestTimeout: 30_000 });
    let linked = 0;
    api.on('connect', () => linked++);
    api.on('disconnect', () => linked--);
    await api.connectTo('worker');
    await until(() => linked === 3, 5000, 'links to the 3 instances');
    const victim = children[1];
    const victimId = /listening (\w+)/.exec(victim.output())![1];
    const hanging = Array.from({ length: 30 }, () => api.sendTo('worker', 'hang'));
    const settled = settleTimes(hanging);
    await delay(50);
    const killed = performance.now();
    victim.process.kill('SIGKILL');
    // The hanging requests of the other two instances stay pending: only the victim's link goes.
    await until(() => linked === 2, 5000, 'the victim to be dropped');
    expect(performance.now() - killed).toBeLessThan(3 * 200 + 400);
    const answered = new Set<string>();
    for (let i = 0; i < 60; i++) answered.add(((await api.sendTo('worker', i)) as { instance: string }).instance);
    expect(answered.size).toBe(2);
    expect(answered.has(victimId)).toBe(false);
    await api.close();
    const outcomes = await settled;
    const lost = outcomes.filter((o) => o.code === ErrorCode.PEER_DISCONNECTED);
    expect(lost.length).toBeGreaterThanOrEqual(1);
    for (const o of lost) expect(o.at - killed).toBeLessThan(3 * 200 + 400);
    expect(outcomes.every((o) => o.code === ErrorCode.PEER_DISCONNECTED || o.code === ErrorCode.CLOSED)).toBe(true);
  }, 30_000);

  it('numbered one-way messages across a server kill: each link delivers a gapless run, in order, or ends with an error', async () => {
    const [a, b, c] = cluster.urls;
    const sink = await serving('sink', c, { heartbeatInterval: 500 });
    const runs = new Map<unknown, number[]>();
    sink.on('message', (m) => {
      const run = runs.get(m.socket) ?? [];
      runs.set(m.socket, run);
      run.push(m.data as number);
    });
    const sender = natsNode('sender', [a, b], { heartbeatInterval: 500, maxRetries: Infinity, retryTime: 50 }, { noRandomize: true });
    await sender.connectTo('sink');
    let seq = 0;
    let stop = false;
    const sending = (async () => {
      while (!stop) {
        try {
          await sender.sendTo('sink', seq, { receptive: false });
          seq++;
        } catch {
          await delay(10);
        }
      }
    })();
    await until(() => seq > 2000, 10_000, '2,000 messages sent');
    await cluster.servers[0].kill();
    const resumed = seq;
    await until(() => seq > resumed + 2000, 10_000, '2,000 more messages after the kill');
    stop = true;
    await sending;
    await delay(200);
    expect(runs.size).toBeGreaterThanOrEqual(2);
    // Within a link: no gap, no reordering, no duplicate (a link that lost a message ended instead).
    for (const run of runs.values()) expect(run.filter((value, i) => i > 0 && value !== run[i - 1] + 1)).toEqual([]);
  }, 40_000);
});

describeNats('a process using the NATS transport', () => {
  let cluster: NatsCluster;
  beforeAll(async () => (cluster = await startNatsCluster(1)));
  afterAll(() => cluster.stop());
  afterEach(killChildren);

  it('exits by itself after close()', async () => {
    const script = `
      const { Node } = require('ipc-link-core');
      const { natsTransport } = require('ipc-link-core/nats');
      const servers = ${JSON.stringify(cluster.urls[0])};
      (async () => {
        const worker = new Node('worker', { transport: natsTransport({ servers }) });
        worker.on('message', (m) => m.reply(m.data + 1));
        worker.serve('worker');
        await new Promise((r) => worker.once('listening', r));
        const api = new Node('api', { transport: natsTransport({ servers }) });
        await api.connectTo('worker');
        const reply = await api.sendTo('worker', 41);
        const stream = api.request$('worker', 1).subscribe({ error: () => undefined });
        await Promise.all([api.close(), worker.close()]);
        stream.unsubscribe();
        console.log('closed ' + reply);
      })();`;
    const run = spawnNode(['-e', script]);
    expect(await exitWithin(run, 5000)).toEqual({ code: 0, signal: null });
    expect(run.output()).toContain('closed 42');
  });

  it('examples/nats-fleet.ts runs against NATS_URL', async () => {
    const run = spawnNode(['-r', 'ts-node/register/transpile-only', 'examples/nats-fleet.ts'], { NATS_URL: cluster.urls[0] });
    const { code } = await run.exited;
    expect(run.output()).toMatch(/3 instances answered 30 jobs: \d+ \/ \d+ \/ \d+/);
    expect(code).toBe(0);
  }, 30_000);
});
