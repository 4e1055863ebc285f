import { ErrorCode } from '../../src';
import { cleanUp, spawnPeer } from '../helpers/child';
import { delay, node, serveTcp, until } from '../helpers/net';

afterEach(cleanUp);

describe('graceful close and backpressure', () => {
  it('close() flushes replies already written before the socket ends', async () => {
    const server = node('hub');
    const big = Buffer.alloc(8 * 1024 * 1024, 7);
    server.on('message', (m) => {
      m.reply(big);
      void server.close();
    });
    const port = await serveTcp(server);
    const client = node('client');
    await client.connectTo('hub', port, '127.0.0.1');
    const reply = await client.sendTo<Buffer>('hub', 'send me 8 MiB and leave');
    expect(reply.length).toBe(big.length);
    expect(reply.equals(big)).toBe(true);
  });

  it('close({ drain }) lets requests in flight finish, refuses new ones, then closes', async () => {
    const server = node('hub');
    let arrived = 0;
    server.on('message', async (m) => {
      arrived++;
      await delay(100);
      m.reply(`late ${m.data}`);
    });
    const port = await serveTcp(server);
    const client = node('client');
    await client.connectTo('hub', port, '127.0.0.1');
    const inFlight = [client.sendTo('hub', 1), client.sendTo('hub', 2)];
    await until(() => arrived === 2);
    const closing = server.close({ drain: 2000 });
    await expect(Promise.all(inFlight)).resolves.toEqual(['late 1', 'late 2']);
    await closing;
    await expect(server.sendTo('client', 'new')).rejects.toMatchObject({ code: ErrorCode.CLOSED });
  });

  it('close({ drain }) of a service that calls another to answer: its calls made while it answers go through, the requests in flight finish', async () => {
    // client → api → db: the api calls the db only after the drain began (say, after a cache miss).
    const db = node('db');
    db.on('message', async (m) => {
      await delay(50);
      m.reply(`row ${m.data}`);
    });
    const api = node('api');
    let arrived = 0;
    let release!: () => void;
    const drainBegun = new Promise<void>((resolve) => (release = resolve));
    api.on('message', async (m) => {
      arrived++;
      await drainBegun;
      m.reply(await api.sendTo('db', m.data));
    });
    await api.connectTo('db', await serveTcp(db), '127.0.0.1');
    const client = node('client');
    await client.connectTo('api', await serveTcp(api), '127.0.0.1');
    const inFlight = [client.sendTo('api', 1), client.sendTo('api', 2)];
    await until(() => arrived === 2);
    const closing = api.close({ drain: 5000 });
    release();
    await expect(Promise.all(inFlight)).resolves.toEqual(['row 1', 'row 2']);
    await closing;
    // Once nothing is being answered (and after the close), a new call is refused.
    await expect(api.sendTo('db', 3)).rejects.toMatchObject({ code: ErrorCode.CLOSED });
  });

  it('close({ drain }): a call out made while nothing is being answered is refused at once (ERR_IPC_CLOSED)', async () => {
    const db = node('db');
    db.on('message', async (m) => {
      await delay(200);
      m.reply(m.data);
    });
    const api = node('api');
    await api.connectTo('db', await serveTcp(db), '127.0.0.1');
    const held = api.sendTo('db', 'held'); // our own request in flight keeps the drain going
    await delay(20);
    const closing = api.close({ drain: 5000 });
    await expect(api.sendTo('db', 'new')).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await expect(held).resolves.toBe('held');
    await closing;
  });

  it('close({ drain }) tells the peers (GOAWAY): their new requests fail at once, the one that crossed it is refused unseen, the drain ends with the work in flight', async () => {
    const server = node('hub');
    const seen: unknown[] = [];
    server.on('message', async (m) => {
      seen.push(m.data);
      await delay(200);
      m.reply(`done ${m.data}`);
    });
    const port = await serveTcp(server);
    const client = node('client');
    await client.connectTo('hub', port, '127.0.0.1');
    const inFlight = client.sendTo('hub', 'in flight');
    await until(() => seen.length === 1);
    const started = Date.now();
    const closing = server.close({ drain: 10_000 });
    // Sent before the GOAWAY arrived: refused without reaching the handler (safe to send again elsewhere).
    const crossed = client.sendTo('hub', 'crossed').catch((e: Error) => e);
    expect(await crossed).toMatchObject({ code: ErrorCode.REMOTE, remoteCode: ErrorCode.CLOSED });
    // Once it arrived: refused here, at once, with nothing sent; a ping and one-way messages still go.
    await expect(client.sendTo('hub', 'new')).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED, message: expect.stringMatching(/closing/) });
    await expect(client.pingTo('hub')).resolves.toEqual(expect.any(Number));
    await client.sendTo('hub', 'note', { receptive: false });
    await expect(inFlight).resolves.toBe('done in flight');
    await closing;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(seen).toEqual(['in flight', 'note']);
  });

  it('close({ drain }) gives up at the deadline', async () => {
    const server = node('hub');
    let arrived = 0;
    server.on('message', () => arrived++); // never answers
    const port = await serveTcp(server);
    const client = node('client');
    await client.connectTo('hub', port, '127.0.0.1');
    const pending = client.sendTo('hub', 'x', { timeout: 10_000 }).catch((e: Error) => e);
    await until(() => arrived === 1);
    const started = Date.now();
    await client.close({ drain: 150 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(await pending).toMatchObject({ code: ErrorCode.CLOSED });
  });

  it('a producer awaiting one-way sends to a slow reader keeps its memory bounded (1 GiB, nothing lost)', async () => {
    const hub = node('hub');
    let expected = 0;
    let bytes = 0;
    let errors = 0;
    let done = false;
    hub.on('message', (m) => {
      if (m.data === 'done') {
        done = true;
        return void m.reply('ok');
      }
      const chunk = m.data as Buffer;
      if (chunk.readUInt32BE(0) !== expected || chunk[chunk.length - 1] !== (expected & 0xff)) errors++;
      expected++;
      bytes += chunk.length;
      // A reader that sleeps: 25 ms every 32 MiB.
      if (expected % 32 === 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 25);
    });
    const port = await serveTcp(hub);
    const producer = spawnPeer('producer', port, 'producer');
    await producer.waitFor('peak-rss-mb', 120_000);
    const rss = Number(/peak-rss-mb (\d+)/.exec(producer.output())![1]);
    const queuedKb = Number(/max-queued-kb (\d+)/.exec(producer.output())![1]);
    console.log(`1 GiB pushed to a sleeping reader: producer peak RSS ${rss} MB, at most ${queuedKb} KiB queued`);
    expect(done).toBe(true);
    expect(errors).toBe(0);
    expect(expected).toBe(1024);
    expect(bytes).toBe(1024 * 1024 * 1024);
    // What is queued stays at the socket's buffer plus one message; RSS also holds not-yet-collected
    // garbage (a fresh 1 MiB Buffer per send), but nowhere near the 1 GiB an unbounded queue would reach.
    expect(queuedKb).toBeLessThan(4 * 1024);
    expect(rss).toBeLessThan(600);
  }, 180_000);
});
