// Review of the latest behaviours (auth order, calls out while draining, get(name), stamped heartbeats, stale Unix
// socket reclaim, CLOSE/ERROR bodies shrunk by halving), used as careless and hostile users would. Each test marked
// "(was broken)" failed before its fix.
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { firstValueFrom } from 'rxjs';
import { FrameDecoder, FrameType, MIN_FRAME_SIZE, PROTOCOL_NAME, PROTOCOL_VERSION, DEFAULT_MAX_FRAME_SIZE, Encoding, type Frame } from '../../src';
import { jsonFrame } from '../../src/internal';
import { closeFrame, encodeError } from '../../src/protocol/control';
import { Heartbeat } from '../../src/node/Heartbeat';
import { closeAll, node, serveTcp, socketPath, staleSocket, until } from '../helpers/net';
import { bytes, handshakeBytes } from '../helpers/raw';

afterEach(closeAll);

const codeOf = (e: unknown) => (e as { code?: unknown }).code;
const stamp = (value: number) => {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(value, 0);
  return b;
};

describe('heartbeat stamps', () => {
  it('(was broken) a PONG echoing no stamp of ours — NaN, ±Infinity, huge, negative, before any PING — gives no RTT', () => {
    jest.useFakeTimers();
    try {
      const ping = jest.fn();
      const beat = new Heartbeat(100, { ping, dead: () => undefined });
      // No PING sent yet: nothing to time (a forged PONG on a node with heartbeats disabled set lastRtt).
      expect(beat.pong(stamp(performance.now() - 5))).toBeNull();
      beat.start();
      jest.advanceTimersByTime(100);
      expect(ping).toHaveBeenCalledTimes(1);
      for (const bogus of [NaN, -Infinity, Infinity, -1e308, 1e308, -1, 0, Number.MIN_VALUE]) {
        expect(beat.pong(stamp(bogus))).toBeNull();
      }
      expect(beat.lastRtt).toBeNull();
      const rtt = beat.pong(ping.mock.calls[0][0] as Buffer);
      expect(rtt).toBeGreaterThanOrEqual(0);
      expect(Number.isFinite(rtt)).toBe(true);
      beat.stop();
    } finally {
      jest.useRealTimers();
    }
  });

  it('PINGs of 0, 8 and 9 bytes: PONGs echo 0, the 8 bytes, and nothing; forged PONGs leave lastRtt sane', async () => {
    const server = node('hub', { heartbeatInterval: 0 });
    const port = await serveTcp(server);
    const pongs: Frame[] = [];
    const decoder = new FrameDecoder((f) => {
      if (f.type === FrameType.PONG) pongs.push({ ...f, payload: Buffer.from(f.payload) });
    });
    const raw = connect(port, '127.0.0.1').on('data', (d) => decoder.push(d));
    raw.on('error', () => undefined);
    await once(raw, 'connect');
    raw.write(handshakeBytes('raw'));
    await until(() => server.get('raw') !== undefined);
    const eight = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
    for (const [id, payload] of [[0, Buffer.alloc(0)], [0, eight], [7, Buffer.alloc(9, 1)], [9, eight]] as const) {
      raw.write(bytes({ type: FrameType.PING, flags: 0, id, encoding: Encoding.BUFFER, payload }));
    }
    // Forged PONGs, id 0, with stamps of nothing the server sent (its heartbeat is off): no RTT comes of them.
    for (const v of [NaN, -Infinity, -1e308, 0, performance.now()]) {
      raw.write(bytes({ type: FrameType.PONG, flags: 0, id: 0, encoding: Encoding.BUFFER, payload: stamp(v) }));
    }
    await until(() => pongs.length === 4);
    expect(pongs.map((p) => [p.id, [...p.payload]])).toEqual([
      [0, []],
      [0, [...eight]],
      [7, []],
      [9, [...eight]],
    ]);
    expect(server.stats().lastRtt).toBeNull();
    expect(server.errors).toEqual([]);
    raw.destroy();
  });

  it('two real nodes time their heartbeats: a finite, small RTT', async () => {
    const server = node('hub', { heartbeatInterval: 30 });
    const client = node('c', { heartbeatInterval: 30 });
    const port = await serveTcp(server);
    await client.connectTo('hub', port, '127.0.0.1');
    await until(() => client.stats().lastRtt !== null && server.stats().lastRtt !== null);
    for (const n of [client, server]) {
      const rtt = n.stats().lastRtt!;
      expect(rtt).toBeGreaterThanOrEqual(0);
      expect(rtt).toBeLessThan(5000);
    }
  });
});

