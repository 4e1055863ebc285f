// A hostile network peer against a live Node, from a raw socket, in every state of a connection: before, during and
// after the handshake, with requests and streams open, while the node drains (close({ drain }), GOAWAY), after CLOSE.
// What must hold whatever the bytes: the process does not crash, the bad connection alone ends (or the one message
// fails) with an IpcError whose `code` is stable, another client keeps being answered, and nothing is left behind
// (pending entries, streams' sources, the process can exit after close()). Deterministic: seeded PRNG, fixed counts.
// The tests marked "(was broken)" failed before their fix.
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { serialize } from 'node:v8';
import { lastValueFrom } from 'rxjs';
import {
  ErrorCode,
  FrameDecoder,
  FrameFlags,
  FrameType,
  HEADER_SIZE,
  IpcError,
  PROTOCOL_NAME,
  PROTOCOL_VERSION,
  RemoteError,
  type Frame,
  type Node,
  type NodeMessage,
} from '../../src';
import { jsonFrame } from '../../src/internal';
import { cleanUp, exitWithin, ROOT, spawnNode } from '../helpers/child';
import { cut } from '../helpers/frames';
import { delay, node, serveTcp, socketPath, until } from '../helpers/net';
import { bytes, handshakeBytes } from '../helpers/raw';

afterEach(cleanUp);

// ─── tools ────────────────────────────────────────────────────────────────────────────────────────────

/** mulberry32: a small seeded PRNG, so every run sends the same bytes. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

const EMPTY = Buffer.alloc(0);
const deep = (n: number, open: string, close: string) => Buffer.from(open.repeat(n) + close.repeat(n));

/** Payloads of every wrong shape: credits, JSON of the wrong type, prototype keys, deep nesting, V8, garbage. */
const PAYLOADS: Buffer[] = [
  EMPTY,
  u32(0),
  u32(1),
  u32(0xffff_ffff),
  u32(0x8000_0000),
  Buffer.from([1, 2, 3]),
  Buffer.from('null'),
  Buffer.from('[]'),
  Buffer.from('[1,2]'),
  Buffer.from('"text"'),
  Buffer.from('5'),
  Buffer.from('{}'),
  Buffer.from('{"__proto__":{"polluted":1},"name":"x"}'),
  Buffer.from('{"constructor":{"prototype":{"polluted":1}}}'),
  Buffer.from('{"name":5,"message":{"a":1},"code":7,"stack":[]}'),
  Buffer.from('{"name":{"toString":1},"message":"x"}'),
  Buffer.from('{"code":"ERR_IPC_CLOSED","message":"bye","reconnect":"no"}'),
  deep(100_000, '[', ']'),
  deep(50_000, '{"a":', '}'),
  serialize({ name: 'E', message: 'm', props: { ['__proto__']: 1 } }),
  serialize(null),
  serialize(new Map([[1, 2]])),
  Buffer.from('stream'),
  Buffer.from('hold'),
  Buffer.from([0xff, 0xfe, 0x00, 0x41]),
  Buffer.alloc(8, 0xff),
];

/** A raw TCP or Unix-socket peer that decodes what it receives. */
class RawPeer {
  readonly socket: Socket;
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;

  constructor(address: number | string) {
    this.socket = (typeof address === 'number' ? connect(address, '127.0.0.1') : connect(address)).on('error', () => undefined);
    const decoder = new FrameDecoder((f) => this.frames.push({ ...f, payload: Buffer.from(f.payload) }), { maxFrameSize: 1 << 30 });
    this.socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch {
        // the node never sends what we cannot decode; a truncated stream at the end is fine
      }
    });
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  write(data: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  get isClosed(): boolean {
    return this.socket.destroyed;
  }

  of(type: number, id?: number): Frame[] {
    return this.frames.filter((f) => f.type === type && (id === undefined || f.id === id));
  }
}

/** A receptive MESSAGE of text, with its window when `window` is given. */
function request(id: number, value: string, window?: number): Buffer {
  if (window === undefined) return bytes({ type: FrameType.MESSAGE, flags: FrameFlags.RECEPTIVE, id, encoding: 2, payload: Buffer.from(value) });
  return bytes({ type: FrameType.MESSAGE, flags: FrameFlags.RECEPTIVE | FrameFlags.WINDOW, id, encoding: 2, payload: Buffer.concat([u32(window), Buffer.from(value)]) });
}

const control = (type: number, id: number, payload: Buffer = EMPTY) => bytes({ type, flags: 0, id, encoding: 0, payload });
const hello = (name: string, body: object = {}) =>
  bytes(jsonFrame(FrameType.HANDSHAKE, 1, { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name, maxFrameSize: 1 << 20, ...body }));

/**
 * The node under attack, "hub": "stream" is answered with an endless stream (its sources counted: started and
 * released), "hold" never, anything else with "pong". And a well-behaved client, "good", connected to it.
 */
