/**
 * Hostile review 2 (names, user codecs): each test a problem found by misusing the API or a raw peer.
 */
import { lastValueFrom, toArray } from 'rxjs';
import { defaultCodec, DEFAULT_MAX_FRAME_SIZE, ErrorCode, FrameDecoder, FrameType, Node, PROTOCOL_NAME, PROTOCOL_VERSION, type Codec, type Frame } from '../../src';
import { jsonFrame } from '../../src/internal';
import { natsTransport } from '../../src/nats';
import { closeAll, delay, link, node, serveTcp } from '../helpers/net';
import { bytes, closed, rawClient } from '../helpers/raw';

afterEach(closeAll);

/** A codec that answers the string 'POISON' with a payload of tag 200, which `decode200` decodes. */
function poisonCodec(decode200: () => unknown, encodeBad?: () => unknown): Codec {
  return {
    encode: (value) => (value === 'BAD' && encodeBad ? (encodeBad() as ReturnType<Codec['encode']>) : value === 'POISON' ? { encoding: 200, payload: Buffer.from('p') } : defaultCodec.encode(value)),
    decode: (payload, encoding) => (encoding === 200 ? decode200() : defaultCodec.decode(payload, encoding)),
  };
}

async function pair(codec: Codec) {
  const server = node('srv', { heartbeatInterval: 0, codec });
  const client = node('cli', { heartbeatInterval: 0, codec });
  await link(server, client, 'tcp');
  server.on('message', (m) => {
    if (m.data === 'reply') m.reply('POISON');
    else if (m.data === 'stream') m.stream(['a', 'POISON', 'b']);
    else m.reply('fine');
  });
  return { server, client };
}

/** Settles within `ms`, or resolves with 'HANG'. */
function within<T>(promise: Promise<T>, ms = 2000): Promise<T | 'HANG'> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<'HANG'>((resolve) => (timer = setTimeout(() => resolve('HANG'), ms)));
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer));
}

describe('a user codec', () => {
  it('whose decode returns a thenable fails that message with ERR_IPC_DECODE (a reply no longer hangs sendTo)', async () => {
    const { client } = await pair(poisonCodec(() => ({ then() {} })));
    await expect(within(client.sendTo('srv', 'reply'))).rejects.toMatchObject({ code: ErrorCode.DECODE });
    await expect(within(lastValueFrom(client.request$('srv', 'stream').pipe(toArray())))).rejects.toMatchObject({ code: ErrorCode.DECODE });
    await expect(client.sendTo('srv', 'POISON')).rejects.toMatchObject({ remoteCode: ErrorCode.DECODE });
    await expect(client.sendTo('srv', 'x')).resolves.toBe('fine');
  });

  it("whose decode returns a Promise whose constructor getter throws fails with ERR_IPC_DECODE (that error escaped)", async () => {
    const trap = () => Object.defineProperty(Promise.resolve(1), 'constructor', { get: () => { throw new Error('constructor trap'); } });
    const { client } = await pair(poisonCodec(trap));
    await expect(within(client.sendTo('srv', 'reply'))).rejects.toMatchObject({ code: ErrorCode.DECODE });
    await expect(client.sendTo('srv', 'x')).resolves.toBe('fine');
  });

  it('whose encode returns a rejecting Promise fails with ERR_IPC_ENCODE, and no rejection goes unhandled', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const { client } = await pair(poisonCodec(() => 1, () => Promise.reject(new Error('async encode failed'))));
      await expect(client.sendTo('srv', 'BAD')).rejects.toMatchObject({ code: ErrorCode.ENCODE });
      await expect(client.sendTo('srv', 'BAD', { receptive: false })).rejects.toMatchObject({ code: ErrorCode.ENCODE });
      await delay(20);
      expect(unhandled).toEqual([]);
      await expect(client.sendTo('srv', 'x')).resolves.toBe('fine');
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it.each([
    ['a null-prototype object', () => Object.create(null) as unknown],
    ['an object whose toString throws', () => ({ toString: () => { throw new Error('no'); } })],
  ])('that throws %s fails with ERR_IPC_DECODE / ERR_IPC_ENCODE, not a TypeError of ours', async (_, thrown) => {
    const fail = () => {
      throw thrown();
    };
    const { client } = await pair(poisonCodec(fail, fail));
    await expect(client.sendTo('srv', 'reply')).rejects.toMatchObject({ code: ErrorCode.DECODE });
    await expect(client.sendTo('srv', 'BAD')).rejects.toMatchObject({ code: ErrorCode.ENCODE });
    await expect(client.sendTo('srv', 'x')).resolves.toBe('fine');
  });
});

describe('names with lone surrogates', () => {
  it.each(['x\uD800', 'x\uDC00', '\uDC00\uD800'])('are a TypeError of new Node and connectTo (%j)', async (name) => {
    expect(() => new Node(name)).toThrow(TypeError);
    const client = node('cli');
    await expect(client.connectTo(name, 1, '127.0.0.1')).rejects.toThrow(TypeError);
    // A well-formed pair is one character, not two lone surrogates.
    expect(node('😀'.repeat(128)).name).toBe('😀'.repeat(128));
  });

  it('in a peer hello are refused with ERR_IPC_HANDSHAKE (UTF-8 in the HMAC would make "x\\uD800" sign as "x\\uFFFD")', async () => {
    const server = node('hub', { heartbeatInterval: 0, auth: { secret: 'sekret' } });
    const port = await serveTcp(server);
    const raw = rawClient(port);
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((frame) => frames.push(frame));
    raw.on('data', (chunk: Buffer) => decoder.push(chunk));
    raw.write(bytes(jsonFrame(FrameType.HANDSHAKE, 1, { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name: 'x\uD800', maxFrameSize: DEFAULT_MAX_FRAME_SIZE, nonce: 'AAAA' })));
    await closed(raw);
    expect(frames.map((f) => [f.type, JSON.parse(Buffer.from(f.payload).toString()).code])).toEqual([[FrameType.CLOSE, ErrorCode.HANDSHAKE]]);
  });
});

describe('a NATS prefix with a lone surrogate', () => {
  it('is a TypeError: subjects are UTF-8, where "ipc\\uD800" and "ipc\\uDC00" would be one fleet', () => {
    expect(() => natsTransport({ prefix: 'ipc\uD800' })).toThrow(TypeError);
    expect(() => natsTransport({ prefix: 'a.\uDC00' })).toThrow(TypeError);
  });
});
