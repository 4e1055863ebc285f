/**
 * Review probes: values kept by a receiver never change afterwards, a sender may reuse its buffer when README says
 * so, and values cross every path exactly. Seeded, byte-for-byte (a hash taken at receive time, checked at the end).
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLinkPair, type Node, type NodeOptions } from '../../src';
import { natsTransport } from '../../src/nats';
import { closeAll, node, serveTcp, socketPath, until } from '../helpers/net';
import { describeNats, startNatsServer, type NatsServer } from '../helpers/natsServer';

afterEach(closeAll);

const QUIET = { heartbeatInterval: 0 };
const pem = (file: string) => readFileSync(join(__dirname, '..', 'fixtures', 'tls', file));

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hash = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

/** Sizes around every threshold (pack limit, slabs, direct body, NATS max_payload), and random ones. */
const EDGES = [0, 1, 5, 1023, 1024, 1025, 2730, 4095, 4096, 8191, 8192, 8193, 16383, 16384, 16385, 32767, 32768, 32769, 65535, 65536, 65537, 100_000, 1_048_571, 1_048_576, 1_048_577];
function sizes(rand: () => number, n: number): number[] {
  const out = [...EDGES];
  while (out.length < n) out.push(rand() < 0.8 ? Math.floor(rand() * 3000) : Math.floor(rand() * 200_000));
  return out;
}
/** 1.2 MiB of seeded noise, from which payloads are cut (copied) at random offsets. */
const NOISE = (() => {
  const rand = prng(42);
  const b = Buffer.allocUnsafe(1200 * 1024);
  for (let i = 0; i < b.length; i++) b[i] = (rand() * 256) | 0;
  return b;
})();
function fill(rand: () => number, size: number): Buffer {
  const at = Math.floor(rand() * (NOISE.length - size));
  return Buffer.from(NOISE.subarray(at, at + size));
}

type Transport = 'tcp' | 'unix' | 'tls' | 'link' | 'nats';

async function pair(transport: Transport, nats?: NatsServer): Promise<{ server: Node; client: Node }> {
  const tls = transport === 'tls';
  const ca = tls ? pem('ca.pem') : undefined;
  const extra = (o: NodeOptions): NodeOptions => (transport === 'nats' ? { ...o, transport: natsTransport({ servers: nats!.url }) } : o);
  const server = node('server', extra({ ...QUIET, ...(tls ? { tls: { key: pem('server-key.pem'), cert: pem('server-cert.pem'), ca } } : {}) }));
  const client = node('client', extra({ ...QUIET, ...(tls ? { tls: { ca } } : {}) }));
  if (transport === 'link') {
    const [a, b] = createLinkPair();
    server.acceptVia(a);
    await client.connectVia('server', b);
  } else if (transport === 'unix') {
    const path = socketPath();
    server.serve('server', path);
    await once(server, 'listening');
    await client.connectTo('server', path);
  } else if (transport === 'nats') {
    server.serve('server');
    await once(server, 'listening');
    await client.connectTo('server');
  } else {
    await client.connectTo('server', await serveTcp(server), '127.0.0.1');
  }
  return { server, client };
}

/**
 * The client sends `n` Buffers (one-way, many in one tick) and asks for as many replies; both sides keep what
 * they receive with its hash; at the end every kept value still has its hash.
 */
async function keepAll(transport: Transport, seed: number, nats?: NatsServer): Promise<void> {
  const { server, client } = await pair(transport, nats);
  const rand = prng(seed);
  const list = sizes(rand, 200);
  const payloads = list.map((s) => fill(rand, s));
  const kept: Array<[Uint8Array, string, string]> = [];
  server.on('message', (m) => {
    const data = m.data as Buffer;
    kept.push([data, hash(data), 'server']);
    if (m.receptive) m.reply(payloads[(data.length * 7) % payloads.length]);
  });
  // One-way: sent in bursts of one tick, then awaited (large ones are not copied: not reused here).
  for (let i = 0; i < payloads.length; i += 20) {
    await Promise.all(payloads.slice(i, i + 20).map((p) => client.sendTo('server', p, { receptive: false })));
  }
  // Receptive: replies of every size land on the client (read-into mode over a socket it dialled).
  for (let i = 0; i < payloads.length; i += 20) {
    const replies = await Promise.all(payloads.slice(i, i + 20).map((p) => client.sendTo<Buffer>('server', p)));
    for (const r of replies) kept.push([r, hash(r), 'client']);
  }
  // A stream of values of every size.
  server.removeAllListeners('message');
  server.on('message', (m) => m.stream(payloads.slice(0, 100)));
  for await (const v of client.iterate<Buffer>('server', null)) kept.push([v, hash(v), 'stream']);
  await until(() => kept.length === payloads.length * 3 + 100, 5_000, 'all values');
  const changed = kept.filter(([v, h]) => hash(v) !== h).map(([v, , where]) => `${where}:${v.length}`);
  expect(changed).toEqual([]);
}