async function hub(options: { unix?: boolean; handshakeTimeout?: number; handle?: (m: NodeMessage) => boolean } = {}) {
  const server = node('hub', { heartbeatInterval: 0, handshakeTimeout: options.handshakeTimeout ?? 2000 });
  const sources = { started: 0, released: 0 };
  const held: NodeMessage[] = [];
  server.on('message', (m) => {
    if (options.handle?.(m)) return;
    if (m.data === 'stream') {
      m.stream(
        (async function* () {
          sources.started++;
          try {
            for (let i = 0; ; i++) yield i;
          } finally {
            sources.released++;
          }
        })(),
      );
    } else if (m.data === 'hold') held.push(m);
    else m.reply('pong');
  });
  let address: number | string;
  if (options.unix) {
    address = socketPath();
    server.serve('hub', address);
    await once(server, 'listening');
  } else address = await serveTcp(server);
  const good = node('good', { heartbeatInterval: 0 });
  if (typeof address === 'number') await good.connectTo('hub', address, '127.0.0.1');
  else await good.connectTo('hub', address);
  return { server, address, good, sources, held };
}

/** Every error the node reported is an IpcError with an `ERR_IPC_…` code. */
function expectTyped(errors: readonly unknown[]): void {
  const untyped = errors.filter((e) => !(e instanceof IpcError) || !/^ERR_IPC_[A-Z_]+$/.test(e.code));
  expect(untyped).toEqual([]);
}

async function served(good: Node): Promise<void> {
  await expect(good.sendTo('hub', 'ping', { timeout: 5000 })).resolves.toBe('pong');
}

/** The node is back to its good client alone: no connection, handshake, request or stream of the attackers left. */
async function onlyGoodLeft(server: Node, sources: { started: number; released: number }): Promise<void> {
  await until(() => server.stats().handshaking === 0 && Object.keys(server.stats().peers).join() === 'server:good', 5000, 'the attackers to be gone');
  await until(() => sources.released === sources.started, 5000, "every stream's source to be released");
  const good = server.get('good')!.connection!;
  expect(good.inbound.size).toBe(0);
  expect(server.stats().openStreams).toBe(0);
}

/** One frame of the structured mix: mostly well-formed requests, credits and cancels for a few ids, some wrong. */
function structuredFrame(rnd: () => number): Buffer {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)];
  const id = pick([0, 1, 2, 3, 0xffff_ffff]);
  const value = pick(['stream', 'hold', 'x']);
  switch (pick(['req', 'req', 'window', 'window', 'credits', 'credits', 'cancel', 'goaway', 'ping', 'oneway', 'reply', 'error', 'next', 'complete'])) {
    case 'req':
      return request(id, value);
    case 'window':
      return request(id, value, pick([0, 1, 2, 0xffff_ffff]));
    case 'credits':
      return control(FrameType.REQUEST_N, id, pick([u32(0), u32(1), u32(0xffff_ffff), u32(0x8000_0000), EMPTY, Buffer.alloc(5)]));
    case 'cancel':
      return control(FrameType.CANCEL, id, pick([EMPTY, Buffer.from('x')]));
    case 'goaway':
      return control(FrameType.GOAWAY, pick([0, id]), pick([EMPTY, Buffer.from('junk')]));
    case 'ping':
      return control(FrameType.PING, id);
    case 'oneway':
      return bytes({ type: FrameType.MESSAGE, flags: 0, id: 0, encoding: pick([2, 4, 5, 6]), payload: pick(PAYLOADS) });
    case 'reply':
      return bytes({ type: FrameType.REPLY, flags: 0, id, encoding: pick([2, 3, 4, 5, 6]), payload: pick(PAYLOADS) });
    case 'error':
      return bytes({ type: pick([FrameType.ERROR, FrameType.STREAM_ERROR]), flags: 0, id, encoding: 5, payload: pick(PAYLOADS) });
    case 'next':
      return bytes({ type: FrameType.STREAM_NEXT, flags: 0, id, encoding: pick([2, 4]), payload: pick(PAYLOADS) });
    default:
      return control(FrameType.STREAM_COMPLETE, id);
  }
}

/** A frame with a valid header and anything else random: type, flags, id, encoding, payload. */
function randomFrame(rnd: () => number): Buffer {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)];
  return bytes({
    type: pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x7e, 0xff]),
    flags: Math.floor(rnd() * 256),
    id: rnd() < 0.7 ? pick([0, 1, 2, 3, 0x8000_0000, 0xffff_ffff]) : Math.floor(rnd() * 2 ** 32),
    encoding: pick([0, 1, 2, 3, 4, 5, 6, 7, 0x80, 0xff]),
    payload: pick(PAYLOADS),
  });
}

/**
 * One hostile session: `input` (after a handshake as `name`, unless `handshake` is false), cut into chunks at
 * random places, while the hub has two requests of its own pending at that peer (so answers for live ids are
 * exercised too). The hub's requests may resolve with anything, but only ever reject with an IpcError.
 */
async function session(server: Node, address: number | string, name: string, input: Buffer, rnd: () => number, handshake = true) {
  const peer = new RawPeer(address);
  if (handshake) {
    peer.write(handshakeBytes(name));
    await until(() => server.get(name) !== undefined || peer.isClosed, 2000, `the handshake of ${name}`);
  }
  const asks = server.get(name) ? [0, 1].map(() => server.sendTo(name, 'question', { timeout: 2000 }).then(() => null, (e: unknown) => e)) : [];
  for (const chunk of cut(input, [Math.floor(rnd() * input.length), Math.floor(rnd() * input.length)])) {
    peer.write(chunk);
    await delay(1);
  }
  await delay(3);
  peer.socket.destroy();
  await peer.closed;
  const rejections = await Promise.all(asks);
  expectTyped(rejections.filter((e) => e !== null));
  await until(() => server.get(name) === undefined, 2000, `${name} to be gone`);
}

