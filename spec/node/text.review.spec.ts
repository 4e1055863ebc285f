/**
 * Review probes for "short text straight into the writer's slab" (Serializer.encodeWire / FrameWriter.packText /
 * Connection.checkSize / FrameDecoder byte-by-byte header). Each probe uses the public API as a careless or hostile
 * user would. The one probe that failed when written is marked `(was broken)` in its title.
 */
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { asyncScheduler, firstValueFrom, lastValueFrom, tap, toArray } from 'rxjs';
import {
  createLinkPair,
  defaultCodec,
  encodeHeader,
  Encoding,
  ErrorCode,
  FrameDecoder,
  FrameFlags,
  FrameType,
  HEADER_SIZE,
  Serializer,
  type Codec,
  type EncodedPayload,
  type Frame,
  type Node,
  type NodeMessage,
  type NodeOptions,
} from '../../src';
import { natsTransport } from '../../src/nats';
import { bytesAsHex, closeAll, delay, node, serveTcp, socketPath, until } from '../helpers/net';
import { describeNats, startNatsServer, type NatsServer } from '../helpers/natsServer';
import { bytes, handshakeBytes, rawClient } from '../helpers/raw';

afterEach(closeAll);

type Transport = 'link' | 'tcp' | 'unix';
const QUIET = { heartbeatInterval: 0 };

/** Links `client` to `server` over `transport`; resolves with the server-side net.Socket when there is one. */
async function connect(server: Node, client: Node, transport: Transport): Promise<Socket | null> {
  if (transport === 'link') {
    const [a, b] = createLinkPair();
    server.acceptVia(a);
    await client.connectVia(server.name, b);
    return null;
  }
  const accepted = new Promise<Socket>((resolve) => {
    const watch = () => server.server!.once('connection', resolve);
    if (server.server) watch();
    else server.once('listening', watch);
  });
  if (transport === 'tcp') {
    await client.connectTo(server.name, await serveTcp(server), '127.0.0.1');
  } else {
    const path = socketPath();
    server.serve(server.name, path);
    await once(server, 'listening');
    await client.connectTo(server.name, path);
  }
  return accepted;
}

/** Two nodes; the server echoes every receptive message. */
async function echoPair(transport: Transport, serverOptions: NodeOptions = {}, clientOptions: NodeOptions = {}) {
  const server = node('server', { ...QUIET, ...serverOptions });
  const client = node('client', { ...QUIET, ...clientOptions });
  server.on('message', (m) => m.receptive && m.reply(m.data));
  const raw = await connect(server, client, transport);
  return { server, client, raw };
}

/** Two cross-wired Duplexes (node:stream's duplexPair is Node 22+), each delivering on a later macrotask. */
function duplexPair(): [Duplex, Duplex] {
  const sides: Duplex[] = [];
  const make = (other: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        const copy = Buffer.from(chunk);
        setImmediate(() => {
          other().push(copy);
          callback();
        });
      },
      final(callback) {
        setImmediate(() => other().push(null));
        callback();
      },
    });
  sides.push(make(() => sides[1]), make(() => sides[0]));
  return [sides[0], sides[1]];
}

const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');
const TRANSPORTS: Transport[] = ['link', 'tcp', 'unix'];

// ---------------------------------------------------------------------------------------------------------------
// Values of every width and length around the limits
// ---------------------------------------------------------------------------------------------------------------

const widths: Array<[string, string]> = [
  ['1-byte', 'a'],
  ['2-byte', 'é'],
  ['3-byte', '€'],
  ['4-byte (surrogate pair)', '🎉'],
  ['NUL', '\0'],
];

/** Texts of every width, with lengths (in UTF-16 units and in bytes) around 0, 1, TEXT_LIMIT, 2×, 8 KiB. */
function texts(): Array<[string, string]> {
  const out: Array<[string, string]> = [['empty', '']];
  for (const [width, ch] of widths) {
    for (const units of [1, 2, 2729, 2730, 2731, 5460, 5462]) {
      const text = ch.repeat(Math.max(1, Math.floor(units / ch.length)));
      out.push([`${width} × ${text.length} units (${utf8(text)} bytes)`, text]);
    }
  }
  // Byte lengths around PACK_LIMIT (8 KiB) with the window's 4 bytes on top.
  for (const n of [8186, 8188, 8190, 8191, 8192, 8193]) out.push([`ASCII of ${n} bytes`, 'x'.repeat(n)]);
  out.push(['2,729 "€" then one 4-byte (8,191 bytes in 2,731 units)', '€'.repeat(2729) + '🎉']);
  out.push(['2,728 "€" then one 4-byte (8,188 bytes in 2,730 units)', '€'.repeat(2728) + '🎉']);
  out.push(['NUL bytes inside text', 'a\0b\0\0c' + '\0'.repeat(2000) + '€']);
  out.push(['BOM and U+FFFD', '\uFEFFx\uFFFD']);
  return out;
}

