// Review of the changes since e0b67b3: timeouts and the heartbeat verdict after the I/O of their turn (catching up),
// the PING behind a drain's GOAWAY, NodeSocket.instance kept, a Unix server's close that keeps a file that took its
// path, connectTo a Unix path that holds no socket.
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { of } from 'rxjs';
import { ErrorCode, FrameType, type IpcError, type NodeMessage } from '../../src';
import { ROOT } from '../helpers/child';
import { bytes, rawPeer } from '../helpers/raw';
import { closeAll, delay, node, serveTcp, socketPath, staleSocket, until } from '../helpers/net';

const servers: Server[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  sockets.splice(0).forEach((s) => s.destroy());
  await closeAll();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

const control = (type: number, id: number, payload: Buffer = Buffer.alloc(0)) => bytes({ type, flags: 0, id, encoding: 0, payload });

/** Settles with the error code (or 'ok') and when, in ms since `start`. */
async function settled(promise: Promise<unknown>, start: number): Promise<{ code: string; at: number }> {
  try {
    await promise;
    return { code: 'ok', at: performance.now() - start };
  } catch (error) {
    return { code: (error as IpcError).code ?? String(error), at: performance.now() - start };
  }
}

/** A TCP proxy to `port` whose upstream → client direction can be held (the upstream's writes back up). */
async function holdableProxy(port: number): Promise<{ port: number; hold(): void; release(): void }> {
  const pairs: Array<{ client: Socket; upstream: Socket }> = [];
  let held = false;
  const server = createServer((client) => {
    const upstream = createConnection(port, '127.0.0.1');
    sockets.push(client, upstream);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    client.pipe(upstream);
    if (!held) upstream.pipe(client);
    pairs.push({ client, upstream });
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    hold: () => {
      held = true;
      for (const { client, upstream } of pairs) {
        upstream.unpipe(client);
        upstream.pause();
      }
    },
    release: () => {
      held = false;
      for (const { client, upstream } of pairs) upstream.pipe(client);
    },
  };
}

describe('the PING behind a drain’s GOAWAY', () => {
  it('(was broken) a peer with more than 1 MiB to write to us still answers it: the drain ends once our requests are answered, not at its deadline', async () => {
    const hub = node('hub', { heartbeatInterval: 0 });
    let asked = false;
    hub.on('message', (m) => {
      asked = true;
      m.reply(Buffer.alloc(12 * 1024 * 1024));
    });
    const port = await serveTcp(hub);
    const proxy = await holdableProxy(port);
    const client = node('client', { heartbeatInterval: 0 });
    await client.connectTo('hub', proxy.port, '127.0.0.1');
    proxy.hold();
    const answer = client.sendTo('hub', 'big', { timeout: 20_000 });
    // The hub's answer backs up: more than PONG_BACKLOG (1 MiB) waits in its writer when our GOAWAY and PING arrive.
    await until(() => asked && (hub.get('client')?.connection?.queuedBytes ?? 0) > 2 * 1024 * 1024, 5000, 'a backlog');
    const start = performance.now();
    const closing = settled(client.close({ drain: 8000 }), start);
    await delay(300); // the GOAWAY and its PING reach the hub (client → hub is not held)
    proxy.release();
    expect((await settled(answer, start)).code).toBe('ok');
    const closed = await closing;
    expect(closed.code).toBe('ok');
    expect(closed.at).toBeLessThan(5000); // was 8,000 ms: the PONG was never sent, the drain ran to its deadline
  }, 15_000);

  it('a raw peer that answers it with an ERROR ends the wait for it; one that ignores it holds the drain to its deadline, no longer; stats() does not count it', async () => {
    const { server, raw, received } = await rawPeer(() => undefined, { maxPendingRequests: 1 });
    const start = performance.now();
    const closing = settled(server.close({ drain: 5000 }), start);
    await until(() => received.some((f) => f.type === FrameType.PING && f.id !== 0), 3000, 'the PING');
    expect(received.findIndex((f) => f.type === FrameType.GOAWAY)).toBeLessThan(received.findIndex((f) => f.type === FrameType.PING && f.id !== 0));
    expect(server.get('raw')!.connection!.stats().pendingRequests).toBe(0);
    const ping = received.find((f) => f.type === FrameType.PING && f.id !== 0)!;
    raw.write(bytes({ type: FrameType.ERROR, flags: 0, id: ping.id, encoding: 1, payload: Buffer.from(JSON.stringify({ name: 'Error', message: 'no' })) }));
    const closed = await closing;
    expect(closed.code).toBe('ok');
    expect(closed.at).toBeLessThan(2500);

    const { server: quiet } = await rawPeer(() => undefined, {}, 'deaf');
    const start2 = performance.now();
    const closed2 = await settled(quiet.close({ drain: 600 }), start2);
    expect(closed2.code).toBe('ok');
    expect(closed2.at).toBeGreaterThanOrEqual(550);
    expect(closed2.at).toBeLessThan(3000);
  }, 15_000);

  it('(was broken) close({ drain: Infinity }) with nothing in flight, facing a peer that never answers the PING: closes after requestTimeout, not never', async () => {
    const { server } = await rawPeer(() => undefined, { requestTimeout: 500 }, 'deaf');
    const start = performance.now();
    const outcome = await Promise.race([server.close({ drain: Infinity }).then(() => 'closed'), delay(4000).then(() => 'still draining after 4 s')]);
    expect(outcome).toBe('closed');
    expect(performance.now() - start).toBeGreaterThanOrEqual(450);
  }, 15_000);
});

describe('timeouts while a connection catches up', () => {
  it('a request (sendTo, iterate) to a peer that floods us for ever still times out within timeout + MAX_CATCH_UP (+ slack); one to a quiet peer of the same lane is not held behind it', async () => {
    const { server, raw } = await rawPeer(() => undefined);
    // A second peer, quiet: its request shares the lane (same timeout) and is due right after the flooded one.
    const other = node('other', { heartbeatInterval: 0 });
    await other.connectTo('hub', (server.server!.address() as AddressInfo).port, '127.0.0.1');
    other.on('message', () => undefined);
    const stop = flood(raw);
    await delay(100);
    const start = performance.now();
    const flooded = settled(server.sendTo('raw', 'x', { timeout: 300 }), start);
    await delay(20);
    const quiet = settled(server.sendTo('other', 'x', { timeout: 300 }), start);
    const iterated = settled((async () => {
      for await (const _ of server.iterate('raw', 'x', { timeout: 300 })) void _;
    })(), start);
    const [f, q, i] = await Promise.all([flooded, quiet, iterated]);
    expect(i.code).toBe(ErrorCode.TIMEOUT);
    expect(i.at).toBeLessThan(300 + 1000 + 2500);
    stop();
    expect(f.code).toBe(ErrorCode.TIMEOUT);
    expect(q.code).toBe(ErrorCode.TIMEOUT);
    expect(f.at).toBeLessThan(300 + 1000 + 2500);
    expect(q.at).toBeLessThan(f.at + 1); // not held until the flooded one's catch-up ends
  }, 15_000);
});

/**
 * Floods the hub through `raw` until the returned function is called: thousands of frames it reads and ignores (a
 * PONG of id 0 whose payload is no stamp of ours), as fast as the socket takes them.
 */
function flood(raw: Socket): () => void {
  const chunk = Buffer.concat(Array.from({ length: 4000 }, () => control(FrameType.PONG, 0, Buffer.from('x'))));
  let flooding = true;
  const pump = () => {
    while (flooding && !raw.destroyed && raw.write(chunk));
    if (flooding && !raw.destroyed) raw.once('drain', pump);
  };
  pump();
  return () => void (flooding = false);
}

/** Blocks this process's event loop for `ms` (synchronous work, a long GC pause). */
function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* busy */
  }
}