// ─── random and mutated frames ────────────────────────────────────────────────────────────────────────

describe('fuzz: frames with valid headers and random contents, in every state', () => {
  it('TCP: 150 seeded sessions (before, during and after the handshake): typed errors only, the good client served throughout, nothing left behind', async () => {
    const { server, address, good, sources } = await hub();
    const rnd = prng(20261201);
    for (let s = 0; s < 150; s++) {
      const frames: Buffer[] = [];
      const count = 1 + Math.floor(rnd() * 12);
      for (let i = 0; i < count; i++) frames.push(rnd() < 0.6 ? structuredFrame(rnd) : randomFrame(rnd));
      // One in ten skips the handshake; one in ten interleaves a handshake step of its own.
      const handshake = rnd() >= 0.1;
      if (rnd() < 0.1) frames.splice(Math.floor(rnd() * frames.length), 0, handshakeBytes(`again-${s}`));
      await session(server, address, `fuzz-${s}`, Buffer.concat(frames), rnd, handshake);
      if (s % 10 === 0) await served(good);
    }
    await served(good);
    expectTyped(server.errors);
    expect(server.errors.length).toBeGreaterThan(0);
    await onlyGoodLeft(server, sources);
    expect(good.errors).toEqual([]);
  }, 60_000);

  it('Unix socket: 40 seeded sessions, the same guarantees', async () => {
    const { server, address, good, sources } = await hub({ unix: true });
    const rnd = prng(7);
    for (let s = 0; s < 40; s++) {
      const frames = Array.from({ length: 1 + Math.floor(rnd() * 10) }, () => (rnd() < 0.6 ? structuredFrame(rnd) : randomFrame(rnd)));
      await session(server, address, `unix-${s}`, Buffer.concat(frames), rnd);
    }
    await served(good);
    expectTyped(server.errors);
    await onlyGoodLeft(server, sources);
  }, 30_000);

  it('mutations of a recorded valid session (repeated, dropped, swapped frames, flipped header and payload bytes, cut short): the same guarantees', async () => {
    const { server, address, good, sources } = await hub();
    const recorded = (name: string): Buffer[] => [
      hello(name),
      bytes(jsonFrame(FrameType.HANDSHAKE, 3, {})),
      request(1, 'x'),
      request(2, 'stream', 2),
      control(FrameType.REQUEST_N, 2, u32(3)),
      request(3, 'hold', 0),
      control(FrameType.PING, 7),
      bytes({ type: FrameType.MESSAGE, flags: 0, id: 0, encoding: 5, payload: Buffer.from('{"a":[1,2]}') }),
      // Answers to the hub's own two requests (ids 1 and 2 of its side).
      bytes({ type: FrameType.REPLY, flags: 0, id: 1, encoding: 2, payload: Buffer.from('answer') }),
      bytes({ type: FrameType.ERROR, flags: 0, id: 2, encoding: 5, payload: Buffer.from('{"name":"Error","message":"no","code":"E_NO"}') }),
      control(FrameType.CANCEL, 2),
      control(FrameType.CANCEL, 3),
      control(FrameType.GOAWAY, 0),
      bytes({ type: FrameType.CLOSE, flags: 0, id: 0, encoding: 5, payload: Buffer.from('{"code":"ERR_IPC_CLOSED","message":"bye","reconnect":false}') }),
      request(4, 'x'),
    ];
    const rnd = prng(42);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)];
    for (let s = 0; s < 100; s++) {
      const name = `mutant-${s}`;
      const frames = recorded(name);
      for (let m = 1 + Math.floor(rnd() * 3); m > 0; m--) {
        const at = 2 + Math.floor(rnd() * (frames.length - 2)); // the handshake is mutated only by flips
        switch (pick(['repeat', 'drop', 'swap', 'flip', 'flip', 'duplicate'])) {
          case 'repeat':
            frames.splice(at, 0, ...Array.from({ length: 1 + Math.floor(rnd() * 5) }, () => frames[at]));
            break;
          case 'drop':
            frames.splice(at, 1);
            break;
          case 'swap': {
            const other = Math.floor(rnd() * frames.length);
            [frames[at], frames[other]] = [frames[other], frames[at]];
            break;
          }
          case 'duplicate':
            frames.push(...frames.slice(2));
            break;
          default: {
            // Flip bytes of the type, flags, encoding or id, or of the payload: the header stays well-formed.
            const i = Math.floor(rnd() * frames.length);
            const frame = Buffer.from(frames[i]);
            const where = [3, 4, 5, 8, 9, 10, 11, ...Array.from({ length: frame.length - HEADER_SIZE }, (_, k) => HEADER_SIZE + k)];
            for (let f = 1 + Math.floor(rnd() * 3); f > 0; f--) frame[pick(where)] = Math.floor(rnd() * 256);
            frames[i] = frame;
          }
        }
      }
      let input = Buffer.concat(frames);
      if (rnd() < 0.2) input = input.subarray(0, Math.floor(rnd() * input.length)); // cut short, mid-frame maybe
      await session(server, address, name, input, rnd, false);
      if (s % 10 === 0) await served(good);
    }
    await served(good);
    expectTyped(server.errors);
    await onlyGoodLeft(server, sources);
  }, 60_000);
});

