import { once } from 'node:events';
import { lastValueFrom, toArray } from 'rxjs';
import { ErrorCode, type Node, type NodeSocket, type RemoteError } from '../../src';
import { closeAll, delay, until } from '../helpers/net';
import { killChildren, spawnNode, type Child } from '../helpers/child';
import { describeNats, startNatsCluster, startNatsServer, type NatsCluster, type NatsServer } from '../helpers/natsServer';
import { natsNode, within, ours, expectNoneOfOurs } from '../helpers/natsNodes';
import { natsTransport } from '../../src/nats';
import { node } from '../helpers/net';

type TestNode = Node & { errors: Error[] };

/** What every instance does: echo after a few ms, stream `{ stream: n }` as 0…n-1 with small pauses; counts each id. */
function work(instance: TestNode, seen: Map<string, number>): void {
  instance.on('message', (m) => {
    const data = m.data as { id?: string; stream?: number; oneWay?: boolean } | string;
    if (typeof data === 'object' && data !== null && data.id !== undefined) seen.set(data.id, (seen.get(data.id) ?? 0) + 1);
    if (typeof data === 'object' && data !== null && data.stream !== undefined) {
      const n = data.stream;
      m.stream(
        (async function* () {
          for (let i = 0; i < n; i++) {
            if (i % 10 === 0) await delay(2);
            yield i;
          }
        })(),
      );
    } else if (m.receptive) setTimeout(() => m.reply({ instance: instance.instance, data }), 3);
  });
}

const lossOf = (error: { code?: string; remoteCode?: string }): string =>
  error.code === ErrorCode.REMOTE ? `remote:${(error as RemoteError).remoteCode}` : (error.code ?? String(error));

interface Report {
  requests: number;
  streams: number;
  oneWay: number;
  ok: number;
  failures: Map<string, number>;
  /** The first few failures: kind, code, message. */
  details: string[];
  slowest: number;
  badStreams: string[];
  answeredBy: Map<string, number>;
}

/**
 * A steady load on `api`'s service `worker`: `inFlight` request loops, `streams` stream loops (request$ and iterate in
 * turn), one one-way loop. `stop()` ends the loops and resolves once every call settled.
 */
const loads = new Set<() => void>();
function load(api: Node, inFlight: number, streams: number, tag: string) {
  let stopped = false;
  loads.add(() => (stopped = true));
  const report: Report = { requests: 0, streams: 0, oneWay: 0, ok: 0, failures: new Map(), details: [], slowest: 0, badStreams: [], answeredBy: new Map() };
  const fail = (error: { code?: string; message?: string }, kind: string) => {
    const code = lossOf(error);
    if (report.details.length < 10) report.details.push(`${kind} ${code} ${error.message}`);
    report.failures.set(code, (report.failures.get(code) ?? 0) + 1);
  };
  let n = 0;
  const requester = async () => {
    while (!stopped) {
      const id = `${tag}${n++}`;
      const started = performance.now();
      report.requests++;
      try {
        const reply = (await api.sendTo('worker', { id }, { timeout: 15_000 })) as { instance: string; data: { id: string } };
        if (reply.data.id !== id) report.badStreams.push(`reply ${reply.data.id} for ${id}`);
        report.answeredBy.set(reply.instance, (report.answeredBy.get(reply.instance) ?? 0) + 1);
        report.ok++;
      } catch (error) {
        fail(error as { code?: string }, 'request');
        await delay(5);
      }
      report.slowest = Math.max(report.slowest, performance.now() - started);
    }
  };
  const streamer = async (k: number) => {
    for (let round = 0; !stopped; round++) {
      report.streams++;
      const size = 200;
      const values: number[] = [];
      try {
        if ((k + round) % 2 === 0) {
          values.push(...(await lastValueFrom(api.request$<number>('worker', { stream: size }, { timeout: 15_000 }).pipe(toArray()), { defaultValue: [] as number[] })));
        } else {
          for await (const v of api.iterate('worker', { stream: size }, { timeout: 15_000, window: 16 })) values.push(v as number);
        }
        if (values.length !== size || values.some((v, i) => v !== i)) report.badStreams.push(`stream of ${values.length}: ${values.slice(0, 5).join(',')}…`);
      } catch (error) {
        if (values.some((v, i) => v !== i)) report.badStreams.push(`failed stream out of order`);
        fail(error as { code?: string }, `stream after ${values.length}`);
        await delay(5);
      }
    }
  };
  const oneWay = async () => {
    while (!stopped) {
      report.oneWay++;
      try {
        await api.sendTo('worker', { id: `${tag}w${n++}`, oneWay: true }, { receptive: false });
      } catch (error) {
        fail(error as { code?: string }, 'one-way');
      }
      await delay(2);
    }
  };
  const loops = [...Array.from({ length: inFlight }, requester), ...Array.from({ length: streams }, (_, k) => streamer(k)), oneWay()];
  return {
    report,
    async stop(): Promise<Report> {
      stopped = true;
      await within(Promise.all(loops), 20_000);
      if (process.env.FLEET_REPORT) console.log(JSON.stringify({ tag, requests: report.requests, ok: report.ok, streams: report.streams, oneWay: report.oneWay, failures: Object.fromEntries(report.failures), slowest: Math.round(report.slowest) }));
      return report;
    },
  };
}