describe('many lanes due at once while their connection catches up', () => {
  it('(was broken) 500 requests with 500 different timeouts to a flooding peer: a few hundred timers over the catch-up second, not one per lane per millisecond; each times out within timeout + MAX_CATCH_UP (+ slack)', async () => {
    const { server, raw } = await rawPeer(() => undefined);
    const stop = flood(raw);
    await delay(100);
    const timers = jest.spyOn(global, 'setTimeout');
    const start = performance.now();
    const outcomes = await Promise.all(Array.from({ length: 500 }, (_, i) => settled(server.sendTo('raw', 'x', { timeout: 300 + i * 0.2 }), start)));
    const armed = timers.mock.calls.length;
    timers.mockRestore();
    stop();
    expect(outcomes.every((o) => o.code === ErrorCode.TIMEOUT)).toBe(true);
    expect(Math.max(...outcomes.map((o) => o.at))).toBeLessThan(400 + 1000 + 2500);
    expect(armed).toBeLessThan(10_000); // was ~500 per millisecond: 100,000s, and the flood read several times slower
  }, 15_000);
});

describe('a connection catching up with 3,000 answers after a block', () => {
  it('(was broken) iterate’s first answer, behind them in the socket: delivered, not ERR_IPC_TIMEOUT (its timer waited one turn, not for the catch-up)', async () => {
    const hub = node('hub', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0 });
    const path = socketPath();
    hub.serve('hub', path);
    await once(hub, 'listening');
    await client.connectTo('hub', path);
    const count = 3000;
    const waiting: NodeMessage[] = [];
    hub.on('message', (m: NodeMessage) => {
      if (waiting.push(m) <= count) return;
      for (const w of waiting) {
        if (w.data === 'it') w.stream(of('v'));
        else w.reply(w.data);
      }
      setImmediate(() => block(1000));
    });
    const calls = Array.from({ length: count }, (_, i) => client.sendTo('hub', i, { timeout: 10_000 }).catch((e: IpcError) => e.code));
    const iterated = (async () => {
      const values: unknown[] = [];
      for await (const value of client.iterate('hub', 'it', { timeout: 500 })) values.push(value);
      return values;
    })().catch((e: IpcError) => e.code);
    await Promise.all(calls);
    expect(await iterated).toEqual(['v']);
  }, 15_000);
});