describe('kept values never change', () => {
  it.each(['tcp', 'unix', 'tls', 'link'] as const)('%s', (t) => keepAll(t, 1), 30_000);
});

describeNats('kept values never change (NATS)', () => {
  it.each([64 * 1024, 1024 * 1024])('nats, max_payload %d', async (maxPayload) => keepAll('nats', 2, await startNatsServer({ maxPayload })), 30_000);
});

describe('FrameDecoder: payloads handed out stay what they were (push and read-into, every cut)', () => {
  const { FrameDecoder, encodeFrame } = require('../../src') as typeof import('../../src');
  /** Frames of mixed sizes (most small, some around the slab and direct-body thresholds). */
  function frames(rand: () => number, n: number): Buffer[] {
    const big = [8192, 16384, 32767, 32768, 40000, 65536, 70000, 150_000];
    return Array.from({ length: n }, () => fill(rand, rand() < 0.85 ? Math.floor(rand() * 1500) : big[Math.floor(rand() * big.length)] + Math.floor(rand() * 3) - 1));
  }
  const stream = (payloads: Buffer[]) => Buffer.concat(payloads.flatMap((payload, i) => encodeFrame({ type: 1, flags: 0, id: i, encoding: 0, payload })));
  /** Cuts of every kind: trickles (1–20 bytes), sub-KiB, multi-frame, 64 KiB. */
  function nextCut(rand: () => number): number {
    const r = rand();
    return r < 0.3 ? 1 + Math.floor(rand() * 20) : r < 0.6 ? 1 + Math.floor(rand() * 1023) : r < 0.9 ? 1 + Math.floor(rand() * 9000) : 65536;
  }

  it.each([1, 2, 3, 4])('seed %d', (seed) => {
    const rand = prng(seed);
    const payloads = frames(rand, 400);
    const bytes = stream(payloads);
    for (const mode of ['push', 'readInto'] as const) {
      const got: Array<[Buffer, string]> = [];
      const decoder = new FrameDecoder((f) => got.push([f.payload, hash(f.payload)]));
      for (let at = 0; at < bytes.length; ) {
        const n = Math.min(nextCut(rand), bytes.length - at);
        if (mode === 'push') {
          // A fresh chunk per read, as a socket gives (copied: the decoder may keep views of it).
          decoder.push(Buffer.from(bytes.subarray(at, at + n)));
          at += n;
        } else {
          for (let left = n; left > 0; ) {
            const target = decoder.readTarget();
            const k = Math.min(target.length, left);
            bytes.copy(target, 0, at, at + k);
            at += k;
            left -= k;
            decoder.wrote(k);
          }
        }
      }
      decoder.end();
      expect(got.length).toBe(payloads.length);
      const bad = got.flatMap(([p, h], i) => (hash(p) !== h || !p.equals(payloads[i]) ? [`${mode} #${i} (${p.length})`] : []));
      expect(bad).toEqual([]);
    }
  });
});

/**
 * A sender that reuses one scratch Buffer as README allows: up to 8 KiB at once after `sendTo` returns, larger
 * once its promise resolved; a pulled stream refilling one chunk; a reply from one scratch Buffer.
 */
async function reuse(transport: Transport, nats?: NatsServer): Promise<void> {
  const { server, client } = await pair(transport, nats);
  const rand = prng(7);
  const got: Array<[Buffer, string]> = [];
  const sent: string[] = [];
  server.on('message', (m) => {
    if (m.receptive) return;
    got.push([m.data as Buffer, hash(m.data as Buffer)]);
  });
  const scratch = Buffer.allocUnsafe(100_000);
  const list = sizes(rand, 120);
  const pending: Promise<unknown>[] = [];
  for (const size of list) {
    const view = scratch.subarray(0, size);
    fill(rand, size).copy(view);
    sent.push(hash(view));
    const p = client.sendTo('server', view, { receptive: false });
    if (size > 8192) await p; // larger than 8 KiB: reuse only once it resolved
    else pending.push(p); // up to 8 KiB: reuse at once (the next turn refills it)
  }
  await Promise.all(pending);
  await until(() => got.length === list.length, 5000, 'one-way values');
  expect(got.map(([v, h]) => (hash(v) === h ? h : 'changed'))).toEqual(sent);

  // A pulled stream that refills one chunk before each value (allowed once the next value is asked for).
  server.removeAllListeners('message');
  const streamed: string[] = [];
  server.on('message', (m) =>
    m.stream(
      (function* () {
        for (const size of list) {
          const view = scratch.subarray(0, size);
          fill(rand, size).copy(view);
          streamed.push(hash(view));
          yield view;
        }
      })(),
    ),
  );
  const values: Array<[Buffer, string]> = [];
  for await (const v of client.iterate<Buffer>('server', null)) values.push([v, hash(v)]);
  expect(values.map(([v, h]) => (hash(v) === h ? h : 'changed'))).toEqual(streamed);
}

