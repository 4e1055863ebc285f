import { firstValueFrom, toArray } from 'rxjs';
import { DEFAULT_MAX_DECODED_SIZE, Encoding, ErrorCode, Node, ProtocolError, RemoteError, Serializer } from '../../src';
import { decodeValue } from '../../src/internal';
import { closeAll, node, serveTcp } from '../helpers/net';

afterEach(closeAll);

const LIMIT = 1024;
const codec = new Serializer();
/** Over LIMIT once encoded: one through structured clone (it holds undefined), one through JSON. */
const bigV8 = { list: Array.from({ length: 400 }, (_, i) => i), missing: undefined };
const bigJson = { list: Array.from({ length: 400 }, () => 'abcd') };
const small = { list: [1, 2, 3], missing: undefined };

/** A server limited to LIMIT that echoes, and a client with the default limits, over TCP. */
async function pair(serverOptions = { maxDecodedSize: LIMIT }, clientOptions = {}) {
  const server = node('server', { heartbeatInterval: 0, ...serverOptions });
  const client = node('client', { heartbeatInterval: 0, ...clientOptions });
  const port = await serveTcp(server);
  const socket = await client.connectTo('server', port, '127.0.0.1');
  return { server, client, socket };
}

describe('maxDecodedSize', () => {
  it('the values used here take the encodings and sizes the specs mean', () => {
    expect(codec.encode(bigV8).encoding).toBe(Encoding.V8);
    expect(codec.encode(bigV8).payload.length).toBeGreaterThan(LIMIT);
    expect(codec.encode(bigJson).encoding).toBe(Encoding.JSON);
    expect(codec.encode(bigJson).payload.length).toBeGreaterThan(LIMIT);
    expect(codec.encode(small).payload.length).toBeLessThan(LIMIT);
  });

  it('answers an over-limit V8 or JSON request with ERR_IPC_FRAME_TOO_LARGE, that request only', async () => {
    const { server, client, socket } = await pair();
    const seen: unknown[] = [];
    server.on('message', (m) => {
      seen.push(m.data);
      m.reply(m.data);
    });
    for (const value of [bigV8, bigJson]) {
      const error = await client.sendTo('server', value).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RemoteError);
      expect((error as RemoteError).remoteCode).toBe(ErrorCode.FRAME_TOO_LARGE);
    }
    expect(seen).toEqual([]);
    expect(server.errors.map((e) => (e as ProtocolError).code)).toEqual([ErrorCode.FRAME_TOO_LARGE, ErrorCode.FRAME_TOO_LARGE]);
    // The connection is still up: under the limit, and raw bytes or text above it (only maxFrameSize bounds them).
    await expect(client.sendTo('server', small)).resolves.toStrictEqual(small);
    const bytes = Buffer.alloc(64 * 1024, 7);
    await expect(client.sendTo('server', bytes)).resolves.toEqual(bytes);
    await expect(client.sendTo('server', 'x'.repeat(64 * 1024))).resolves.toBe('x'.repeat(64 * 1024));
    expect(socket.connected).toBe(true);
  });

  it('drops an over-limit one-way message with an error event; the next one arrives', async () => {
    const { server, client } = await pair();
    const arrived = firstValueFrom(server.messages$); // (events.once would reject on the 'error' event)
    await client.sendTo('server', bigJson, { receptive: false });
    await client.sendTo('server', small, { receptive: false });
    const message = await arrived;
    expect(message.data).toStrictEqual(small);
    expect(server.errors).toHaveLength(1);
    expect(server.errors[0]).toBeInstanceOf(ProtocolError);
    expect((server.errors[0] as ProtocolError).code).toBe(ErrorCode.FRAME_TOO_LARGE);
  });

  it('fails one request whose reply is over the requester limit; the connection stays up', async () => {
    const { server, client } = await pair({ maxDecodedSize: DEFAULT_MAX_DECODED_SIZE }, { maxDecodedSize: LIMIT });
    server.on('message', (m) => m.reply(m.data === 'big' ? bigV8 : small));
    const error = await client.sendTo('server', 'big').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).code).toBe(ErrorCode.FRAME_TOO_LARGE);
    await expect(client.sendTo('server', 'small')).resolves.toStrictEqual(small);
  });

  it('fails a stream whose value is over the requester limit, not the connection', async () => {
    const { server, client } = await pair({ maxDecodedSize: DEFAULT_MAX_DECODED_SIZE }, { maxDecodedSize: LIMIT });
    server.on('message', (m) => m.stream(m.data === 'big' ? [small, bigJson, small] : [small, small]));
    const error = await firstValueFrom(client.request$('server', 'big').pipe(toArray())).catch((e: unknown) => e);
    expect((error as ProtocolError).code).toBe(ErrorCode.FRAME_TOO_LARGE);
    await expect(firstValueFrom(client.request$('server', 'ok').pipe(toArray()))).resolves.toStrictEqual([small, small]);
  });

  it('is checked before decoding, for every encoding that builds objects', () => {
    const throwing = { encode: () => ({ encoding: 0, payload: Buffer.alloc(0) }), decode: () => { throw new Error('decoded'); } };
    for (const encoding of [Encoding.V8, Encoding.JSON, Encoding.ERROR, 0x80, 0xff]) {
      expect(() => decodeValue(throwing, Buffer.alloc(11), encoding, 10)).toThrow(expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }));
      expect(() => decodeValue(throwing, Buffer.alloc(10), encoding, 10)).toThrow(expect.objectContaining({ code: ErrorCode.DECODE }));
    }
    for (const encoding of [Encoding.BUFFER, Encoding.UINT8ARRAY, Encoding.STRING]) {
      expect(decodeValue(codec, Buffer.alloc(11), encoding, 10)).toHaveLength(11);
    }
  });

  it('defaults to 4 MiB and is validated like the other options', () => {
    expect(DEFAULT_MAX_DECODED_SIZE).toBe(4 * 1024 * 1024);
    expect(() => new Node('n', { maxDecodedSize: -1 })).toThrow(TypeError);
    expect(() => new Node('n', { maxDecodedSize: NaN })).toThrow(TypeError);
  });
});