describe('a Unix server’s close and the file at its path', () => {
  it('(was broken) a server the user closed already (node.server.close()), its path taken by a new daemon: close() leaves no “.keep” file behind', async () => {
    const path = socketPath();
    const hub = node('hub');
    hub.serve('hub', path);
    await once(hub, 'listening');
    await new Promise((resolve) => hub.server!.close(resolve));
    // The freed inode goes to another file (ext4 reuses it at once: the daemon's file would look like ours).
    writeFileSync(`${path}.filler`, '');
    const daemon = createServer((s) => s.end());
    servers.push(daemon);
    daemon.listen(path);
    await once(daemon, 'listening');
    await hub.close();
    expect(readdirSync(dirname(path)).sort()).toEqual(['ipc.sock', 'ipc.sock.filler']);
    const probe = createConnection(path);
    sockets.push(probe);
    await once(probe, 'connect');
  });

  it('our own socket file is removed; a new daemon’s file at the path is kept, and no “.keep” stays', async () => {
    const path = socketPath();
    const first = node('first');
    first.serve('first', path);
    await once(first, 'listening');
    await first.close();
    expect(readdirSync(dirname(path))).toEqual([]);

    const hub = node('hub');
    hub.serve('hub', path);
    await once(hub, 'listening');
    unlinkSync(path);
    const daemon = createServer((s) => s.end());
    servers.push(daemon);
    daemon.listen(path);
    await once(daemon, 'listening');
    await hub.close();
    expect(readdirSync(dirname(path))).toEqual(['ipc.sock']);
  });
});

