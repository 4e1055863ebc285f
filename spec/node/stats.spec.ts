import { firstValueFrom, lastValueFrom, take, toArray } from 'rxjs';
import { closeAll, delay, node, serveTcp, until } from '../helpers/net';

afterEach(closeAll);

describe('stats', () => {
  it('counts frames and bytes both ways, pending requests, open streams and the last round trip', async () => {
    const server = node('hub', { heartbeatInterval: 50 });
    server.on('message', (m) => (m.data === 'hold' ? undefined : m.data === 'stream' ? m.stream(new Promise(() => undefined)) : m.reply('ok')));
    const port = await serveTcp(server);
    const client = node('leaf', { heartbeatInterval: 50 });
    const socket = await client.connectTo('hub', port, '127.0.0.1');
    await client.sendTo('hub', 'x'.repeat(100));
    const held = client.sendTo('hub', 'hold', { timeout: 5000 }).catch(() => undefined);
    const streamed = client.request$('hub', 'stream').subscribe({ error: () => undefined });
    await until(() => server.stats().openStreams === 1);
    const mine = socket.stats();
    expect(mine.framesOut).toBeGreaterThanOrEqual(5); // hello, ack, 3 messages (the stream's window rides in its MESSAGE)
    expect(mine.bytesOut).toBeGreaterThan(100);
    expect(mine.framesIn).toBeGreaterThanOrEqual(2);
    expect(mine.pendingRequests).toBe(2);
    await client.pingTo('hub');
    expect(socket.stats().lastRtt).toBeGreaterThanOrEqual(0);
    const total = server.stats();
    expect(total.peers['server:leaf'].bytesIn).toBe(total.bytesIn);
    expect(total.bytesIn).toBeGreaterThanOrEqual(mine.bytesOut - 64);
    await delay(120); // heartbeats measure the round trip too
    expect(server.stats().lastRtt).not.toBeNull();
    streamed.unsubscribe();
    await until(() => server.stats().openStreams === 0);
    await client.close();
    await held;
  });

  it('stats$ emits snapshots at once and every second, and completes on close', async () => {
    const n = node('lonely');
    const first = await firstValueFrom(n.stats$);
    expect(first).toMatchObject({ framesIn: 0, pendingRequests: 0, peers: {} });
    const all = lastValueFrom(n.stats$.pipe(toArray()));
    await delay(20);
    await n.close();
    expect((await all).length).toBeGreaterThanOrEqual(1);
    await expect(lastValueFrom(n.stats$.pipe(take(1)), { defaultValue: 'none' })).resolves.toBe('none');
  });
});