describe('auth order', () => {
  const serveWith = async (secret?: string | Buffer) => {
    const server = node('hub', secret === undefined ? {} : { auth: { secret } });
    server.on('message', (m) => m.reply('ok'));
    return { server, port: await serveTcp(server) };
  };

  it('a one-byte secret (string and Buffer) works both ways; a different byte is ERR_IPC_AUTH on both ends, not retried', async () => {
    const { server, port } = await serveWith('x');
    const good = node('good', { auth: { secret: Buffer.from('x') } });
    await good.connectTo('hub', port, '127.0.0.1');
    await expect(good.sendTo('hub', 1)).resolves.toBe('ok');
    const bad = node('bad', { auth: { secret: 'y' }, maxRetries: 5 });
    await expect(bad.connectTo('hub', port, '127.0.0.1')).rejects.toMatchObject({ code: 'ERR_IPC_AUTH' });
    await until(() => server.errors.length > 0);
    expect(server.errors.map(codeOf)).toEqual(['ERR_IPC_AUTH']);
    expect(server.get('bad')).toBeUndefined();
  });

  it('one side without a secret: ERR_IPC_AUTH whichever it is; neither side with one: connected', async () => {
    const { port } = await serveWith('s3cret');
    await expect(node('plain').connectTo('hub', port, '127.0.0.1')).rejects.toMatchObject({ code: 'ERR_IPC_AUTH' });
    const open = await serveWith();
    await expect(node('secretive', { auth: { secret: 's3cret' } }).connectTo('hub', open.port, '127.0.0.1')).rejects.toMatchObject({ code: 'ERR_IPC_AUTH' });
    const both = node('plain2');
    await both.connectTo('hub', open.port, '127.0.0.1');
    await expect(both.sendTo('hub', 1)).resolves.toBe('ok');
  });

  it('with a secret, a taken name is told only after a good proof: a wrong secret gets ERR_IPC_AUTH, the right one NAME_IN_USE', async () => {
    const { port } = await serveWith('k');
    await node('twin', { auth: { secret: 'k' } }).connectTo('hub', port, '127.0.0.1');
    await expect(node('twin', { auth: { secret: 'nope' } }).connectTo('hub', port, '127.0.0.1')).rejects.toMatchObject({ code: 'ERR_IPC_AUTH' });
    await expect(node('twin', { auth: { secret: 'k' } }).connectTo('hub', port, '127.0.0.1')).rejects.toMatchObject({ code: 'ERR_IPC_NAME_IN_USE' });
  });

  it('a stranger who sends a hello with a nonce gets a hello without proof, then a CLOSE for a bogus proof (no hang, no proof leaked)', async () => {
    const { server, port } = await serveWith('k');
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((f) => frames.push({ ...f, payload: Buffer.from(f.payload) }));
    const raw: Socket = connect(port, '127.0.0.1').on('data', (d) => decoder.push(d));
    raw.on('error', () => undefined);
    await once(raw, 'connect');
    const hello = { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name: 'stranger', maxFrameSize: DEFAULT_MAX_FRAME_SIZE, nonce: Buffer.alloc(32).toString('base64') };
    raw.write(bytes(jsonFrame(FrameType.HANDSHAKE, 1, hello)));
    await until(() => frames.length === 1);
    const body = JSON.parse(Buffer.from(frames[0].payload).toString()) as Record<string, unknown>;
    expect(frames[0]).toMatchObject({ type: FrameType.HANDSHAKE, id: 2 });
    expect(body.proof).toBeUndefined();
    expect(typeof body.nonce).toBe('string');
    raw.write(bytes(jsonFrame(FrameType.HANDSHAKE, 3, { proof: 'AAAA' })));
    await once(raw, 'close');
    expect(frames.at(-1)!.type).toBe(FrameType.CLOSE);
    expect(frames.some((f) => f.type === FrameType.HANDSHAKE && f.id === 4)).toBe(false);
    await until(() => server.errors.length > 0);
    expect(server.errors.map(codeOf)).toEqual(['ERR_IPC_AUTH']);
  });

  it('a fake server that skips the proof in step 4 is refused by a client with a secret (ERR_IPC_AUTH, not connected)', async () => {
    const fake = createServer((socket) => {
      socket.on('error', () => undefined);
      const decoder = new FrameDecoder((f) => {
        if (f.type !== FrameType.HANDSHAKE) return;
        const nonce = Buffer.alloc(32, 2).toString('base64');
        if (f.id === 1) socket.write(bytes(jsonFrame(FrameType.HANDSHAKE, 2, { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name: 'hub', maxFrameSize: DEFAULT_MAX_FRAME_SIZE, nonce })));
        if (f.id === 3) socket.write(bytes(jsonFrame(FrameType.HANDSHAKE, 4, {})));
      });
      socket.on('data', (d) => decoder.push(d));
    });
    fake.listen(0, '127.0.0.1');
    await once(fake, 'listening');
    const port = (fake.address() as { port: number }).port;
    const client = node('c', { auth: { secret: 'k' } });
    await expect(client.connectTo('hub', port, '127.0.0.1')).rejects.toMatchObject({ code: 'ERR_IPC_AUTH' });
    expect(client.get('hub')?.connected ?? false).toBe(false);
    await client.close();
    await new Promise((r) => fake.close(r));
  });
});