describe('a sender reusing its buffer when README allows it', () => {
  it.each(['tcp', 'unix', 'tls', 'link'] as const)('%s', (t) => reuse(t), 20_000);
});
describeNats('a sender reusing its buffer (NATS)', () => {
  let server: NatsServer;
  beforeAll(async () => (server = await startNatsServer({ maxPayload: 64 * 1024 })));
  it('nats', () => reuse('nats', server), 20_000);
});

/**
 * (was broken, in the docs) `message.reply(scratch)` with one scratch Buffer refilled per request: `reply` returns
 * at once and nothing tells when a reply over 8 KiB (sent without a copy) was taken, so three replies of 10,000
 * bytes written in one tick all arrived holding the last one's bytes (`[3, 3, 3]` instead of `[1, 2, 3]`). README
 * said when a *sent* Buffer may be reused, nothing about replies. Now README and the TSDoc of `reply` say it:
 * up to 8 KiB it is copied (reuse it at once); larger, never change it after `reply` (reply with a fresh Buffer).
 */
describe('reply from a scratch Buffer', () => {
  const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
  const tsdoc = readFileSync(join(__dirname, '..', '..', 'src', 'node', 'NodeMessage.ts'), 'utf8');

  it('README and the TSDoc of reply say when a replied Buffer may be reused (was broken)', () => {
    const entry = readme.split('\n').find((line) => line.startsWith('- `reply(value): boolean`'))!;
    const section = readme.slice(readme.indexOf('- `reply(value): boolean`'), readme.indexOf('- `error(err): boolean`'));
    expect(entry).toBeDefined();
    expect(section).toMatch(/8 KiB/);
    expect(section).toMatch(/never change it after `reply`/);
    expect(readme).toMatch(/\*\*Writes\.\*\*[^]*`message\.reply`[^]*## Over NATS/);
    expect(tsdoc).toMatch(/8 KiB[^]*must not change after `reply`/);
  });

  it.each(['tcp', 'link'] as const)('up to 8 KiB one scratch Buffer may be reused at once; larger replies are fresh Buffers (%s)', async (t) => {
    const { server, client } = await pair(t);
    const scratch = Buffer.alloc(8192);
    server.on('message', (m) => {
      const [n, size] = m.data as [number, number];
      if (size <= 8192) m.reply(scratch.subarray(0, size).fill(n));
      else m.reply(Buffer.alloc(size, n));
    });
    const asks = [1, 2, 3, 4, 5, 6].map((n) => [n, n % 2 ? 8192 : 10_000] as [number, number]);
    const got = await Promise.all(asks.map((ask) => client.sendTo<Buffer>('server', ask)));
    expect(got.map((b) => [b[0], b[b.length - 1], b.length])).toEqual(asks.map(([n, size]) => [n, n, size]));
  });
});

describe('values cross a connection exactly (end to end, through the writer)', () => {
  const fc = require('fast-check') as typeof import('fast-check');
  /** Deep equality across realms (jest's vm context vs what node:v8 builds): tags, not prototypes. */
  const tag = (x: unknown) => Object.prototype.toString.call(x);
  function same(a: unknown, b: unknown): boolean {
    if (typeof a !== 'object' || a === null) return Object.is(a, b);
    if (typeof b !== 'object' || b === null || tag(a) !== tag(b)) return false;
    if (ArrayBuffer.isView(a)) {
      const x = a as ArrayBufferView, y = b as ArrayBufferView;
      return Buffer.isBuffer(a) === Buffer.isBuffer(b) && Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
    }
    if (a instanceof Date || tag(a) === '[object Date]') return Object.is((a as Date).getTime(), (b as Date).getTime());
    if (tag(a) === '[object Map]') return same([...(a as Map<unknown, unknown>)], [...(b as Map<unknown, unknown>)]);
    const ka = Object.keys(a), kb = Object.keys(b as object);
    return same(ka.length, kb.length) && ka.every((k, i) => k === kb[i] && same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) && (!Array.isArray(a) || (a.length === (b as unknown[]).length));
  }
  const pool = Buffer.from('a pooled buffer: views of it have a byteOffset');
  const shared = new ArrayBuffer(64);
  const leaf = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 3000 }),
    fc.constantFrom('\uD800', 'a\uDFFF', '\uFEFF', '', -0, NaN, Infinity, 5e-324, 1.7976931348623157e308, 2 ** 53 + 2, null, undefined, true),
    fc.double(),
    fc.bigInt(),
    fc.date({ noInvalidDate: true }),
    fc.integer({ min: 0, max: 40 }).map((n) => pool.subarray(n, n + 5)),
    fc.integer({ min: 0, max: 7 }).map((n) => [new Uint8Array(shared, n, 9), new Int16Array(shared, n * 2, 3), new Float64Array(shared, n * 8, 1), new DataView(shared, n, 5)][n % 4]),
  );
  const value = fc.letrec((tie) => ({
    v: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('v'), { maxLength: 5 }), fc.sparseArray(tie('v'), { maxLength: 5 }), fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), tie('v'), { maxKeys: 5 }), fc.array(fc.tuple(leaf, tie('v')), { maxLength: 3 }).map((e) => new Map(e))),
  })).v;

  it.each(['link', 'tcp'] as const)('%s', async (t) => {
    const { server, client } = await pair(t);
    server.on('message', (m) => m.reply(m.data));
    new Uint8Array(shared).forEach((_, i, a) => (a[i] = i * 7));
    const values = fc.sample(value, { numRuns: 400, seed: 11 });
    const back = await Promise.all(values.map((v) => client.sendTo('server', v)));
    const bad = values.flatMap((v, i) => (same(back[i], v) ? [] : [i]));
    expect(bad).toEqual([]);
  });
});