/** connect/disconnect events of `api` per instance, and links seen twice at once. */
function watchLinks(api: Node) {
  const connects = new Map<string, number>();
  const disconnects = new Map<string, number>();
  const live = new Set<string>();
  const duplicates: string[] = [];
  const streamConnects = new Map<string, number>();
  const streamDisconnects = new Map<string, number>();
  api.on('connect', (_name, socket: NodeSocket) => {
    const id = socket.instance!;
    connects.set(id, (connects.get(id) ?? 0) + 1);
    if (live.has(id)) duplicates.push(id);
    live.add(id);
  });
  api.on('disconnect', (_name, socket: NodeSocket) => {
    const id = socket.instance!;
    disconnects.set(id, (disconnects.get(id) ?? 0) + 1);
    live.delete(id);
  });
  api.connections$.subscribe((s) => streamConnects.set(s.instance!, (streamConnects.get(s.instance!) ?? 0) + 1));
  api.disconnections$.subscribe((s) => streamDisconnects.set(s.instance!, (streamDisconnects.get(s.instance!) ?? 0) + 1));
  return { connects, disconnects, live, duplicates, streamConnects, streamDisconnects };
}

/**
 * A nats-server for the tests of one describe block (in `.server` once its beforeAll ran); after each test the
 * loads stop, children and nodes go, and no unhandled rejection may have happened.
 */
function fleetServer(): { server: NatsServer } {
  const started = {} as { server: NatsServer };
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  beforeAll(async () => {
    started.server = await startNatsServer();
    process.on('unhandledRejection', onUnhandled);
  });
  afterAll(() => process.off('unhandledRejection', onUnhandled));
  afterEach(async () => {
    for (const stop of loads) stop();
    loads.clear();
    await killChildren();
    await closeAll();
    expect(unhandled).toEqual([]);
  });
  return started;
}