describe('close({ drain }) while answering', () => {
  /** x serves y's requests; x's handler calls z. */
  const trio = async () => {
    const x = node('x');
    const y = node('y');
    const z = node('z');
    const portX = await serveTcp(x);
    const portZ = await serveTcp(z);
    await y.connectTo('x', portX, '127.0.0.1');
    await x.connectTo('z', portZ, '127.0.0.1');
    return { x, y, z };
  };

  it('a handler that calls out forever does not hold the drain past its deadline; its late calls fail ERR_IPC_CLOSED', async () => {
    const { x, y, z } = await trio();
    z.on('message', (m) => setTimeout(() => m.reply('z'), 20));
    const results: unknown[] = [];
    let stop = false;
    x.on('message', async (m) => {
      while (!stop) {
        try {
          results.push(await x.sendTo('z', 'again'));
        } catch (error) {
          results.push(codeOf(error));
          break;
        }
      }
      m.reply('done');
    });
    const outer = y.sendTo('x', 'go').catch((e: unknown) => codeOf(e));
    await until(() => results.length > 0);
    const started = performance.now();
    await x.close({ drain: 300 });
    const took = performance.now() - started;
    stop = true;
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(3000);
    // The loop ran during the drain, then failed with a clear error (closed, or the connection to z gone).
    await until(() => typeof results.at(-1) === 'string');
    expect(['ERR_IPC_CLOSED', 'ERR_IPC_PEER_DISCONNECTED', 'ERR_IPC_NOT_CONNECTED']).toContain(results.at(-1));
    expect(results.filter((r) => r === 'z').length).toBeGreaterThan(3);
    expect(['ERR_IPC_PEER_DISCONNECTED', 'ERR_IPC_CLOSED']).toContain(await outer);
  });

  it('a draining node that answers nothing refuses its own new calls at once (sendTo, request$, iterate, pingTo)', async () => {
    const { x, z } = await trio();
    z.on('message', (m) => m.reply('z'));
    // Hold the drain open with a call of x's own (in flight, not answering anyone).
    z.removeAllListeners('message');
    z.on('message', (m) => setTimeout(() => m.reply('late'), 200));
    const held = x.sendTo('z', 'held');
    const closing = x.close({ drain: 2000 });
    await expect(x.sendTo('z', 1)).rejects.toMatchObject({ code: 'ERR_IPC_CLOSED' });
    await expect(x.pingTo('z')).rejects.toMatchObject({ code: 'ERR_IPC_CLOSED' });
    await expect(firstValueFrom(x.request$('z', 1))).rejects.toMatchObject({ code: 'ERR_IPC_CLOSED' });
    await expect(x.iterate('z', 1).next()).rejects.toMatchObject({ code: 'ERR_IPC_CLOSED' });
    await expect(held).resolves.toBe('late');
    await closing;
  });

  it('a handler calling a peer that is itself draining gets a clear refusal, and both drains end', async () => {
    const { x, y, z } = await trio();
    await y.connectTo('z', (z.server!.address() as { port: number }).port, '127.0.0.1');
    // z drains while it answers a slow request of y's.
    z.on('message', (m) => (m.data === 'slow' ? setTimeout(() => m.reply('slow done'), 400) : m.reply('z')));
    const slow = y.sendTo('z', 'slow');
    await until(() => (z.get('y')?.connection?.inbound.size ?? 0) > 0);
    const zClosing = z.close({ drain: 2000 });
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    x.on('message', async (m) => {
      await gate;
      m.reply(await x.sendTo('z', 'while you drain').catch((e: unknown) => codeOf(e)));
    });
    const outer = y.sendTo('x', 'go');
    await until(() => (x.get('y')?.connection?.inbound.size ?? 0) > 0);
    const xClosing = x.close({ drain: 2000 });
    open();
    expect(['ERR_IPC_CLOSED', 'ERR_IPC_NOT_CONNECTED']).toContain(await outer);
    await expect(slow).resolves.toBe('slow done');
    await Promise.all([zClosing, xClosing]);
  });
});