describe('fuzz: the same frames from a hostile server, against a node that dials it (its FrameReader path)', () => {
  it('50 seeded servers: each connection ends or fails one message with a typed error; the dialler keeps serving and being served', async () => {
    const { address, good } = await hub();
    const client = node('client', { heartbeatInterval: 0, handshakeTimeout: 500 });
    client.on('message', (m) => (m.data === 'stream' ? m.stream([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) : m.data === 'hold' ? undefined : m.reply('ok')));
    await client.connectTo('hub', address as number, '127.0.0.1');
    const rnd = prng(11);
    let input = EMPTY;
    const serverHello = bytes(jsonFrame(FrameType.HANDSHAKE, 2, { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name: 'evil', maxFrameSize: 1 << 20 }));
    const evil = createServer((socket) => {
      socket.on('error', () => undefined).resume();
      socket.once('data', () => {
        socket.write(serverHello);
        socket.once('data', () => {
          socket.write(bytes(jsonFrame(FrameType.HANDSHAKE, 4, {})));
          setTimeout(() => socket.end(input), 5);
        });
      });
    });
    evil.listen(0, '127.0.0.1');
    await once(evil, 'listening');
    const port = (evil.address() as AddressInfo).port;
    const failures: unknown[] = [];
    try {
      for (let s = 0; s < 50; s++) {
        input = Buffer.concat(Array.from({ length: 1 + Math.floor(rnd() * 10) }, () => (rnd() < 0.6 ? structuredFrame(rnd) : randomFrame(rnd))));
        const connected = await client.connectTo('evil', port, '127.0.0.1').then(
          () => true,
          (e: unknown) => (failures.push(e), false),
        );
        if (connected) failures.push(await client.sendTo('evil', 'question', { timeout: 1000 }).then(() => null, (e: unknown) => e));
        await until(() => client.get('evil') === undefined, 3000, 'the hostile server to be gone');
        if (s % 10 === 0) await expect(client.sendTo('hub', 'ping')).resolves.toBe('pong');
      }
    } finally {
      evil.close();
    }
    expectTyped(failures.filter((e) => e !== null));
    expectTyped(client.errors);
    expect(client.errors.length).toBeGreaterThan(0);
    await expect(client.sendTo('hub', 'ping')).resolves.toBe('pong');
    await served(good);
  }, 30_000);
});

// ─── a live connection, abused without breaking the protocol's framing ────────────────────────────────

describe('a connected peer that reuses ids, cancels, grants 0 or 2³²−1 credits, and sends GOAWAY with junk', () => {
  it('2,000 seeded operations: the connection stays up, no error is reported, and once it cancelled what it left open nothing is held', async () => {
    const { server, address, good, sources, held } = await hub();
    const peer = new RawPeer(address);
    peer.write(handshakeBytes('abuser'));
    await until(() => server.get('abuser') !== undefined);
    const connection = server.get('abuser')!.connection!;
    const rnd = prng(99);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)];
    // What the peer believes is open at the hub: a request id may be used again once it was answered or cancelled.
    const open = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const id = pick([0, 1, 2, 3, 4, 5, 0xffff_ffff]);
      switch (pick(['req', 'window', 'credits', 'credits', 'cancel', 'cancel', 'ping', 'goaway', 'oneway'])) {
        case 'req':
        case 'window': {
          if (open.has(id)) continue;
          const value = pick(['stream', 'hold', 'x']);
          if (value !== 'x') open.add(id); // "x" is answered at once
          peer.write(rnd() < 0.5 ? request(id, value) : request(id, value, pick([0, 1, 2, 0xffff_ffff])));
          break;
        }
        case 'credits':
          peer.write(control(FrameType.REQUEST_N, id, pick([u32(0), u32(1), u32(0xffff_ffff), u32(0x8000_0000)])));
          break;
        case 'cancel':
          open.delete(id);
          peer.write(control(FrameType.CANCEL, id));
          break;
        case 'ping':
          peer.write(control(FrameType.PING, id));
          break;
        case 'goaway':
          peer.write(control(FrameType.GOAWAY, id, Buffer.from('junk')));
          break;
        default:
          peer.write(bytes({ type: FrameType.MESSAGE, flags: 0, id: 0, encoding: 2, payload: Buffer.from('stream') }));
      }
      if (i % 100 === 0) await delay(1);
    }
    for (const id of open) peer.write(control(FrameType.CANCEL, id));
    // Frames are handled in order: once this PING is answered, everything before it was handled.
    peer.write(control(FrameType.PING, 0x1234_5678));
    await until(() => peer.of(FrameType.PONG, 0x1234_5678).length === 1, 10_000, 'the PONG after the operations');
    expect(connection.inbound.size).toBe(0);
    await until(() => sources.released === sources.started);
    expect(sources.started).toBeGreaterThan(10);
    expect(held.length).toBeGreaterThan(10);
    expect(held.every((m) => m.reply('late') === false)).toBe(true); // cancelled: nothing awaits them
    expect(connection.state).toBe('open');
    expect(peer.isClosed).toBe(false);
    expect(server.errors).toEqual([]);
    await served(good);
    peer.socket.destroy();
    await onlyGoodLeft(server, sources);
  }, 30_000);

  it('a request id that is still open, sent again while streams run: that connection ends (ERR_IPC_PROTOCOL) and every stream source is released', async () => {
    const { server, address, good, sources } = await hub();
    const peer = new RawPeer(address);
    peer.write(Buffer.concat([handshakeBytes('dup'), request(1, 'stream', 2), request(2, 'stream', 0xffff_ffff), request(3, 'hold'), control(FrameType.REQUEST_N, 1, u32(5))]));
    await until(() => sources.started === 2);
    peer.write(request(2, 'x'));
    await peer.closed;
    await until(() => server.errors.length > 0);
    expect(server.errors.map((e) => (e as IpcError).code)).toEqual([ErrorCode.PROTOCOL]);
    await onlyGoodLeft(server, sources);
    await served(good);
  });
});