describeNats('a fleet over NATS as an operator runs it (fleet review)', () => {
  let server: NatsServer;
  const started = fleetServer();
  beforeAll(() => (server = started.server));

  afterEach(() => served.clear());
  const quick = { discoveryInterval: 200 };
  /** Per instance: its 'connection' events, connections$ and disconnections$ values, 'socketClose' events. */
  const served = new Map<TestNode, number[]>();
  const instance = async (seen: Map<string, number>, options = {}): Promise<TestNode> => {
    const n = natsNode('worker', server.url, { heartbeatInterval: 500, ...options }, quick);
    const counts = [0, 0, 0, 0];
    served.set(n, counts);
    n.on('connection', () => counts[0]++);
    n.connections$.subscribe(() => counts[1]++);
    n.disconnections$.subscribe(() => counts[2]++);
    n.on('socketClose', () => counts[3]++);
    work(n, seen);
    n.serve('worker');
    await within(once(n, 'listening'), 5000);
    return n;
  };

  it("(was broken) a 'disconnect' and disconnections$ say which instance left (socket.instance was undefined once the link ended: no per-instance bookkeeping could balance)", async () => {
    const seen = new Map<string, number>();
    const [a, b] = await Promise.all([instance(seen), instance(seen)]);
    const api = natsNode('api', server.url, { heartbeatInterval: 500, maxRetries: Infinity }, quick);
    const links = watchLinks(api);
    const left: Array<string | undefined> = [];
    b.disconnections$.subscribe((socket) => left.push(socket.instance));
    await api.connectTo('worker');
    await until(() => links.live.size === 2, 5000, 'links to the 2 instances');
    await a.close();
    await until(() => links.disconnects.size > 0, 3000, 'the disconnect');
    expect(Object.fromEntries(links.disconnects)).toEqual({ [a.instance]: 1 });
    expect(Object.fromEntries(links.streamDisconnects)).toEqual({ [a.instance]: 1 });
    expect([...links.live]).toEqual([b.instance]);
    await api.close();
    await until(() => left.length > 0, 3000, "the client's link to end at the instance");
    expect(left).toEqual([api.instance]);
  });

  it('a rolling restart under load (3 instances replaced one by one with close({ drain })): every call settles, nothing lost to a drain, events balanced, nothing left', async () => {
    const seen = new Map<string, number>();
    let fleet = await Promise.all([0, 1, 2].map(() => instance(seen)));
    const api = natsNode('api', server.url, { heartbeatInterval: 500, maxRetries: Infinity }, quick);
    const links = watchLinks(api);
    await api.connectTo('worker');
    await until(() => links.live.size === 3, 5000, 'links to the 3 instances');
    const running = load(api, 200, 4, 'r');
    await delay(300);
    for (let i = 0; i < 3; i++) {
      const fresh = await instance(seen);
      const t0 = performance.now();
      await until(() => links.live.has(fresh.instance), 5000, 'the new instance to be linked');
      const answered = running.report.answeredBy.get(fresh.instance) ?? 0;
      await until(() => (running.report.answeredBy.get(fresh.instance) ?? 0) > answered, 3000, 'the new instance to take requests');
      expect(performance.now() - t0).toBeLessThan(3000);
      const old = fleet[0];
      await within(old.close({ drain: 5000 }), 8000);
      fleet = [...fleet.slice(1), fresh];
    }
    await delay(300);
    const report = await running.stop();
    expect(report.badStreams).toEqual([]);
    // A drain loses nothing handled: in flight finishes, new ones go to the others; those that crossed the GOAWAY
    // are refused unhandled (README: remoteCode ERR_IPC_CLOSED, safe to send again).
    expect(report.details.filter((detail) => !detail.includes('remote:ERR_IPC_CLOSED'))).toEqual([]);
    expect(report.slowest).toBeLessThan(5000);
    expect([...seen.values()].filter((count) => count > 1)).toEqual([]);
    expect(api.stats()).toMatchObject({ pendingRequests: 0, openStreams: 0 });
    expect(links.duplicates).toEqual([]);
    expect(links.live.size).toBe(3);
    await api.close();
    for (const [id, count] of links.connects) {
      expect([id, count, links.disconnects.get(id), links.streamConnects.get(id), links.streamDisconnects.get(id)]).toEqual([id, 1, 1, 1, 1]);
    }
    expect(links.connects.size).toBe(6);
    expect(api.errors).toEqual([]);
    for (const n of fleet) expect(n.errors).toEqual([]);
    await Promise.all(fleet.map((n) => n.close()));
    // Each instance saw its one client link come and go, once.
    expect([...served.values()]).toEqual(Array(6).fill([1, 1, 1, 1]));
    await expectNoneOfOurs(server);
  }, 40_000);
});

/**
 * An instance of `worker` in a child process (the built package, as a user runs it): echoes as `work` does, streams
 * `{ stream: n }`; the one-way message 'block' blocks its event loop for 2 s, 'exit' makes it close({ drain }) and exit.
 */
function childInstance(url: string): Child {
  const script = `
    const { Node } = require('ipc-link-core');
    const { natsTransport } = require('ipc-link-core/nats');
    const node = new Node('worker', { heartbeatInterval: 300, transport: natsTransport({ servers: ${JSON.stringify(url)}, discoveryInterval: 200 }) });
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    node.on('message', (m) => {
      const data = m.data;
      if (data === 'block') { const until = Date.now() + 2000; while (Date.now() < until); console.log('unblocked'); return; }
      if (data === 'exit') { node.close({ drain: 3000 }).then(() => console.log('closed')); return; }
      if (data && data.stream !== undefined) {
        return m.stream((async function* () { for (let i = 0; i < data.stream; i++) { if (i % 10 === 0) await sleep(2); yield i; } })());
      }
      if (m.receptive) setTimeout(() => m.reply({ instance: node.instance, data }), 3);
    });
    node.on('error', (e) => console.log('error ' + e.code + ' ' + e.message));
    node.on('listening', () => console.log('listening ' + node.instance));
    node.serve('worker');`;
  return spawnNode(['-e', script]);
}