describe('stale Unix socket reclaim', () => {
  it('two reclaimers beside a live server: both fail EADDRINUSE, the live one keeps its file and answers', async () => {
    const path = socketPath();
    const live = node('hub');
    live.on('message', (m) => m.reply('live'));
    live.serve('hub', path);
    await once(live, 'listening');
    const others = [node('hub'), node('hub')];
    others.forEach((o) => o.serve('hub', path));
    await until(() => others.every((o) => o.errors.length > 0));
    for (const o of others) expect(o.errors.map(codeOf)).toEqual(['EADDRINUSE']);
    const client = node('c');
    await client.connectTo('hub', path);
    await expect(client.sendTo('hub', 1)).resolves.toBe('live');
  });

  it('three reclaimers of one stale file: exactly one serves, the others fail EADDRINUSE, no orphan', async () => {
    const path = socketPath();
    await staleSocket(path);
    const servers = ['a', 'b', 'c'].map((tag) => {
      const s = node('hub');
      s.on('message', (m) => m.reply(tag));
      s.serve('hub', path);
      return s;
    });
    await until(() => servers.every((s) => s.server?.listening || s.errors.length > 0));
    const winners = servers.filter((s) => s.server?.listening);
    expect(winners.length).toBe(1);
    for (const s of servers) if (s !== winners[0]) expect(s.errors.map(codeOf)).toEqual(['EADDRINUSE']);
    const client = node('c');
    await client.connectTo('hub', path);
    await expect(client.sendTo('hub', 1)).resolves.toBe(['a', 'b', 'c'][servers.indexOf(winners[0])]);
  });
});

describe('CLOSE and ERROR bodies within 1 KiB', () => {
  const worst = ['\u0001'.repeat(100_000), '\ud83d'.repeat(5000), '😀'.repeat(3000), 'a'.repeat(1_000_000), ''];
  it.each(worst.map((m, i) => [i, m]))('message #%i fits, stays valid JSON, and keeps a prefix', (_i, message) => {
    const close = closeFrame({ code: 'ERR_IPC_CLOSED', message: message as string, reconnect: true });
    expect(close.payload.length).toBeLessThanOrEqual(MIN_FRAME_SIZE);
    const body = JSON.parse(Buffer.from(close.payload as Uint8Array).toString()) as { message: string; code: string };
    expect((message as string).startsWith(body.message)).toBe(true);
    expect(body.code).toBe('ERR_IPC_CLOSED');
    const error = encodeError({ name: '\u0002'.repeat(500), message: message as string, code: '\u0003'.repeat(500), stack: 'x'.repeat(5000) }, MIN_FRAME_SIZE);
    expect(error.length).toBeLessThanOrEqual(MIN_FRAME_SIZE);
    expect(() => JSON.parse(error.toString())).not.toThrow();
  });

  it('a handler throwing an error with a huge control-character message reaches a 1 KiB-frame requester as a RemoteError', async () => {
    const server = node('hub');
    server.on('message', () => {
      throw Object.assign(new Error('\u0001'.repeat(50_000)), { code: 'E_BIG' });
    });
    const port = await serveTcp(server);
    const client = node('c', { maxFrameSize: MIN_FRAME_SIZE });
    await client.connectTo('hub', port, '127.0.0.1');
    await expect(client.sendTo('hub', 1)).rejects.toMatchObject({ remoteCode: 'E_BIG' });
  });
});

describe('get(name)', () => {
  it('throws a TypeError for a non-string, and is undefined for a stranger, a closed node, and its own name', async () => {
    const n = node('n');
    expect(() => n.get(42 as unknown as string)).toThrow(TypeError);
    expect(n.get('nobody')).toBeUndefined();
    expect(n.get('n')).toBeUndefined();
    await n.close();
    expect(n.get('nobody')).toBeUndefined();
  });
});