// ─── the handshake ────────────────────────────────────────────────────────────────────────────────────

describe('before and during the handshake', () => {
  const types = [0, 1, 2, 3, 5, 6, 8, 9, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x7e, 0xff];

  it.each([
    ['as the first frame', false],
    ['between the hello and the acknowledgement', true],
  ])('every frame type but HANDSHAKE and CLOSE, %s: ERR_IPC_PROTOCOL, that connection only', async (_, afterHello) => {
    const { server, address, good, sources } = await hub();
    for (const type of types) {
      const peer = new RawPeer(address);
      const first = afterHello ? hello(`early-${type}`) : EMPTY;
      peer.write(Buffer.concat([first, bytes({ type, flags: 3, id: 1, encoding: 2, payload: Buffer.concat([u32(1), Buffer.from('stream')]) })]));
      await peer.closed;
      // It was told why: a CLOSE with the code.
      expect(peer.of(FrameType.CLOSE).map((f) => JSON.parse(f.payload.toString()).code)).toEqual([ErrorCode.PROTOCOL]);
    }
    await until(() => server.errors.length === types.length);
    expect(server.errors.map((e) => (e as IpcError).code)).toEqual(types.map(() => ErrorCode.PROTOCOL));
    expect(sources.started).toBe(0);
    await served(good);
    await onlyGoodLeft(server, sources);
  });

  it('handshake steps out of order, repeated or of the wrong side; CLOSE bodies of every shape: each ends that connection with a typed error', async () => {
    const { server, address, good, sources } = await hub();
    const ack = (id = 3, body: unknown = {}) => bytes(jsonFrame(FrameType.HANDSHAKE, id, body));
    const close = (payload: Buffer) => bytes({ type: FrameType.CLOSE, flags: 0, id: 0, encoding: 5, payload });
    const attacks: Buffer[] = [
      ack(3),
      ack(4),
      ack(2, { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name: 'x', maxFrameSize: 1 << 20 }),
      Buffer.concat([hello('twice'), hello('twice')]),
      Buffer.concat([hello('skip'), ack(4)]),
      Buffer.concat([hello('again'), ack(3), hello('again')]).subarray(0), // a hello after the handshake: type 4 when open
      bytes({ type: FrameType.HANDSHAKE, flags: 0, id: 1, encoding: 5, payload: Buffer.alloc(16 * 1024, 0x20) }),
      ...PAYLOADS.map(close),
      close(Buffer.alloc(20_000, 0x20)),
    ];
    for (const attack of attacks) {
      const peer = new RawPeer(address);
      peer.write(attack);
      await peer.closed;
    }
    await until(() => server.stats().handshaking === 0);
    expectTyped(server.errors);
    await served(good);
    await onlyGoodLeft(server, sources);
  });

  it('without a secret, the body of the step-3 acknowledgement is not read (as GOAWAY’s): null or an array there still admits the peer', async () => {
    const { server, address, good } = await hub();
    for (const [name, body] of [['ack-null', null], ['ack-array', [1]]] as const) {
      const peer = new RawPeer(address);
      peer.write(Buffer.concat([hello(name), bytes(jsonFrame(FrameType.HANDSHAKE, 3, body))]));
      await until(() => peer.of(FrameType.HANDSHAKE, 4).length === 1);
      expect(server.get(name)?.connected).toBe(true);
      peer.socket.destroy();
    }
    expect(server.errors).toEqual([]);
    await served(good);
  });

  it('hellos of wrong shapes (null, arrays, numbers where strings go, prototype keys, deep nesting) are refused with a CLOSE; nothing is polluted', async () => {
    const { server, address, good, sources } = await hub();
    const base = { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name: 'shape', maxFrameSize: 1 << 20 };
    const bodies: Buffer[] = [
      Buffer.from('null'),
      Buffer.from('[]'),
      Buffer.from('"hello"'),
      Buffer.from('1'),
      Buffer.from(JSON.stringify({ ...base, name: 5 })),
      Buffer.from(JSON.stringify({ ...base, name: ['a'] })),
      Buffer.from(JSON.stringify({ ...base, name: '' })),
      Buffer.from(JSON.stringify({ ...base, name: 'x'.repeat(257) })),
      Buffer.from(JSON.stringify({ ...base, protocol: { toString: 1 } })),
      Buffer.from(JSON.stringify({ ...base, version: '2' })),
      Buffer.from(JSON.stringify({ ...base, maxFrameSize: '1048576' })),
      Buffer.from(JSON.stringify({ ...base, maxFrameSize: 1023 })),
      Buffer.from(JSON.stringify({ ...base, maxFrameSize: 2 ** 32 })),
      Buffer.from(JSON.stringify({ ...base, maxFrameSize: 1.5e6 + 0.5 })),
      Buffer.from(JSON.stringify({ ...base, instance: 7 })),
      Buffer.from(JSON.stringify({ ...base, instance: 'i'.repeat(65) })),
      Buffer.from(`{"__proto__":{"polluted":1},"protocol":"${PROTOCOL_NAME}","version":${PROTOCOL_VERSION},"name":"__proto__","maxFrameSize":1048576,"instance":{"x":1}}`),
      Buffer.from(`{"constructor":{"prototype":{"polluted":1}},"protocol":"nope"}`),
      Buffer.concat([Buffer.from(`{"protocol":"${PROTOCOL_NAME}","version":2,"maxFrameSize":1048576,"name":`), deep(5000, '[', ']'), Buffer.from('}')]),
      deep(2000, '{"a":', '}'),
    ];
    for (const payload of bodies) {
      const peer = new RawPeer(address);
      peer.write(Buffer.concat([bytes({ type: FrameType.HANDSHAKE, flags: 0, id: 1, encoding: 5, payload }), bytes(jsonFrame(FrameType.HANDSHAKE, 3, {}))]));
      await peer.closed;
      expect(peer.of(FrameType.CLOSE)).toHaveLength(1);
      expect(peer.of(FrameType.HANDSHAKE)).toEqual([]);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await until(() => server.stats().handshaking === 0);
    expectTyped(server.errors);
    expect(server.errors.length).toBeGreaterThanOrEqual(bodies.length);
    await served(good);
    await onlyGoodLeft(server, sources);
  });
});

// ─── the peer as a responder: its answers to our requests ────────────────────────────────────────────

describe('answers of every shape to our requests', () => {
  /** A peer "responder" that answers each of the hub's requests (and grants) with `answer(frame)`. */
  async function responder(answer: (frame: Frame) => Buffer) {
    const setup = await hub();
    const peer = new RawPeer(setup.address);
    let seen = 0;
    peer.socket.on('data', () => {
      for (; seen < peer.frames.length; seen++) {
        const f = peer.frames[seen];
        if (f.type === FrameType.MESSAGE || f.type === FrameType.REQUEST_N) peer.write(answer(f));
      }
    });
    peer.write(handshakeBytes('responder'));
    await until(() => setup.server.get('responder') !== undefined);
    return { ...setup, peer };
  }

  // The first three were broken: String() of the name or message threw, and that TypeError (or RangeError) was what
  // the requester got, without a code. The others held.
  const shapes: Array<[string, string]> = [
    ['(was broken) a name whose toString is not callable', '{"name":{"toString":1},"message":"x"}'],
    ['(was broken) a message that cannot be made a string', '{"name":"E","message":{"toString":null,"valueOf":null}}'],
    ['(was broken) a message nested 100,000 arrays deep', `{"name":"E","message":${'['.repeat(100_000)}${']'.repeat(100_000)}}`],
    ['null', 'null'],
    ['an array', '[1,2]'],
    ['a number', '5'],
    ['prototype keys', '{"__proto__":{"name":1},"name":"__proto__","message":[1,2],"code":{"x":1}}'],
  ];

  it.each(shapes)(
    'an ERROR or STREAM_ERROR body: %s — sendTo, iterate and request$ reject with a RemoteError (ERR_IPC_REMOTE)',
    async (_, body) => {
      let type: number = FrameType.ERROR;
      const { server, good } = await responder((f) => (f.type === FrameType.MESSAGE ? bytes({ type, flags: 0, id: f.id, encoding: 5, payload: Buffer.from(body) }) : EMPTY));
      const failures: unknown[] = [await server.sendTo('responder', 'q').catch((e: unknown) => e)];
      type = FrameType.STREAM_ERROR;
      failures.push(await lastValueFrom(server.request$('responder', 'q')).catch((e: unknown) => e));
      failures.push(await server.iterate('responder', 'q').next().catch((e: unknown) => e));
      for (const failure of failures) {
        expect(failure).toBeInstanceOf(RemoteError);
        expect((failure as RemoteError).code).toBe(ErrorCode.REMOTE);
        expect(typeof (failure as RemoteError).remoteName).toBe('string');
        expect(typeof (failure as RemoteError).message).toBe('string');
      }
      expect(server.get('responder')!.connected).toBe(true); // one request failed, not the connection
      await served(good);
    },
  );

  it('(was broken) iterate(): a responder that ignores the credits cannot make the requester queue without bound — the request fails (ERR_IPC_PROTOCOL) after the values owed, and is cancelled', async () => {
    const window = 4;
    const flood = 20_000;
    const { server, good, peer } = await responder((f) => {
      if (f.type !== FrameType.MESSAGE) return EMPTY;
      const value = bytes({ type: FrameType.STREAM_NEXT, flags: 0, id: f.id, encoding: 2, payload: Buffer.from('v') });
      return Buffer.concat(Array.from({ length: flood }, () => value));
    });
    const iterator = server.iterate<string>('responder', 'rows', { window });
    await expect(iterator.next()).resolves.toEqual({ value: 'v', done: false });
    // The whole flood has arrived and was handled.
    await until(() => server.get('responder')!.stats().framesIn >= flood, 10_000, 'the flood to arrive');
    const values: string[] = [];
    let failure: unknown;
    try {
      for (;;) {
        const { value, done } = await iterator.next();
        if (done) break;
        values.push(value);
        if (values.length > window + 10) break; // (before the fix: all 19,999 of them, then a wait for ever)
      }
    } catch (error) {
      failure = error;
    }
    // Before the fix: 19,999 values had queued (for a window of 4), and the iteration went on through all of them.
    expect(values.length).toBeLessThanOrEqual(window);
    expect(failure).toBeInstanceOf(IpcError);
    expect((failure as IpcError).code).toBe(ErrorCode.PROTOCOL);
    await expect(iterator.next()).resolves.toEqual({ value: undefined, done: true });
    await until(() => peer.of(FrameType.CANCEL).length === 1);
    expect(server.get('responder')!.connection!.registry.size).toBe(0);
    expect(server.get('responder')!.connected).toBe(true);
    await served(good);
  });

  it('iterate(): a responder that keeps to the credits is never cut off, whatever the window (the bound is exact)', async () => {
    for (const window of [1, 2, 3, 7]) {
      // Answers exactly as credited: `window` values at once, then as many as each REQUEST_N grants; 50 in all.
      let sent = 0;
      const { server, peer } = await responder((f) => {
        const frames: Buffer[] = [];
        for (let n = f.payload.readUInt32BE(0); n > 0 && sent < 50; n--, sent++) {
          const payload = Buffer.alloc(8);
          payload.writeDoubleBE(sent, 0);
          frames.push(bytes({ type: FrameType.STREAM_NEXT, flags: 0, id: f.id, encoding: 3, payload }));
          if (sent === 49) frames.push(control(FrameType.STREAM_COMPLETE, f.id));
        }
        return Buffer.concat(frames);
      });
      const values: number[] = [];
      for await (const value of server.iterate<number>('responder', 'rows', { window })) {
        values.push(value);
        await delay(values.length % 10 === 0 ? 5 : 0); // a slow consumer: the credited values pile up meanwhile
      }
      expect(values).toEqual(Array.from({ length: 50 }, (_, i) => i));
      peer.socket.destroy();
      await server.close();
    }
  });
});

// ─── GOAWAY, draining, CLOSE ─────────────────────────────────────────────────────────────────────────

describe('GOAWAY (0x0d), close({ drain }) and CLOSE', () => {
  it('a GOAWAY before the handshake is a protocol error', async () => {
    const { server, address, good } = await hub();
    const peer = new RawPeer(address);
    peer.write(control(FrameType.GOAWAY, 0));
    await peer.closed;
    await until(() => server.errors.length === 1);
    expect((server.errors[0] as IpcError).code).toBe(ErrorCode.PROTOCOL);
    await served(good);
  });

  it('a GOAWAY with a non-zero id and a payload is taken as a GOAWAY (neither is read, as for every bodiless frame): our new requests to it fail locally, pings and its own requests go on', async () => {
    const { server, address, good } = await hub();
    const peer = new RawPeer(address);
    peer.write(Buffer.concat([handshakeBytes('leaving'), control(FrameType.GOAWAY, 0xffff_ffff, Buffer.from('{"lastId":7}'))]));
    await until(() => server.get('leaving')?.connection?.goingAway === true);
    await expect(server.sendTo('leaving', 'q')).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED });
    const pinged = server.pingTo('leaving', { timeout: 2000 }).catch((e: unknown) => e);
    await until(() => peer.of(FrameType.PING).length === 1);
    peer.write(control(FrameType.PONG, peer.of(FrameType.PING)[0].id));
    expect(await pinged).not.toBeInstanceOf(Error);
    peer.write(request(1, 'x'));
    await until(() => peer.of(FrameType.REPLY, 1).length === 1);
    expect(server.errors).toEqual([]);
    await served(good);
    peer.socket.destroy();
  });

  it('during close({ drain }), a peer flooding requests, GOAWAYs, credits, cancels and junk: the good client’s request in flight is answered, the drain ends by its deadline, sources are released', async () => {
    const slow = (m: NodeMessage) => m.data === 'slow' && Boolean(setTimeout(() => m.reply('late'), 150));
    const { server, address, good, sources } = await hub({ handle: slow });
    const peer = new RawPeer(address);
    peer.write(Buffer.concat([handshakeBytes('flooder'), request(1, 'stream', 0), request(2, 'stream', 1)]));
    await until(() => server.get('flooder') !== undefined && sources.started === 1);
    // The hub awaits an answer of the flooder: the flooder's requests are then still taken while it drains.
    const asked = server.sendTo('flooder', 'question', { timeout: 10_000 }).catch((e: unknown) => e);
    const inFlight = good.sendTo('hub', 'slow');
    await delay(20);
    const started = Date.now();
    const closing = server.close({ drain: 400 });
    let flooding = true;
    const rnd = prng(5);
    const flood = (async () => {
      for (let id = 100; flooding; id++) {
        peer.write(Buffer.concat([request(id, 'x'), control(FrameType.GOAWAY, id, Buffer.from('junk')), control(FrameType.REQUEST_N, 1, u32(0xffff_ffff)), control(FrameType.CANCEL, id - 50), control(rnd() < 0.5 ? FrameType.PING : FrameType.PONG, id)]));
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await expect(good.pingTo('hub', { timeout: 2000 })).resolves.toEqual(expect.any(Number));
    await expect(inFlight).resolves.toBe('late');
    await closing;
    flooding = false;
    await flood;
    expect(Date.now() - started).toBeLessThan(400 + 2000 + 3000); // the deadline, the CLOSE’s grace, slack
    expect((await asked) as IpcError).toBeInstanceOf(IpcError);
    expect(peer.of(FrameType.GOAWAY)).toHaveLength(1);
    expect(peer.of(FrameType.REPLY).length).toBeGreaterThan(0); // its requests were taken meanwhile
    await until(() => sources.released === sources.started);
    expectTyped(server.errors);
  });

  it('during close({ drain }), a peer the hub awaits nothing from: each of its requests is refused unhandled (ERR_IPC_CLOSED), never given to the handler', async () => {
    const { server, address, sources } = await hub();
    let handled = 0;
    server.on('message', (m) => {
      if (m.from === 'late') handled++;
    });
    const peer = new RawPeer(address);
    peer.write(handshakeBytes('late'));
    await until(() => server.get('late') !== undefined);
    peer.write(request(1, 'hold'));
    await until(() => handled === 1);
    const closing = server.close({ drain: 300 });
    await until(() => peer.of(FrameType.GOAWAY).length === 1);
    peer.write(Buffer.concat(Array.from({ length: 50 }, (_, i) => request(10 + i, i % 2 ? 'stream' : 'x', 5))));
    await until(() => peer.of(FrameType.ERROR).length === 50);
    expect(peer.of(FrameType.ERROR).map((f) => JSON.parse(f.payload.toString()).code)).toEqual(Array(50).fill(ErrorCode.CLOSED));
    expect(handled).toBe(1);
    await closing;
    expect(sources.started).toBe(0);
  });

  it('after its CLOSE, a peer’s frames are not handled: its requests reach no handler, its socket ends', async () => {
    const { server, address, good } = await hub();
    let handled = 0;
    server.on('message', (m) => {
      if (m.from === 'closer') handled++;
    });
    const peer = new RawPeer(address);
    const close = bytes(jsonFrame(FrameType.CLOSE, 0, { code: ErrorCode.CLOSED, message: 'bye', reconnect: false }));
    peer.write(Buffer.concat([handshakeBytes('closer'), request(1, 'x'), close, request(2, 'x'), request(2, 'x'), control(FrameType.GOAWAY, 0), randomFrame(prng(1))]));
    await peer.closed;
    expect(handled).toBe(1);
    expect(peer.of(FrameType.REPLY).map((f) => f.id)).toEqual([1]);
    expect(server.errors).toEqual([]);
    await served(good);
  });
});

// ─── after close(): the process can exit ─────────────────────────────────────────────────────────────

describe('(child process) after node.close(), the process exits by itself whatever state hostile peers left it in', () => {
  it.each([
    ['TCP', false],
    ['a Unix socket', true],
  ])('%s: half a hello, half a frame, an idle handshake, a stream without credits, a held request, a GOAWAY, a request of ours pending', async (_, unix) => {
    const child = spawnNode([join(ROOT, 'spec', 'fixtures', 'fuzz-review.js'), ...(unix ? [socketPath()] : [])]);
    await child.waitFor('"listening"');
    const address = JSON.parse(child.output().split('\n').find((l) => l.includes('listening'))!).listening as number | string;
    const peers = Array.from({ length: 7 }, () => new RawPeer(address));
    await Promise.all(peers.map((p) => once(p.socket, 'connect')));
    const [halfHello, halfFrame, idle, stream, held, goaway, asked] = peers;
    halfHello.write(hello('half').subarray(0, 30));
    halfFrame.write(Buffer.concat([handshakeBytes('half-frame'), request(1, 'x'.repeat(100)).subarray(0, HEADER_SIZE + 10)]));
    void idle;
    stream.write(Buffer.concat([handshakeBytes('streamer'), request(1, 'stream', 0), request(2, 'stream', 3)]));
    held.write(Buffer.concat([handshakeBytes('holder'), request(1, 'hold')]));
    goaway.write(Buffer.concat([handshakeBytes('goaway'), control(FrameType.GOAWAY, 9, Buffer.from('junk')), request(1, 'hold')]));
    asked.write(handshakeBytes('ask-me'));
    await child.waitFor('"asked"');
    await until(() => held.of(FrameType.HANDSHAKE).length === 2 && stream.of(FrameType.STREAM_NEXT).length === 3 && goaway.of(FrameType.HANDSHAKE).length === 2);
    // The attackers stay connected, read nothing more and close nothing: close() must end them all.
    peers.forEach((p) => p.socket.pause());
    child.process.stdin!.end();
    await child.waitFor('"closed"', 10_000);
    await expect(exitWithin(child, 5000)).resolves.toEqual({ code: 0, signal: null });
    peers.forEach((p) => p.socket.destroy());
  });
});