const instanceOf = (child: Child): string => /listening (\w+)/.exec(child.output())![1];

describeNats('a fleet over NATS that scales, crashes and stalls under load (fleet review)', () => {
  let server: NatsServer;
  const started = fleetServer();
  beforeAll(() => (server = started.server));

  it('(was broken) requests that cross the GOAWAY of an idle instance are refused unhandled (ERR_IPC_CLOSED), never lost with ERR_IPC_PEER_DISCONNECTED (its drain ended before they arrived)', async () => {
    const child = childInstance(server.url);
    await child.waitFor('listening');
    const api = natsNode('api', server.url, { heartbeatInterval: 300 }, { discoveryInterval: 200 });
    const member = await api.connectTo('worker');
    expect(await api.sendTo(member, { id: 'first' })).toMatchObject({ data: { id: 'first' } });
    await api.sendTo(member, 'exit', { receptive: false });
    // Written (the node's writer flushes on nextTick, nats.js in a microtask), nothing read yet.
    await new Promise((resolve) => process.nextTick(resolve));
    for (let i = 0; i < 5; i++) await Promise.resolve();
    // The client is slow to read (its event loop busy): the instance drains meanwhile, and the client still sends.
    const busyUntil = Date.now() + 500;
    while (Date.now() < busyUntil);
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        api.sendTo(member, { id: `late${i}` }, { timeout: 10_000 }).then(
          () => 'answered',
          (error: { code?: string; remoteCode?: string }) => lossOf(error),
        ),
      ),
    );
    // Answered or refused unhandled (safe to send again): never "disconnected", which may have been handled.
    expect(outcomes.filter((o) => o !== 'answered' && o !== 'remote:ERR_IPC_CLOSED')).toEqual([]);
    expect(await within(child.exited, 6000)).toEqual({ code: 0, signal: null });
    expect(child.output()).toContain('closed');
    expect(api.stats()).toMatchObject({ pendingRequests: 0 });
  });

  it('a client process closed under load while its fleet changes: every call settles (ERR_IPC_CLOSED at the close), stats back to zero, the process exits by itself, no subscription left', async () => {
    const seen = new Map<string, number>();
    const first = natsNode('worker', server.url, { heartbeatInterval: 300 }, { discoveryInterval: 200 });
    work(first, seen);
    first.serve('worker');
    await within(once(first, 'listening'), 5000);
    const script = `
      const { Node } = require('ipc-link-core');
      const { natsTransport } = require('ipc-link-core/nats');
      const api = new Node('api', { heartbeatInterval: 300, transport: natsTransport({ servers: ${JSON.stringify(server.url)}, discoveryInterval: 200 }) });
      const errors = [];
      api.on('error', (e) => errors.push(e.code));
      const outcomes = {};
      let started = 0, settled = 0, stop = false;
      const count = (key) => { outcomes[key] = (outcomes[key] || 0) + 1; settled++; };
      const call = (p) => { started++; return p.then(() => count('ok'), (e) => count(e.code === 'ERR_IPC_REMOTE' ? 'remote:' + e.remoteCode : e.code)); };
      const requester = async (i) => { while (!stop) await call(api.sendTo('worker', { id: 'p' + i + '-' + started })); };
      const iterator = async () => { while (!stop) await call((async () => { for await (const v of api.iterate('worker', { stream: 500 }, { window: 8 })) void v; })()); };
      api.connectTo('worker').then(async () => {
        console.log('linked');
        const loops = [...Array.from({ length: 100 }, (_, i) => requester(i)), iterator(), iterator()];
        process.stdin.once('data', async () => {
          process.stdin.destroy();
          // Loops end at their next turn (a rejected sendTo in a loop with no await of I/O would starve the close).
          stop = true;
          await api.close();
          await Promise.all(loops);
          console.log(JSON.stringify({ started, settled, outcomes, errors, stats: api.stats() }));
        });
        console.log('loaded');
      });`;
    const client = spawnNode(['-e', script]);
    await client.waitFor('loaded');
    const second = natsNode('worker', server.url, { heartbeatInterval: 300 }, { discoveryInterval: 200 });
    work(second, seen);
    second.serve('worker');
    await within(once(second, 'listening'), 5000);
    await delay(600);
    await within(first.close({ drain: 3000 }), 5000);
    await delay(300);
    client.process.stdin!.write('close\n');
    expect([await within(client.exited, 8000).catch((e: Error) => e.message), client.output()]).toEqual([{ code: 0, signal: null }, client.output()]);
    const result = JSON.parse(client.output().trim().split('\n').pop()!) as { started: number; settled: number; outcomes: Record<string, number>; errors: string[]; stats: { pendingRequests: number; openStreams: number } };
    if (process.env.FLEET_REPORT) console.log(JSON.stringify(result));
    expect(result.settled).toBe(result.started);
    expect(Object.keys(result.outcomes).filter((k) => !['ok', ErrorCode.CLOSED, 'remote:ERR_IPC_CLOSED'].includes(k))).toEqual([]);
    expect(result.outcomes.ok).toBeGreaterThan(100);
    expect(result.errors).toEqual([]);
    expect(result.stats).toMatchObject({ pendingRequests: 0, openStreams: 0 });
    expect([...seen.values()].filter((n) => n > 1)).toEqual([]);
    await second.close();
    await expectNoneOfOurs(server);
  });

  it('scale 1 → 5 → 1 with one instance SIGKILLed and one blocked for 2 s: losses are ERR_IPC_PEER_DISCONNECTED within heartbeats, new instances take requests at once, links balanced', async () => {
    const seen = new Map<string, number>();
    const inProcess = async () => {
      const n = natsNode('worker', server.url, { heartbeatInterval: 300 }, { discoveryInterval: 200 });
      work(n, seen);
      n.serve('worker');
      await within(once(n, 'listening'), 5000);
      return n;
    };
    const first = await inProcess();
    const api = natsNode('api', server.url, { heartbeatInterval: 300, maxRetries: Infinity }, { discoveryInterval: 200 });
    const links = watchLinks(api);
    await api.connectTo('worker');
    const running = load(api, 150, 4, 's');
    await delay(300);
    // Scale up: two processes, two in this one.
    const victim = childInstance(server.url);
    const staller = childInstance(server.url);
    const more = await Promise.all([inProcess(), inProcess()]);
    await Promise.all([victim.waitFor('listening'), staller.waitFor('listening')]);
    const ids = [instanceOf(victim), instanceOf(staller), ...more.map((n) => n.instance)];
    await until(() => ids.every((id) => links.live.has(id)), 5000, 'links to the 4 new instances');
    await until(() => ids.every((id) => (running.report.answeredBy.get(id) ?? 0) > 0), 3000, 'the new instances to take requests');
    expect(links.live.size).toBe(5);
    // A crash.
    victim.process.kill('SIGKILL');
    await until(() => !links.live.has(ids[0]), 3000, 'the killed instance to be dropped');
    // A stall: its link is dropped after its heartbeat, and linked again once it is back.
    const stallerSocket = api.stats() && [...links.live].includes(ids[1]) ? ids[1] : '';
    expect(stallerSocket).toBe(ids[1]);
    const before = links.connects.get(ids[1]);
    const socket = (api as unknown as { dialled: Map<string, { sockets(): NodeSocket[] }> }).dialled.get('worker')!.sockets().find((s) => s.instance === ids[1])!;
    await api.sendTo(socket, 'block', { receptive: false });
    await until(() => !links.live.has(ids[1]), 3000, 'the stalled instance to be dropped');
    await staller.waitFor('unblocked', 5000);
    await until(() => links.live.has(ids[1]) && links.connects.get(ids[1])! > before!, 5000, 'the stalled instance to be linked again');
    // Scale down to one, draining.
    await Promise.all(more.map((n) => within(n.close({ drain: 3000 }), 6000)));
    const socket2 = (api as unknown as { dialled: Map<string, { sockets(): NodeSocket[] }> }).dialled.get('worker')!.sockets().find((s) => s.instance === ids[1] && s.connected)!;
    await api.sendTo(socket2, 'exit', { receptive: false });
    expect(await within(staller.exited, 6000)).toEqual({ code: 0, signal: null });
    await until(() => links.live.size === 1, 3000, 'one instance left');
    await delay(300);
    const report = await running.stop();
    expect(report.badStreams).toEqual([]);
    expect([...report.failures.keys()].filter((code) => code !== ErrorCode.PEER_DISCONNECTED && code !== 'remote:ERR_IPC_CLOSED')).toEqual([]);
    // Nothing waited for its 15 s timeout: the crash and the stall were noticed within a few heartbeats.
    expect(report.slowest).toBeLessThan(4000);
    expect([...seen.values()].filter((count) => count > 1)).toEqual([]);
    expect(api.stats()).toMatchObject({ pendingRequests: 0, openStreams: 0 });
    expect(links.duplicates).toEqual([]);
    await api.close();
    for (const [id, count] of links.connects) {
      expect([id, links.disconnects.get(id), links.streamConnects.get(id), links.streamDisconnects.get(id)]).toEqual([id, count, count, count]);
    }
    expect(links.connects.get(ids[1])).toBe(2);
    expect(api.errors).toEqual([]);
    await first.close();
    await expectNoneOfOurs(server);
  }, 40_000);
});