const asRoot = process.getuid?.() === 0;

(asRoot ? it : it.skip)('(was broken) a server run by another user (nobody) in a folder both may write: close() keeps a file of ours that took its path (a hard link to it was refused: the file was removed)', async () => {
  const path = socketPath();
  chmodSync(dirname(path), 0o777);
  const code = `const { Node } = require(${JSON.stringify(join(ROOT, 'dist'))});
    const hub = new Node('hub'); hub.on('error', () => undefined);
    hub.serve('hub', process.argv[1]);
    hub.once('listening', () => { process.stdout.write('listening\\n'); process.stdin.once('data', () => hub.close().then(() => process.stdout.write('closed\\n'))); });`;
  const child = spawn(process.execPath, ['-e', code, path], { uid: 65534, gid: 65534, stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += String(chunk)));
  try {
    await until(() => out.includes('listening'), 8000, 'listening');
    unlinkSync(path);
    writeFileSync(path, 'mine');
    child.stdin.write('x');
    await until(() => out.includes('closed'), 8000, 'closed');
    expect(readdirSync(dirname(path))).toEqual(['ipc.sock']);
    expect(readFileSync(path, 'utf8')).toBe('mine');
  } finally {
    child.kill('SIGKILL');
  }
}, 15_000);

describe('connectTo a Unix path that holds no socket', () => {
  it('a stale socket file is retried (a server may come back); a folder, a file or a link to a file is a final ERR_IPC_CONNECT', async () => {
    const stale = socketPath();
    await staleSocket(stale);
    const client = node('client', { maxRetries: 2, retryTime: 10 });
    const error = await client.connectTo('hub', stale).then(
      () => null,
      (e: IpcError) => e,
    );
    expect(error?.code).toBe(ErrorCode.CONNECT);
    expect(error?.message).not.toMatch(/not a Unix socket/);

    const folder = socketPath('folder');
    mkdirSync(folder);
    const file = socketPath('file');
    writeFileSync(file, 'x');
    const link = socketPath('link');
    symlinkSync(file, link);
    for (const [path, what] of [
      [folder, 'a directory'],
      [file, 'a file'],
      [link, 'a file'],
    ]) {
      const c = node('c', { maxRetries: 1000, retryTime: 10 });
      const start = performance.now();
      const failure = await c.connectTo('hub', path).then(
        () => null,
        (e: IpcError) => e,
      );
      expect(failure?.code).toBe(ErrorCode.CONNECT);
      expect(failure?.message).toContain(`it is ${what}, not a Unix socket`);
      expect(performance.now() - start).toBeLessThan(2000);
    }
  });
});

describe('NodeSocket.instance', () => {
  it('after a reconnection to another instance: the new one while connected, and still it once that ended', async () => {
    const a = node('hub', { heartbeatInterval: 0 });
    const port = await serveTcp(a);
    const client = node('client', { heartbeatInterval: 0, maxRetries: Infinity, retryTime: 20 });
    const socket = await client.connectTo('hub', port, '127.0.0.1');
    expect(socket.instance).toBe(a.instance);
    const left: Array<string | undefined> = [];
    client.on('disconnect', (_name, s) => left.push(s.instance));
    await a.close();
    await until(() => !socket.connected);
    expect(socket.instance).toBe(a.instance);
    const b = node('hub', { heartbeatInterval: 0 });
    b.serve('hub', port, '127.0.0.1');
    await once(b, 'listening');
    await until(() => socket.connected, 5000, 'the reconnection');
    expect(socket.instance).toBe(b.instance);
    await b.close();
    await until(() => !socket.connected);
    expect(socket.instance).toBe(b.instance);
    await until(() => left.length === 2);
    expect(left).toEqual([a.instance, b.instance]);
  });
});
