import { firstValueFrom, filter } from 'rxjs';
import { ErrorCode } from '../../src';
import { cleanUp, spawnPeer } from '../helpers/child';
import { delay, freePort, node, serveTcp, until } from '../helpers/net';

afterEach(cleanUp);

const FAST = { heartbeatInterval: 100 };

describe('faults', () => {
  it('notices a frozen peer (SIGSTOP) by heartbeat, and takes it back after SIGCONT', async () => {
    const hub = node('hub', FAST);
    const port = await serveTcp(hub);
    const child = spawnPeer('responder', port, 'sleeper', { ...FAST, maxRetries: 1000, retryTime: 50, maxRetryTime: 200 });
    await child.waitFor('ready');
    await until(() => hub.get('sleeper') !== undefined);
    const pending = hub.sendTo('sleeper', 'hang', { timeout: 60_000 }).catch((e: Error) => e);
    await delay(50);

    const frozenAt = Date.now();
    child.process.kill('SIGSTOP');
    const error = await pending;
    const detectedAfter = Date.now() - frozenAt;
    expect(error).toMatchObject({ code: ErrorCode.PEER_DISCONNECTED });
    expect(String((error as Error & { cause?: Error }).cause?.message)).toMatch(/heartbeat/);
    expect(detectedAfter).toBeGreaterThanOrEqual(250);
    expect(detectedAfter).toBeLessThan(2000);
    console.log(`frozen peer detected after ${detectedAfter} ms (heartbeatInterval 100 ms)`);

    const back = firstValueFrom(hub.connections$.pipe(filter((s) => s.name === 'sleeper')));
    child.process.kill('SIGCONT');
    await back;
    await expect(hub.sendTo('sleeper', 'hi')).resolves.toBe('sleeper:hi');
  });

  it('a client notices a frozen server and reconnects once it resumes', async () => {
    const port = await freePort();
    const server = spawnPeer('server', port, undefined, FAST);
    await server.waitFor('listening');
    const client = node('client', { ...FAST, maxRetries: Infinity, retryTime: 50, maxRetryTime: 200, handshakeTimeout: 300 });
    await client.connectTo('hub', port, '127.0.0.1');
    const disconnected = new Promise((resolve) => client.once('disconnect', resolve));
    server.process.kill('SIGSTOP');
    await disconnected;
    await expect(client.sendTo('hub', 'x')).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED });
    const reconnected = new Promise((resolve) => client.once('connect', resolve));
    server.process.kill('SIGCONT');
    await reconnected;
    await expect(client.sendTo('hub', 'y')).resolves.toBe('echo:y');
  });

  it.each([
    ['mid-handshake', 'handshake'],
    ['mid-frame', 'frame'],
  ])('a peer process killed %s (SIGKILL) leaves the server serving, with nothing pending', async (_, stage) => {
    const hub = node('hub', FAST);
    hub.on('message', (m) => m.reply('ok'));
    const port = await serveTcp(hub);
    const dying = spawnPeer('partial', port, stage);
    await dying.waitFor('wrote');
    if (stage === 'frame') {
      await until(() => hub.get('dying') !== undefined);
      // A request of ours to it is pending when it dies: it must reject at once.
      const pending = hub.sendTo('dying', 'are you there?', { timeout: 60_000 }).catch((e: Error) => e);
      await delay(20);
      const killedAt = Date.now();
      dying.process.kill('SIGKILL');
      expect(await pending).toMatchObject({ code: ErrorCode.PEER_DISCONNECTED });
      expect(Date.now() - killedAt).toBeLessThan(1000);
    } else {
      dying.process.kill('SIGKILL');
    }
    await dying.exited;
    await until(() => hub.stats().handshaking === 0 && Object.keys(hub.stats().peers).length === 0);
    const client = node('healthy');
    await client.connectTo('hub', port, '127.0.0.1');
    await expect(client.sendTo('hub', 'still serving?')).resolves.toBe('ok');
  });

  it('100 clients that lost their server come back spread out (backoff with jitter)', async () => {
    const port = await freePort();
    const first = node('hub');
    first.serve('hub', port, '127.0.0.1');
    await new Promise((resolve) => first.once('listening', resolve));
    const clients = Array.from({ length: 100 }, (_, i) => node(`c${i}`, { maxRetries: Infinity, retryTime: 100, maxRetryTime: 1000 }));
    await Promise.all(clients.map((c) => c.connectTo('hub', port, '127.0.0.1')));
    await first.close();
    await delay(150);
    const arrivals: number[] = [];
    const second = node('hub');
    second.on('connection', () => arrivals.push(Date.now()));
    second.serve('hub', port, '127.0.0.1');
    await until(() => arrivals.length === 100, 10_000, '100 reconnections');
    arrivals.sort((a, b) => a - b);
    const spread = arrivals[99] - arrivals[0];
    const busiestMs = Math.max(...[...new Set(arrivals)].map((t) => arrivals.filter((a) => a === t).length));
    console.log(`100 reconnections spread over ${spread} ms, at most ${busiestMs} in the same millisecond`);
    expect(spread).toBeGreaterThan(50);
    expect(busiestMs).toBeLessThan(30);
  });
});