describe.each(TRANSPORTS)('text arrives unchanged (%s)', (transport) => {
  it('one-way, sendTo, request$ and iterate, for every width and length around the limits', async () => {
    const { server, client } = await echoPair(transport);
    const arrived: unknown[] = [];
    server.on('message', (m) => !m.receptive && arrived.push(m.data));
    for (const [label, text] of texts()) {
      await client.sendTo('server', text, { receptive: false });
      await until(() => arrived.length === 1, 5000, label);
      expect([label, arrived.pop()]).toEqual([label, text]);
      expect([label, await client.sendTo('server', text)]).toEqual([label, text]);
      expect([label, await firstValueFrom(client.request$('server', text))]).toEqual([label, text]);
      const it = client.iterate('server', text);
      expect([label, (await it.next()).value]).toEqual([label, text]);
      await it.return?.();
    }
    expect(client.stats().pendingRequests).toBe(0);
  });

  it('lone surrogates (anywhere, any length around 2,730) arrive unchanged, top level and inside plain data', async () => {
    const { server, client } = await echoPair(transport);
    const cases = [
      '\uD800',
      '\uDFFF',
      'a\uDC00b',
      '🎉'.slice(0, 1),
      '€'.repeat(2729) + '\uD800',
      '\uDBFF' + '€'.repeat(2730),
      'x'.repeat(2731) + '\uDC00',
      '\uDC00\uD800', // reversed pair: two lone surrogates
    ];
    for (const text of cases) {
      await expect(client.sendTo('server', text)).resolves.toBe(text);
      await expect(client.sendTo('server', { text, list: [text] })).resolves.toEqual({ text, list: [text] });
      const got: unknown[] = [];
      server.once('message', (m) => got.push(m.data));
      await client.sendTo('server', text, { receptive: false });
      await until(() => got.length === 1);
      expect(got[0]).toBe(text);
    }
  });

  it('plain data whose JSON is 2,729 / 2,730 / 2,731 characters (and wide), and JSON-looking strings', async () => {
    const { client } = await echoPair(transport);
    // {"t":"…"} is 8 characters around the text
    for (const n of [2721, 2722, 2723, 2724]) {
      for (const ch of ['a', '€', '\0', '"', '\\', '\n']) {
        // JSON escapes `"`, `\`, `\n` (2 chars) and NUL (6 chars): the JSON length is then far from n + 8
        const value = { t: ch.repeat(n) };
        await expect(client.sendTo('server', value)).resolves.toEqual(value);
      }
    }
    await expect(client.sendTo('server', ['€'.repeat(1364), '€'.repeat(1359)])).resolves.toEqual(['€'.repeat(1364), '€'.repeat(1359)]);
    await expect(client.sendTo('server', '{"a":1}')).resolves.toBe('{"a":1}');
    await expect(client.sendTo('server', 'null')).resolves.toBe('null');
    await expect(client.sendTo('server', '')).resolves.toBe('');
    await expect(client.sendTo('server', [])).resolves.toEqual([]);
    await expect(client.sendTo('server', {})).resolves.toEqual({});
    await expect(client.sendTo('server', { ['€'.repeat(1000)]: '€'.repeat(1000), '': [null, true, 1.5, -2] })).resolves.toEqual({
      ['€'.repeat(1000)]: '€'.repeat(1000),
      '': [null, true, 1.5, -2],
    });
  });

  it('message.stream of strings (StreamResponder) reaches request$ and iterate unchanged, in order', async () => {
    const server = node('server', QUIET);
    const client = node('client', QUIET);
    const values = [...texts().map(([, t]) => t), { t: '€'.repeat(2700) }, '\uD800x'];
    server.on('message', (m) => m.stream(values));
    await connect(server, client, transport);
    expect(await lastValueFrom(client.request$('server', 'go', { window: 3 }).pipe(toArray()))).toEqual(values);
    const got: unknown[] = [];
    for await (const v of client.iterate('server', 'go', { window: 2 })) got.push(v);
    expect(got).toEqual(values);
    await until(() => server.stats().openStreams === 0);
    expect(client.stats().pendingRequests).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Many texts in one tick: the slab boundary
// ---------------------------------------------------------------------------------------------------------------

describe.each(['tcp', 'unix'] as const)('many texts in one tick (%s)', (transport) => {
  it('1,000 texts of 2,730 "€" (8,190 bytes) written synchronously arrive byte-identical and in order', async () => {
    const { server, client } = await echoPair(transport);
    const arrived: string[] = [];
    server.on('message', (m) => !m.receptive && arrived.push(m.data as string));
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 1000; i++) {
      const tag = String(i).padStart(4, '0');
      sends.push(client.sendTo('server', tag + '€'.repeat(2726), { receptive: false }));
    }
    await Promise.all(sends);
    await until(() => arrived.length === 1000, 20_000, '1,000 texts');
    for (let i = 0; i < 1000; i++) {
      const text = arrived[i];
      if (text !== String(i).padStart(4, '0') + '€'.repeat(2726)) throw new Error(`text ${i} differs: ${text.slice(0, 8)}… (${text.length} units)`);
    }
  });

  it('texts of varying width and length interleaved with small and large Buffers and numbers keep their order', async () => {
    const { server, client } = await echoPair(transport);
    const arrived: unknown[] = [];
    server.on('message', (m) => !m.receptive && arrived.push(m.data));
    const sent: unknown[] = [];
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 600; i++) {
      let value: unknown;
      switch (rnd(6)) {
        case 0:
          value = Buffer.alloc(1 + rnd(9000), i & 0xff); // some above PACK_LIMIT (written apart)
          break;
        case 1:
          value = i;
          break;
        case 2:
          value = { i, t: '日本'.repeat(rnd(1300)) };
          break;
        default:
          value = `${i}:` + ['a', 'é', '€', '🎉'][rnd(4)].repeat(rnd(2700));
      }
      sent.push(value);
      sends.push(client.sendTo('server', value, { receptive: false }));
    }
    await Promise.all(sends);
    await until(() => arrived.length === sent.length, 20_000, 'all values');
    expect(arrived.map(bytesAsHex)).toEqual(sent.map(bytesAsHex));
  });

  it('200 receptive request$ (4-byte WINDOW) and sendTo of wide text in one tick: every answer matches its request', async () => {
    const { client } = await echoPair(transport);
    const calls: Array<Promise<unknown>> = [];
    const expected: string[] = [];
    for (let i = 0; i < 200; i++) {
      const text = `${i}|` + (i % 2 ? '€' : '🎉').repeat(1300 + (i % 17));
      expected.push(text);
      calls.push(i % 3 ? firstValueFrom(client.request$('server', text)) : client.sendTo('server', text));
    }
    expect(await Promise.all(calls)).toEqual(expected);
    expect(client.stats().pendingRequests).toBe(0);
  });

  it('a tick of texts whose total passes the high-water mark: one-way senders are not stalled (drain arrives)', async () => {
    const { server, client } = await echoPair(transport);
    let n = 0;
    server.on('message', (m) => !m.receptive && n++);
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) sends.push(client.sendTo('server', '€'.repeat(2730), { receptive: false, timeout: 10_000 }));
    await Promise.all(sends);
    await until(() => n === 300, 10_000, '300 one-way texts');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Sizes: the peer's maxFrameSize, the WINDOW, stats
// ---------------------------------------------------------------------------------------------------------------

describe.each(TRANSPORTS)('text against a peer maxFrameSize of 1,024 bytes (%s)', (transport) => {
  async function small() {
    const server = node('server', { ...QUIET, maxFrameSize: 1024 });
    const client = node('client', QUIET);
    server.on('message', (m) => (m.data === 'stream' ? m.stream(['€'.repeat(341), '€'.repeat(342)]) : m.receptive && m.reply(m.data)));
    await connect(server, client, transport);
    return { server, client };
  }

  it('sendTo (no WINDOW): 341 "€" (1,023 B) and 1,024 ASCII pass, 342 "€" and 1,025 ASCII are refused before sending', async () => {
    const { server, client } = await small();
    await expect(client.sendTo('server', '€'.repeat(341))).resolves.toBe('€'.repeat(341));
    await expect(client.sendTo('server', 'x'.repeat(1024))).resolves.toBe('x'.repeat(1024));
    await expect(client.sendTo('server', '€'.repeat(342))).rejects.toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE });
    await expect(client.sendTo('server', 'x'.repeat(1025))).rejects.toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE });
    await expect(client.sendTo('server', '€'.repeat(342), { receptive: false })).rejects.toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE });
    // {"t":"…"}: 8 characters around the text
    await expect(client.sendTo('server', { t: '€'.repeat(338) })).resolves.toEqual({ t: '€'.repeat(338) }); // 1,022 bytes
    await expect(client.sendTo('server', { t: '€'.repeat(339) })).rejects.toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE }); // 1,025
    expect(client.stats().pendingRequests).toBe(0);
    expect(server.errors).toEqual([]);
    await expect(client.sendTo('server', 'after')).resolves.toBe('after');
  });

  it('request$ and iterate carry a 4-byte WINDOW: 340 "€" (1,020 + 4) pass, 341 "€" (1,023 + 4) and 1,021 ASCII are refused', async () => {
    const { server, client } = await small();
    await expect(firstValueFrom(client.request$('server', '€'.repeat(340)))).resolves.toBe('€'.repeat(340));
    await expect(firstValueFrom(client.request$('server', 'x'.repeat(1020)))).resolves.toBe('x'.repeat(1020));
    await expect(firstValueFrom(client.request$('server', '€'.repeat(341)))).rejects.toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE });
    await expect(firstValueFrom(client.request$('server', 'x'.repeat(1021)))).rejects.toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE });
    const ok = client.iterate('server', '€'.repeat(340));
    await expect(ok.next()).resolves.toEqual({ done: false, value: '€'.repeat(340) });
    await ok.return?.();
    const over = client.iterate('server', '€'.repeat(341));
    await expect(over.next()).rejects.toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE });
    // request$ with receptive: false carries no window: 341 "€" passes
    await expect(firstValueFrom(client.request$('server', '€'.repeat(341), { receptive: false }), { defaultValue: 'none' })).resolves.toBeUndefined();
    expect(client.stats().pendingRequests).toBe(0);
    expect(server.errors).toEqual([]);
    await expect(client.sendTo('server', 'after')).resolves.toBe('after');
  });

  it('the peer replying or streaming text too large for the requester fails that request only, no slot leaks', async () => {
    const server = node('server', QUIET);
    const client = node('client', { ...QUIET, maxFrameSize: 1024 });
    server.on('message', (m) =>
      m.data === 'stream' ? m.stream(['€'.repeat(341), '€'.repeat(342)]) : m.reply(m.data === 'big' ? '€'.repeat(342) : '€'.repeat(341)),
    );
    await connect(server, client, transport);
    await expect(client.sendTo('server', 'ok')).resolves.toBe('€'.repeat(341));
    // The responder's reply is refused on its side: the requester gets a RemoteError carrying that code.
    const tooLarge = { code: ErrorCode.REMOTE, remoteCode: ErrorCode.FRAME_TOO_LARGE };
    await expect(client.sendTo('server', 'big')).rejects.toMatchObject(tooLarge);
    const viaRx: unknown[] = [];
    await expect(lastValueFrom(client.request$('server', 'stream').pipe(tap((v) => viaRx.push(v))))).rejects.toMatchObject(tooLarge);
    expect(viaRx).toEqual(['€'.repeat(341)]);
    const streamed: unknown[] = [];
    try {
      for await (const x of client.iterate('server', 'stream')) streamed.push(x);
    } catch (error) {
      streamed.push((error as unknown as { remoteCode: string }).remoteCode);
    }
    expect(streamed).toEqual(['€'.repeat(341), ErrorCode.FRAME_TOO_LARGE]);
    expect(server.errors.map((e) => (e as unknown as { code: string }).code).filter((c) => c !== ErrorCode.FRAME_TOO_LARGE)).toEqual([]);
    await until(() => server.stats().openStreams === 0);
    expect(client.stats().pendingRequests).toBe(0);
    await expect(client.sendTo('server', 'ok')).resolves.toBe('€'.repeat(341));
  });
});