describeNats("two clients sharing one natsTransport while their own nats-server restarts (fleet review)", () => {
  let cluster: NatsCluster;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  beforeAll(async () => {
    cluster = await startNatsCluster(2);
    process.on('unhandledRejection', onUnhandled);
  });
  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    await cluster.stop();
  });
  afterEach(async () => {
    for (const stop of loads) stop();
    loads.clear();
    await closeAll();
    expect(unhandled).toEqual([]);
  });

  it('every call settles at the restart (ERR_IPC_PEER_DISCONNECTED, never its timeout), both clients link again and serve, links balanced, nothing left on either server', async () => {
    const [a, b] = cluster.servers;
    const seen = new Map<string, number>();
    const workers = await Promise.all(
      [0, 1].map(async () => {
        const n = natsNode('worker', b.url, { heartbeatInterval: 500 }, { discoveryInterval: 200 });
        work(n, seen);
        n.serve('worker');
        await within(once(n, 'listening'), 5000);
        return n;
      }),
    );
    await cluster.waitForInterest(b, a);
    const transport = natsTransport({ servers: a.url, discoveryInterval: 200, reconnectTimeWait: 50 });
    const clients = ['api', 'cron'].map((name) => node(name, { transport, heartbeatInterval: 500, maxRetries: Infinity, retryTime: 50 }));
    const links = clients.map(watchLinks);
    await Promise.all(clients.map((c) => c.connectTo('worker')));
    await until(() => links.every((l) => l.live.size === 2), 5000, 'links to the 2 instances');
    const running = clients.map((c, i) => load(c, 100, 2, `c${i}-`));
    await delay(300);
    const killed = performance.now();
    await a.kill();
    await until(() => links.every((l) => l.live.size === 0), 2000, 'every link to end at once');
    expect(performance.now() - killed).toBeLessThan(2000);
    await a.restart();
    await until(() => links.every((l) => l.live.size === 2), 8000, 'both clients to link again');
    const before = running.map((r) => r.report.ok);
    await until(() => running.every((r, i) => r.report.ok > before[i] + 100), 5000, 'requests answered again');
    const reports = await Promise.all(running.map((r) => r.stop()));
    for (const report of reports) {
      expect(report.badStreams).toEqual([]);
      expect(report.details.filter((detail) => !/ERR_IPC_PEER_DISCONNECTED|ERR_IPC_NOT_CONNECTED/.test(detail))).toEqual([]);
      expect(report.slowest).toBeLessThan(5000);
    }
    expect([...seen.values()].filter((count) => count > 1)).toEqual([]);
    for (const c of clients) expect(c.stats()).toMatchObject({ pendingRequests: 0, openStreams: 0 });
    for (const l of links) expect(l.duplicates).toEqual([]);
    // No storm: a NATS disconnect is no error of a node's.
    for (const c of clients) expect(c.errors.length).toBeLessThan(5);
    await Promise.all(clients.map((c) => c.close()));
    for (const l of links) {
      for (const [id, count] of l.connects) {
        expect([id, l.disconnects.get(id), l.streamConnects.get(id), l.streamDisconnects.get(id)]).toEqual([id, count, count, count]);
      }
    }
    await Promise.all(workers.map((w) => w.close()));
    expect(await ours(a)).toEqual([]);
    expect(await ours(b)).toEqual([]);
  }, 40_000);
});
