/**
 * The nats-server harness (spec/helpers/natsServer.ts) against real servers, through the raw nats.js client:
 * what the NATS transport's specs will rely on. No mocks; times are generous upper bounds only.
 */
import { connect, type NatsConnection, type Status } from '@nats-io/transport-node';
import { describeNats, startNatsCluster, startNatsServer, waitUntil, type NatsCluster, type NatsServer } from '../helpers/natsServer';

const clients: NatsConnection[] = [];

async function client(servers: string | string[], options: Record<string, unknown> = {}): Promise<NatsConnection> {
  const nc = await connect({ servers, noAsyncTraces: true, reconnectTimeWait: 50, reconnectJitter: 0, ...options });
  clients.push(nc);
  return nc;
}

/** The client's status events, as they come. */
function statuses(nc: NatsConnection): Status[] {
  const seen: Status[] = [];
  void (async () => {
    for await (const status of nc.status()) seen.push(status);
  })();
  return seen;
}

/** The next `count` messages on `subject`, as strings. */
function receive(nc: NatsConnection, subject: string, count: number): Promise<string[]> {
  const sub = nc.subscribe(subject, { max: count });
  return (async () => {
    const got: string[] = [];
    for await (const m of sub) got.push(m.string());
    return got;
  })();
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((nc) => nc.close()));
});

describeNats('nats-server harness', () => {
  describe('one server', () => {
    let server: NatsServer;
    beforeAll(async () => {
      server = await startNatsServer();
    });

    it('listens on loopback with its monitoring port, and carries pub/sub and request/reply', async () => {
      expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
      expect(server.pid).toEqual(expect.any(Number));
      const varz = await server.varz();
      expect(varz.server_name).toBe(server.name);
      expect(varz.max_payload).toBe(1024 * 1024);

      const nc = await client(server.url);
      const got = receive(nc, 'harness.one', 3);
      nc.subscribe('harness.echo', { callback: (_error, m) => void m.respond(m.data) });
      await nc.flush();
      for (const text of ['a', 'b', 'c']) nc.publish('harness.one', text);
      expect(await got).toEqual(['a', 'b', 'c']);
      expect((await nc.request('harness.echo', 'ping', { timeout: 5000 })).string()).toBe('ping');
      expect((await server.connz()).num_connections).toBe(1);
    });

    it('shows the client’s subscriptions in /subsz, and none once the client has closed', async () => {
      // The last test's client is closed, but the server drops its subscriptions when it notices: wait for that.
      await waitUntil('no client subscription from the last test', async () => (await server.clientSubscriptions()).length === 0, 5000);
      const before = (await server.subsz()).num_subscriptions; // the server's own (~120 internal ones)
      const nc = await client(server.url);
      nc.subscribe('harness.subsz.a');
      nc.subscribe('harness.subsz.b', { queue: 'workers' });
      await nc.flush();
      expect((await server.subsz()).num_subscriptions).toBe(before + 2);
      const mine = await server.clientSubscriptions();
      expect(mine).toHaveLength(2);
      expect(mine).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ subject: 'harness.subsz.a' }),
          expect.objectContaining({ subject: 'harness.subsz.b', qgroup: 'workers' }),
        ]),
      );
      await nc.close();
      await waitUntil('no client subscription left', async () => (await server.clientSubscriptions()).length === 0, 5000);
      expect((await server.subsz()).num_subscriptions).toBe(before);
      expect((await server.connz()).num_connections).toBe(0);
    });

    it('kill -9 then restart on the same ports: the client sees disconnect, then reconnect, and works again', async () => {
      const nc = await client(server.url, { maxReconnectAttempts: -1 });
      const seen = statuses(nc);
      const oldPid = server.pid;
      await server.kill();
      expect(server.running).toBe(false);
      expect(server.pid).toBeUndefined();
      await waitUntil('a disconnect status', () => seen.some((s) => s.type === 'disconnect'), 5000);

      await server.restart();
      expect(server.pid).not.toBe(oldPid);
      await waitUntil('a reconnect status', () => seen.some((s) => s.type === 'reconnect'), 10_000);
      const types = seen.map((s) => s.type);
      expect(types.indexOf('disconnect')).toBeLessThan(types.indexOf('reconnect'));

      const got = receive(nc, 'harness.again', 1);
      await nc.flush();
      nc.publish('harness.again', 'back');
      expect(await got).toEqual(['back']);
    });
  });

  describe('3-node cluster', () => {
    let cluster: NatsCluster;
    beforeAll(async () => {
      cluster = await startNatsCluster(3);
    });
    afterAll(() => cluster.stop());

    it('routes every server to the two others', async () => {
      expect(cluster.urls).toHaveLength(3);
      for (const server of cluster.servers) expect((await server.routez()).num_routes).toBe(2);
    });

    it('delivers to a subscriber on server C what was published via server A', async () => {
      const [a, , c] = cluster.servers;
      const onC = await client(c.url);
      const onA = await client(a.url);
      const got = receive(onC, 'harness.cluster', 2);
      onC.subscribe('harness.cluster.service', { queue: 'workers', callback: (_error, m) => void m.respond(m.data) });
      await onC.flush();
      await a.waitForSubscription('harness.cluster'); // interest reaches A through the route
      await cluster.waitForInterest(c, a); // all of C's: the queue subscription and the client's reply inbox
      onA.publish('harness.cluster', 'one');
      onA.publish('harness.cluster', 'two');
      expect(await got).toEqual(['one', 'two']);
      expect((await onA.request('harness.cluster.service', 'across', { timeout: 5000 })).string()).toBe('across');
      expect((await a.connz()).num_connections).toBe(1);
      expect((await c.connz()).num_connections).toBe(1);
    });

    it('kill -9 of the client’s server: the client reconnects to another member; restart brings the routes back', async () => {
      const [a, b, c] = cluster.servers;
      const nc = await client(a.url, { maxReconnectAttempts: -1 }); // learns B and C from A's INFO
      const seen = statuses(nc);
      await waitUntil('the cluster’s URLs in the client’s pool', () => nc.info !== undefined && (nc.info.connect_urls?.length ?? 0) >= 3, 5000);
      await a.kill();
      await waitUntil('disconnect then reconnect', () => seen.some((s) => s.type === 'reconnect'), 10_000);
      expect(seen.find((s) => s.type === 'disconnect')).toBeDefined();
      expect([b.url, c.url].map((u) => u.replace('nats://', ''))).toContain(nc.getServer());

      await a.restart();
      await cluster.waitForRoutes();
      for (const server of cluster.servers) expect((await server.routez()).num_routes).toBe(2);
    });
  });
});