describe('broadcast of text', () => {
  it('to peers over TCP, Unix and an in-memory link: every one gets the same text; one with a 1 KiB limit refuses only its copy', async () => {
    const hub = node('hub', QUIET);
    const port = await serveTcp(hub);
    const peers: Node[] = [];
    for (const [name, how, options] of [
      ['t1', 'tcp', {}],
      ['t2', 'tcp', {}],
      ['small', 'tcp', { maxFrameSize: 1024 }],
      ['mem', 'link', {}],
    ] as const) {
      const p = node(name, { ...QUIET, ...options });
      p.on('message', (m) => m.reply([p.name, m.data]));
      if (how === 'link') {
        const [a, b] = createLinkPair();
        hub.acceptVia(a);
        await p.connectVia('hub', b);
      } else {
        await p.connectTo('hub', port, '127.0.0.1');
      }
      peers.push(p);
    }
    await until(() => hub.stats().peers['server:small'] !== undefined);
    const text = '€'.repeat(2000) + '🎉';
    const outcomes = await hub.broadcastSettled(text, { timeout: 5000 });
    const byName = Object.fromEntries(outcomes.map((o) => [o.name, o.status === 'fulfilled' ? o.value : (o.reason as unknown as { code: string }).code]));
    expect(byName).toEqual({ t1: ['t1', text], t2: ['t2', text], small: ErrorCode.FRAME_TOO_LARGE, mem: ['mem', text] });
    const ok = await hub.broadcast('€'.repeat(300), { filter: /^t/ });
    expect(ok).toEqual([
      ['t1', '€'.repeat(300)],
      ['t2', '€'.repeat(300)],
    ]);
    const got: unknown[] = [];
    peers.forEach((p) => p.on('message', (m) => !m.receptive && got.push([p.name, m.data])));
    await hub.broadcast('€'.repeat(341), { receptive: false });
    await until(() => got.length === 4);
    expect(got.sort()).toEqual([
      ['mem', '€'.repeat(341)],
      ['small', '€'.repeat(341)],
      ['t1', '€'.repeat(341)],
      ['t2', '€'.repeat(341)],
    ]);
    expect(hub.stats().pendingRequests).toBe(0);
  });
});