/**
 * (was broken, in the docs) A user codec that encodes into one reused buffer (msgpackr's REUSE_BUFFER_MODE, a
 * hand-written scratch encoder): payloads over 8 KiB are sent without a copy, after `encode` was called again for
 * the next message, so three one-way sends in one tick arrived as three copies of the last value. The Codec docs
 * said "sent as they are, never copied" without saying for how long the bytes must stay. Now they say it.
 */
describe('a codec that encodes into one reused buffer', () => {
  const { Encoding } = require('../../src') as typeof import('../../src');
  const scratch = Buffer.alloc(10_000);
  const reusing = {
    encode: (value: unknown) => ({ encoding: Encoding.BUFFER, payload: scratch.fill(value as number) }),
    decode: (payload: Buffer) => payload[0],
  };
  const copying = { ...reusing, encode: (value: unknown) => ({ encoding: Encoding.BUFFER, payload: Buffer.from(reusing.encode(value).payload) }) };

  it('the Codec docs say how long a payload must stay unchanged (was broken)', () => {
    const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
    const tsdoc = readFileSync(join(__dirname, '..', '..', 'src', 'protocol', 'Serializer.ts'), 'utf8');
    expect(readme.slice(readme.indexOf('## Codecs'), readme.indexOf('## Framing layer'))).toMatch(/over 8 KiB[^]*fresh/);
    expect(tsdoc).toMatch(/payload: Uint8Array/);
    expect(tsdoc.slice(0, tsdoc.indexOf('payload: Uint8Array'))).toMatch(/over 8 KiB[^]*must not change/);
  });

  it('one that copies what it returns: three sends in one tick arrive as sent', async () => {
    const server = node('server', { ...QUIET, codec: copying });
    const client = node('client', { ...QUIET, codec: copying });
    const got: unknown[] = [];
    server.on('message', (m) => got.push(m.data));
    await client.connectTo('server', await serveTcp(server), '127.0.0.1');
    await Promise.all([1, 2, 3].map((n) => client.sendTo('server', n, { receptive: false })));
    await until(() => got.length === 3);
    expect(got).toEqual([1, 2, 3]);
  });
});

describe('broadcast from one scratch Buffer', () => {
  it('up to 8 KiB reused at once after broadcast returns, larger once it resolved: every peer gets every value', async () => {
    const hub = node('hub', QUIET);
    const port = await serveTcp(hub);
    const got = new Map<string, string[]>();
    for (const name of ['a', 'b', 'c']) {
      const leaf = node(name, QUIET);
      got.set(name, []);
      leaf.on('message', (m) => got.get(name)!.push(hash(m.data as Buffer)));
      await leaf.connectTo('hub', port, '127.0.0.1');
    }
    await until(() => ['a', 'b', 'c'].every((name) => hub.get(name)?.connected === true));
    const rand = prng(5);
    const scratch = Buffer.allocUnsafe(70_000);
    const sent: string[] = [];
    const pending: Promise<unknown>[] = [];
    for (const size of sizes(rand, 60).filter((s) => s <= 70_000)) {
      const view = scratch.subarray(0, size);
      fill(rand, size).copy(view);
      sent.push(hash(view));
      const p = hub.broadcast(view, { receptive: false });
      if (size > 8192) await p;
      else pending.push(p);
    }
    await Promise.all(pending);
    await until(() => [...got.values()].every((l) => l.length === sent.length));
    for (const list of got.values()) expect(list).toEqual(sent);
  });
});