describe.each(['tcp', 'unix', 'link'] as const)('stats() byte counters against the bytes on the wire (%s)', (transport) => {
  it('bytesOut grows by 16 + UTF-8 length per text frame (+4 with a WINDOW), and equals what the peer counts and reads', async () => {
    const { server, client, raw } = await echoPair(transport);
    const socket = client.get('server')!;
    const before = socket.stats();
    const sent: string[] = [];
    server.on('message', (m) => !m.receptive && sent.push(m.data as string));
    const one = '€'.repeat(2730);
    await client.sendTo('server', one, { receptive: false });
    await until(() => sent.length === 1);
    let after = socket.stats();
    expect(after.bytesOut - before.bytesOut).toBe(HEADER_SIZE + 8190);
    expect(after.framesOut - before.framesOut).toBe(1);
    const wide = '🎉é'.repeat(100); // 600 bytes, 300 units
    await firstValueFrom(client.request$('server', wide));
    const later = socket.stats();
    expect(later.bytesOut - after.bytesOut).toBe(HEADER_SIZE + 4 + 600);
    expect(later.bytesIn - after.bytesIn).toBe(HEADER_SIZE + 600);
    // many in one tick, across slabs
    await Promise.all(Array.from({ length: 40 }, (_, i) => client.sendTo('server', `${i}` + '€'.repeat(2700), { receptive: false })));
    await until(() => sent.length === 41);
    after = socket.stats();
    const total = server.stats().peers['server:client'];
    expect(total.bytesIn).toBe(after.bytesOut);
    expect(total.framesIn).toBe(after.framesOut);
    if (raw) {
      await until(() => raw.bytesRead === after.bytesOut, 2000, `raw.bytesRead (${raw.bytesRead}) = bytesOut (${after.bytesOut})`);
      expect(raw.bytesWritten).toBe(total.bytesOut);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Codecs
// ---------------------------------------------------------------------------------------------------------------

describe.each(['tcp', 'link'] as const)('codecs (%s)', (transport) => {
  it('a custom codec gets bytes (Buffers) to decode, never a string, and its own bytes are sent as they are', async () => {
    const seen: string[] = [];
    const codec: Codec = {
      encode(value: unknown): EncodedPayload {
        const payload = defaultCodec.encode(value);
        seen.push(`encode→${Buffer.isBuffer(payload.payload) ? 'Buffer' : typeof payload.payload}`);
        return payload;
      },
      decode(payload: Buffer, encoding: number): unknown {
        seen.push(`decode(${Buffer.isBuffer(payload) ? 'Buffer' : typeof payload})`);
        return defaultCodec.decode(payload, encoding);
      },
    };
    const { client } = await echoPair(transport, { codec }, { codec });
    for (const value of ['', 'x', '€'.repeat(2730), { a: '€'.repeat(100) }, '\uD800']) {
      await expect(client.sendTo('server', value)).resolves.toEqual(value);
      await expect(firstValueFrom(client.request$('server', value))).resolves.toEqual(value);
    }
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set(['encode→Buffer', 'decode(Buffer)']));
  });

  it('a tagging codec (user tag 0x80) whose bytes are UTF-8 text: sent byte for byte', async () => {
    const codec: Codec = {
      encode: (value) => ({ encoding: 0x80, payload: Buffer.from(`T${value as string}`, 'utf8') }),
      decode: (payload, encoding) => {
        expect(encoding).toBe(0x80);
        return payload.toString('utf8').slice(1);
      },
    };
    const { client } = await echoPair(transport, { codec }, { codec });
    for (const value of ['€'.repeat(2730), '日本'.repeat(3000), '']) await expect(client.sendTo('server', value)).resolves.toBe(value);
  });

  it('`new Serializer()` passed as codec (not the default instance): every value round-trips (lone surrogates too)', async () => {
    const { client } = await echoPair(transport, { codec: new Serializer() }, { codec: new Serializer() });
    for (const value of ['', '€'.repeat(2730), '€'.repeat(2731), '\uD800', { t: '🎉'.repeat(500) }, [1, 'two'], 3.5, true, null, Buffer.from('b')]) {
      await expect(client.sendTo('server', value)).resolves.toEqual(value);
    }
  });

  it('peers of different codecs: default on one side, `new Serializer()` on the other', async () => {
    const { client } = await echoPair(transport, { codec: new Serializer() }, {});
    for (const value of ['€'.repeat(2730), { t: '€'.repeat(800) }, '\uDC00']) await expect(client.sendTo('server', value)).resolves.toEqual(value);
  });

  it('Serializer#encode (public) still returns Buffers for text and JSON; decode(STRING) of a Buffer gives the text', () => {
    for (const value of ['', 'abc', '€'.repeat(2730), { a: 1 }, true]) {
      const { payload, encoding } = defaultCodec.encode(value);
      expect(Buffer.isBuffer(payload)).toBe(true);
      expect(defaultCodec.decode(payload as Buffer, encoding)).toEqual(value);
      expect(new Serializer().encode(value).payload).toBeInstanceOf(Buffer);
    }
    expect(defaultCodec.decode(Buffer.from('€\0x'), Encoding.STRING)).toBe('€\0x');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// FrameDecoder: header fields read byte by byte
// ---------------------------------------------------------------------------------------------------------------

describe('FrameDecoder header fields above 2**31', () => {
  function header(id: number, length: number, type: number = FrameType.MESSAGE, flags = 0, encoding: number = Encoding.STRING): Buffer {
    const target = Buffer.alloc(HEADER_SIZE);
    encodeHeader(type, flags, id, encoding, length, target, 0);
    return target;
  }

  it.each([0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x01020304, 0xff00ff00])('id %d is read back exactly (whole and split headers)', (id) => {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((f) => frames.push(f));
    const body = Buffer.from('€x', 'utf8');
    const wire = Buffer.concat([header(id, body.length, FrameType.REPLY, 0xff, 0xfe), body]);
    decoder.push(wire);
    for (let cut = 1; cut < HEADER_SIZE; cut++) {
      decoder.push(wire.subarray(0, cut));
      decoder.push(new Uint8Array(wire.subarray(cut))); // a plain Uint8Array too
    }
    expect(frames).toHaveLength(HEADER_SIZE);
    for (const f of frames) {
      expect(f).toMatchObject({ id, type: FrameType.REPLY, flags: 0xff, encoding: 0xfe });
      expect(f.payload.toString('utf8')).toBe('€x');
    }
  });

  it('a declared length of 0xffffffff or 0x80000000 is refused as too large, with the exact number', () => {
    for (const length of [0xffffffff, 0x80000000, 0x80000001]) {
      const decoder = new FrameDecoder(() => undefined, { maxFrameSize: 0x7fffffff });
      expect(() => decoder.push(header(1, length))).toThrow(expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE, message: expect.stringContaining(`${length} bytes`) }));
    }
    const exact = new FrameDecoder(() => undefined, { maxFrameSize: 0xffffffff });
    expect(() => exact.push(header(1, 0xffffffff))).not.toThrow();
  });

  it('bad magic in either byte, or a bad version, is still refused', () => {
    for (const at of [0, 1, 2]) {
      const bad = header(1, 0);
      bad[at] ^= 0x80;
      const decoder = new FrameDecoder(() => undefined);
      expect(() => decoder.push(bad)).toThrow(expect.objectContaining({ code: ErrorCode.PROTOCOL }));
    }
  });

  it('over TCP: a receptive text MESSAGE with id 0xffffffff is answered with REPLY id 0xffffffff and the same text', async () => {
    const server = node('hub', QUIET);
    server.on('message', (m) => m.reply(m.data));
    const port = await serveTcp(server);
    const raw = rawClient(port).pause();
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((f) => frames.push({ ...f, payload: Buffer.from(f.payload) }));
    raw.on('data', (d: Buffer) => decoder.push(d));
    raw.resume();
    const text = '€'.repeat(2730);
    const window = Buffer.alloc(4);
    window.writeUInt32BE(8);
    raw.write(
      Buffer.concat([
        handshakeBytes('evil'),
        bytes({ type: FrameType.MESSAGE, flags: FrameFlags.RECEPTIVE, id: 0xffffffff, encoding: Encoding.STRING, payload: Buffer.from(text) }),
        bytes({ type: FrameType.MESSAGE, flags: FrameFlags.RECEPTIVE | FrameFlags.WINDOW, id: 0x80000000, encoding: Encoding.STRING, payload: Buffer.concat([window, Buffer.from('🎉')]) }),
      ]),
    );
    await until(() => frames.filter((f) => f.type === FrameType.REPLY).length === 2);
    const replies = frames.filter((f) => f.type === FrameType.REPLY);
    expect(replies.map((f) => [f.id, f.encoding, f.payload.toString('utf8')])).toEqual([
      [0xffffffff, Encoding.STRING, text],
      [0x80000000, Encoding.STRING, '🎉'],
    ]);
    expect(server.errors).toEqual([]);
    raw.destroy();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Careless callers
// ---------------------------------------------------------------------------------------------------------------

describe('careless callers', () => {
  it('String objects, strings with a changing getter, and frozen/null-prototype data', async () => {
    const { client } = await echoPair('tcp');
    // eslint-disable-next-line no-new-wrappers
    await expect(client.sendTo('server', new String('€'.repeat(10)))).resolves.toEqual(new String('€'.repeat(10)));
    let calls = 0;
    const tricky = {
      get t() {
        return calls++ === 0 ? 'a' : '€'.repeat(2731); // a different value for the check and for JSON.stringify
      },
    };
    const back = (await client.sendTo('server', tricky)) as { t: string };
    expect(typeof back.t).toBe('string');
    const bare = Object.assign(Object.create(null) as object, { t: '€'.repeat(2000) });
    await expect(client.sendTo('server', Object.freeze(bare))).resolves.toEqual({ t: '€'.repeat(2000) });
  });

  it('the caller mutating its object right after sendTo does not change what was sent (text encoded in the call)', async () => {
    const { server, client } = await echoPair('tcp');
    const got: unknown[] = [];
    server.on('message', (m) => !m.receptive && got.push(m.data));
    const value = { t: '€'.repeat(100) };
    const sent = client.sendTo('server', value, { receptive: false });
    value.t = 'changed';
    await sent;
    await until(() => got.length === 1);
    expect(got[0]).toEqual({ t: '€'.repeat(100) });
  });

  it('a user ByteStream that is not a LinkSocket (a Duplex pair): text is packed and arrives unchanged, in order', async () => {
    const server = node('server', QUIET);
    const client = node('client', QUIET);
    server.on('message', (m) => m.receptive && m.reply(m.data));
    const [a, b] = duplexPair();
    server.acceptVia(a);
    await client.connectVia('server', b);
    const all = Array.from({ length: 60 }, (_, i) => `${i}` + '€'.repeat(2700));
    expect(await Promise.all(all.map((t) => client.sendTo('server', t)))).toEqual(all);
  });

  it('a node closed right after a tick of texts: nothing hangs, the peer got a prefix of them in order', async () => {
    const { server, client } = await echoPair('tcp');
    const got: string[] = [];
    server.on('message', (m: NodeMessage) => !m.receptive && got.push(m.data as string));
    const sends = Array.from({ length: 50 }, (_, i) => client.sendTo('server', `${i}|` + '€'.repeat(2700), { receptive: false }).catch(() => 'lost'));
    const closing = client.close();
    await Promise.all(sends);
    await closing;
    await delay(50);
    got.forEach((t, i) => expect(t.startsWith(`${i}|`)).toBe(true));
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Other byte streams: TLS and NATS (both written through the packing path)
// ---------------------------------------------------------------------------------------------------------------

describe('TLS', () => {
  const pem = (file: string) => readFileSync(join(__dirname, '..', 'fixtures', 'tls', file));

  it('texts of every width, and 300 texts in one tick, arrive unchanged and in order', async () => {
    const ca = pem('ca.pem');
    const hub = node('hub', { ...QUIET, tls: { key: pem('server-key.pem'), cert: pem('server-cert.pem'), ca } });
    const leaf = node('leaf', { ...QUIET, tls: { ca } });
    const got: unknown[] = [];
    hub.on('message', (m) => (m.receptive ? m.reply(m.data) : got.push(m.data)));
    await leaf.connectTo('hub', await serveTcp(hub), '127.0.0.1');
    for (const [, text] of texts()) await expect(leaf.sendTo('hub', text)).resolves.toBe(text);
    const all = Array.from({ length: 300 }, (_, i) => `${i}|` + ['€', '🎉', 'é'][i % 3].repeat(2000 + (i % 50)));
    await Promise.all(all.map((t) => leaf.sendTo('hub', t, { receptive: false })));
    await until(() => got.length === all.length, 10_000);
    expect(got).toEqual(all);
  });
});

describeNats('NATS', () => {
  let server: NatsServer;
  beforeAll(async () => (server = await startNatsServer({ maxPayload: 64 * 1024 })));

  it('texts of every width, and 300 texts in one tick across a 64 KiB max_payload, arrive unchanged and in order', async () => {
    const hub = node('hub', { ...QUIET, transport: natsTransport({ servers: server.url }) });
    hub.serve('hub');
    await once(hub, 'listening');
    const leaf = node('leaf', { ...QUIET, transport: natsTransport({ servers: server.url }) });
    const got: unknown[] = [];
    hub.on('message', (m) => (m.receptive ? m.reply(m.data) : got.push(m.data)));
    await leaf.connectTo('hub');
    for (const [label, text] of texts()) expect([label, await leaf.sendTo('hub', text)]).toEqual([label, text]);
    expect(await lastValueFrom(leaf.request$('hub', '€'.repeat(2730)).pipe(toArray()))).toEqual(['€'.repeat(2730)]);
    const all = Array.from({ length: 300 }, (_, i) => `${i}|` + ['€', '🎉', 'é'][i % 3].repeat(2000 + (i % 50)));
    await Promise.all(all.map((t) => leaf.sendTo('hub', t, { receptive: false })));
    await until(() => got.length === all.length, 15_000);
    expect(got).toEqual(all);
    const mine = leaf.get('hub')!.stats();
    await until(() => hub.stats().bytesIn === mine.bytesOut, 5000, 'hub bytesIn = leaf bytesOut');
  }, 30_000);
});

describe('more paths', () => {
  it('request$ through a scheduler (the RxJS path): the 4-byte WINDOW is counted against a 1,024-byte peer, no slot leaks', async () => {
    const server = node('server', { ...QUIET, maxFrameSize: 1024 });
    const client = node('client', { ...QUIET, scheduler: asyncScheduler });
    server.on('message', (m) => m.reply(m.data));
    await connect(server, client, 'tcp');
    await expect(firstValueFrom(client.request$('server', '€'.repeat(340)))).resolves.toBe('€'.repeat(340));
    await expect(firstValueFrom(client.request$('server', '€'.repeat(341)))).rejects.toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE });
    expect(client.stats().pendingRequests).toBe(0);
    expect(server.errors).toEqual([]);
  });

  it('a refused text with a timeout: rejected once, no late timeout, nothing pending', async () => {
    const server = node('server', { ...QUIET, maxFrameSize: 1024 });
    const client = node('client', QUIET);
    server.on('message', (m) => m.reply(m.data));
    await connect(server, client, 'tcp');
    const settled: string[] = [];
    await client.sendTo('server', '€'.repeat(342), { timeout: 50 }).catch((e: { code: string }) => settled.push(e.code));
    await delay(120);
    expect(settled).toEqual([ErrorCode.FRAME_TOO_LARGE]);
    expect(client.stats().pendingRequests).toBe(0);
    expect(client.errors).toEqual([]);
  });

  it.each(['tcp', 'link'] as const)('message.stream of 500 texts of 2,730 "€" emitted synchronously (window 500) arrives in order (%s)', async (transport) => {
    const server = node('server', QUIET);
    const client = node('client', QUIET);
    const all = Array.from({ length: 500 }, (_, i) => String(i).padStart(3, '0') + '€'.repeat(2727));
    server.on('message', (m) => m.stream(all));
    await connect(server, client, transport);
    const got = await lastValueFrom(client.request$('server', 'go', { window: 500 }).pipe(toArray()));
    expect(got.length).toBe(500);
    got.forEach((t, i) => {
      if (t !== all[i]) throw new Error(`value ${i} differs`);
    });
  });

  it('a reply to a requester that went away in the meantime: false or silent, the server survives', async () => {
    const server = node('server', QUIET);
    const client = node('client', QUIET);
    let held: NodeMessage | undefined;
    server.on('message', (m) => (held = m));
    await connect(server, client, 'tcp');
    const pending = client.sendTo('server', 'hold').catch((e: { code: string }) => e.code);
    await until(() => held !== undefined);
    await client.close();
    await expect(pending).resolves.toBe(ErrorCode.CLOSED);
    await until(() => server.get('client') === undefined);
    expect(() => held!.reply('€'.repeat(2730))).not.toThrow();
    expect(server.errors).toEqual([]);
  });
});

describe('the exported defaultCodec, patched by a user', () => {
  it('(was broken) an encode patched onto defaultCodec (instrumentation) is still what encodes sent values', async () => {
    const original = Object.getOwnPropertyDescriptor(defaultCodec, 'encode');
    const encoded: unknown[] = [];
    const plain = defaultCodec.encode.bind(defaultCodec);
    defaultCodec.encode = (value: unknown) => {
      encoded.push(value);
      return plain(value);
    };
    try {
      const { client } = await echoPair('tcp');
      await client.sendTo('server', 'hello');
      await client.sendTo('server', { a: 1 });
      await client.sendTo('server', 42);
      // Every value goes through codec.encode, on both sides: the fast path is taken only for Serializer's own encode.
      expect(encoded).toEqual(['hello', 'hello', { a: 1 }, { a: 1 }, 42, 42]);
    } finally {
      if (original) Object.defineProperty(defaultCodec, 'encode', original);
      else delete (defaultCodec as { encode?: unknown }).encode;
    }
  });

  it('an encode patched onto Serializer.prototype is what encodes, for every Serializer', async () => {
    const original = Serializer.prototype.encode;
    const encoded: unknown[] = [];
    Serializer.prototype.encode = function (this: Serializer, value: unknown) {
      encoded.push(value);
      return original.call(this, value);
    };
    try {
      const { client } = await echoPair('tcp');
      await expect(client.sendTo('server', 'é')).resolves.toBe('é');
      expect(encoded).toEqual(['é', 'é']);
    } finally {
      Serializer.prototype.encode = original;
    }
  });
});
