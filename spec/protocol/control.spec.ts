import { ErrorCode, HandshakeError, ProtocolError } from '../../src/errors';
import { Encoding, FrameFlags, FrameType, HANDSHAKE_MAX_FRAME_SIZE, MIN_FRAME_SIZE, PROTOCOL_VERSION } from '../../src/protocol/constants';
import {
  closeFrame,
  encodeError,
  encodeRequestN,
  handshakeFrame,
  PROTOCOL_NAME,
  readAck,
  readHello,
  jsonFrame,
  putWindow,
  readClose,
  readError,
  readJson,
  readRequestN,
  readWindow,
  WINDOW_SIZE,
  type ErrorBody,
} from '../../src/protocol/control';
import type { Frame } from '../../src/protocol/Frame';
import type { OutgoingFrame } from '../../src/protocol/FrameEncoder';

function frame(type: number, payload: Buffer | string, flags = 0): Frame {
  return { type, flags, id: 7, encoding: Encoding.JSON, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8') };
}

function received(sent: OutgoingFrame): Frame {
  return { ...sent, payload: Buffer.from(sent.payload) };
}

const protocolError = (code: string = ErrorCode.PROTOCOL) => expect.objectContaining({ name: ProtocolError.name, code });

describe('jsonFrame / readJson', () => {
  it('round-trips a JSON object', () => {
    const sent = jsonFrame(FrameType.HANDSHAKE, 3, { proof: 'p', n: 1 });
    expect(sent).toMatchObject({ type: FrameType.HANDSHAKE, flags: 0, id: 3, encoding: Encoding.JSON });
    expect(readJson(received(sent))).toEqual({ proof: 'p', n: 1 });
  });

  it.each([
    ['not JSON', '{'],
    ['an array', '[1]'],
    ['null', 'null'],
    ['a string', '"x"'],
    ['empty', ''],
  ])('refuses a body that is %s', (_, body) => {
    expect(() => readJson(frame(FrameType.CLOSE, body))).toThrow(ProtocolError);
    expect(() => readJson(frame(FrameType.CLOSE, body))).toThrow(/Malformed control frame \(type 0x7\): expected a JSON object/);
  });

  it('refuses a body over the limit (16 KiB by default) before parsing it', () => {
    const big = frame(FrameType.HANDSHAKE, `{"a":"${'x'.repeat(HANDSHAKE_MAX_FRAME_SIZE)}"}`);
    expect(() => readJson(big)).toThrow(protocolError());
    expect(() => readJson(big)).toThrow(/at most 16384 are allowed/);
    expect(() => readJson(frame(FrameType.HANDSHAKE, '{"a":1}'), 6)).toThrow(/of 7 bytes: at most 6/);
    expect(readJson(frame(FrameType.HANDSHAKE, '{"a":1}'), 7)).toEqual({ a: 1 });
  });
});

describe('closeFrame / readClose', () => {
  it('round-trips a CLOSE body', () => {
    const body = { code: ErrorCode.NAME_IN_USE, message: 'taken', reconnect: false };
    const sent = closeFrame(body);
    expect(sent).toMatchObject({ type: FrameType.CLOSE, id: 0, encoding: Encoding.JSON });
    expect(readClose(received(sent))).toEqual(body);
  });

  it('fits any peer (MIN_FRAME_SIZE bytes): a long message, say quoting a name of control characters, is cut', () => {
    const name = '\u0001'.repeat(256); // 1,536 bytes of JSON
    for (const message of [`A peer named "${name}" is already connected: give "${name}" a name of its own`, 'é'.repeat(5000), '😀'.repeat(3000)]) {
      const sent = closeFrame({ code: ErrorCode.NAME_IN_USE, message, reconnect: false });
      expect(sent.payload.length).toBeLessThanOrEqual(MIN_FRAME_SIZE);
      const read = readClose(received(sent));
      expect(read).toMatchObject({ code: ErrorCode.NAME_IN_USE, reconnect: false });
      expect(message.startsWith(read.message.replace(/\uFFFD$/, ''))).toBe(true);
      expect(read.message.length).toBeGreaterThan(50);
    }
  });

  it('tolerates missing or mistyped fields', () => {
    expect(readClose(frame(FrameType.CLOSE, '{}'))).toEqual({ code: ErrorCode.CLOSED, message: 'the peer closed the connection', reconnect: true });
    expect(readClose(frame(FrameType.CLOSE, '{"code":1,"message":null,"reconnect":0}'))).toMatchObject({ code: ErrorCode.CLOSED, reconnect: true });
  });

  it('refuses a malformed or oversized body', () => {
    expect(() => readClose(frame(FrameType.CLOSE, 'bye'))).toThrow(protocolError());
    expect(() => readClose(frame(FrameType.CLOSE, `{"message":"${'x'.repeat(HANDSHAKE_MAX_FRAME_SIZE)}"}`))).toThrow(protocolError());
  });
});

describe('encodeError / readError', () => {
  const full: ErrorBody = { name: 'TypeError', message: 'bad input', code: 'E_BAD', stack: 'TypeError: bad input\n    at here' };
  const read = (bytes: Buffer, limit = Infinity) => readError(frame(FrameType.ERROR, bytes), limit);

  it('round-trips every field when the body fits', () => {
    expect(read(encodeError(full, 1024))).toEqual(full);
    expect(read(encodeError({ name: 'Error', message: 'm' }, 1024))).toEqual({ name: 'Error', message: 'm', code: undefined, stack: undefined });
  });

  it('drops the stack first when the body does not fit the limit', () => {
    const body = { ...full, stack: 's'.repeat(2000) };
    const bytes = encodeError(body, 1024);
    expect(bytes.length).toBeLessThanOrEqual(1024);
    expect(read(bytes)).toEqual({ ...full, stack: undefined });
  });

  it('then cuts name and code to 64 characters and the message in half until it fits', () => {
    const body = { name: 'N'.repeat(100), code: 'C'.repeat(100), message: '€'.repeat(2000) };
    const bytes = encodeError(body, 1024);
    expect(bytes.length).toBeLessThanOrEqual(1024);
    expect(read(bytes)).toEqual({ name: 'N'.repeat(64), code: 'C'.repeat(64), message: '€'.repeat(250), stack: undefined });
    // Control characters take 6 bytes each in JSON: still a message (it fell back to "" when 4 bytes were assumed).
    const control = encodeError({ name: 'Error', message: '\u0001'.repeat(2000) }, 1024);
    expect(control.length).toBeLessThanOrEqual(1024);
    expect(read(control).message).toBe('\u0001'.repeat(125));
  });

  it('below its floor keeps only the code (name "Error", empty message)', () => {
    const body = { name: 'N'.repeat(100), code: 'C'.repeat(100), message: 'm'.repeat(100) };
    expect(read(encodeError(body, 100))).toEqual({ name: 'Error', code: 'C'.repeat(64), message: '', stack: undefined });
    expect(read(encodeError({ name: 'X', message: 'm'.repeat(100) }, 10))).toEqual({ name: 'Error', message: '', code: undefined, stack: undefined });
  });

  it('fits any peer limit from MIN_FRAME_SIZE on, whatever the body', () => {
    const worst = { name: '\u{1F600}'.repeat(5000), code: '\u{1F600}'.repeat(5000), message: '\u{1F600}'.repeat(5000), stack: 'x'.repeat(5000) };
    for (const limit of [MIN_FRAME_SIZE, MIN_FRAME_SIZE + 1, 4096]) expect(encodeError(worst, limit).length).toBeLessThanOrEqual(limit);
  });

  it('reads a malformed body tolerantly, with defaults for missing fields', () => {
    expect(read(Buffer.from('not json'))).toEqual({ name: 'Error', message: 'The request failed (unreadable error reply)' });
    expect(read(Buffer.from('[]'))).toEqual({ name: 'Error', message: 'The request failed (unreadable error reply)' });
    expect(read(Buffer.from('{}'))).toEqual({ name: 'Error', message: 'The request failed', code: undefined, stack: undefined });
    expect(read(Buffer.from('{"name":5,"message":true,"code":1,"stack":2}'))).toEqual({ name: '5', message: 'true', code: '1', stack: undefined });
  });

  it('refuses a body over maxDecodedSize without parsing it (ERR_IPC_FRAME_TOO_LARGE)', () => {
    const bytes = encodeError(full, 1024);
    expect(() => read(bytes, bytes.length - 1)).toThrow(protocolError(ErrorCode.FRAME_TOO_LARGE));
    expect(read(bytes, bytes.length)).toEqual(full);
  });
});

describe('encodeRequestN / readRequestN', () => {
  it.each([0, 1, 64, 0xffff_ffff])('round-trips %d as exactly 4 bytes', (n) => {
    const payload = encodeRequestN(n);
    expect(payload.length).toBe(WINDOW_SIZE);
    expect(readRequestN(frame(FrameType.REQUEST_N, payload))).toBe(n);
  });

  it('caps a grant at 2^32-1', () => {
    expect(encodeRequestN(2 ** 40).toString('hex')).toBe('ffffffff');
  });

  it.each([0, 3, 5, 8])('refuses a body of %d bytes', (length) => {
    expect(() => readRequestN(frame(FrameType.REQUEST_N, Buffer.alloc(length)))).toThrow(protocolError());
    expect(() => readRequestN(frame(FrameType.REQUEST_N, Buffer.alloc(length)))).toThrow(`REQUEST_N carries a u32, received ${length} bytes`);
  });
});

describe('putWindow / readWindow', () => {
  const receptive = FrameFlags.RECEPTIVE | FrameFlags.WINDOW;

  it('round-trips the credits, the value read as a view (no copy)', () => {
    const payload = Buffer.alloc(WINDOW_SIZE + 3);
    expect(putWindow(payload, 0, 128)).toBe(WINDOW_SIZE);
    payload.write('abc', WINDOW_SIZE);
    const { credits, value } = readWindow(frame(FrameType.MESSAGE, payload, receptive));
    expect(credits).toBe(128);
    expect(value.toString()).toBe('abc');
    expect(value.buffer).toBe(payload.buffer);
    expect(value.byteOffset).toBe(payload.byteOffset + WINDOW_SIZE);
  });

  it('writes at an offset, big-endian', () => {
    const target = Buffer.alloc(6);
    putWindow(target, 2, 0x01020304);
    expect(target.toString('hex')).toBe('000001020304');
  });

  it('reads an empty value after the window', () => {
    expect(readWindow(frame(FrameType.MESSAGE, Buffer.from('00000001', 'hex'), receptive))).toEqual({ credits: 1, value: Buffer.alloc(0) });
  });

  it.each([0, 1, 3])('refuses a payload of %d bytes', (length) => {
    expect(() => readWindow(frame(FrameType.MESSAGE, Buffer.alloc(length), receptive))).toThrow(`A MESSAGE with WINDOW carries a u32, received ${length} bytes`);
  });

  it('refuses a WINDOW without RECEPTIVE', () => {
    expect(() => readWindow(frame(FrameType.MESSAGE, Buffer.alloc(8), FrameFlags.WINDOW))).toThrow(protocolError());
    expect(() => readWindow(frame(FrameType.MESSAGE, Buffer.alloc(8), FrameFlags.WINDOW))).toThrow('A MESSAGE with WINDOW must be RECEPTIVE');
  });
});

describe('handshakeFrame / readHello / readAck', () => {
  const hello = { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name: 'world', maxFrameSize: MIN_FRAME_SIZE };
  const helloFrame = (body: object) => frame(FrameType.HANDSHAKE, JSON.stringify(body));

  it('round-trips a hello, with and without the auth fields', () => {
    const sent = handshakeFrame(2, { ...hello, nonce: 'n' });
    expect(sent).toMatchObject({ type: FrameType.HANDSHAKE, id: 2, encoding: Encoding.JSON });
    expect(readHello(received(sent))).toEqual({ ...hello, nonce: 'n' });
    expect(readHello(received(handshakeFrame(1, hello)))).toEqual({ ...hello, nonce: undefined });
    // Proofs travel in steps 3 and 4 only: one in a hello is not read.
    expect(readHello(helloFrame({ ...hello, nonce: 'n', proof: 'p' }))).toEqual({ ...hello, nonce: 'n' });
    expect(JSON.parse(handshakeFrame(1, hello).payload.toString())).toEqual(hello);
  });

  it('round-trips an acknowledgement; fields that are not strings read as absent', () => {
    expect(readAck(received(handshakeFrame(3, { proof: 'p' })))).toEqual({ proof: 'p' });
    expect(readAck(received(handshakeFrame(4, {})))).toEqual({ proof: undefined });
    expect(readAck(helloFrame({ proof: 1 }))).toEqual({ proof: undefined });
    expect(readHello(helloFrame({ ...hello, nonce: 1 }))).toMatchObject({ nonce: undefined });
  });

  it.each([
    ['another protocol', { ...hello, protocol: 'x' }, /The peer speaks x version 2/],
    ['another version', { ...hello, version: 1 }, /speaks ipc-link-core version 1; this node speaks ipc-link-core version 2/],
    ['no name', { ...hello, name: '' }, /announced no name/],
    ['a name of 257 characters (ours may have 256)', { ...hello, name: 'n'.repeat(257) }, /a name of 257 characters \(at most 256\)/],
    ['a name with a line feed (one line of the text the proofs sign)', { ...hello, name: 'a\nb' }, /a name with control characters: "a\\nb"/],
    ['a name with a NUL', { ...hello, name: 'a\u0000' }, /a name with control characters/],
    ['a name with a lone surrogate (its UTF-8 in the proofs is U+FFFD) (review)', { ...hello, name: 'b\ud800' }, /a name with a lone surrogate: "b\\ud800"/],
    ['no maxFrameSize', { ...hello, maxFrameSize: undefined }, /no valid maxFrameSize .*received undefined/],
    ['a maxFrameSize below 1024', { ...hello, maxFrameSize: MIN_FRAME_SIZE - 1 }, /no valid maxFrameSize/],
    ['a maxFrameSize over 2^32-1', { ...hello, maxFrameSize: 2 ** 32 }, /no valid maxFrameSize/],
    ['a fractional maxFrameSize', { ...hello, maxFrameSize: 2048.5 }, /no valid maxFrameSize/],
  ])('refuses a hello with %s (ERR_IPC_HANDSHAKE)', (_, body, message) => {
    expect(() => readHello(helloFrame(body))).toThrow(HandshakeError);
    expect(() => readHello(helloFrame(body))).toThrow(message);
  });

  it('refuses a malformed or oversized body (ProtocolError)', () => {
    expect(() => readHello(frame(FrameType.HANDSHAKE, '[]'))).toThrow(protocolError());
    expect(() => readAck(frame(FrameType.HANDSHAKE, 'x'))).toThrow(protocolError());
    expect(() => readHello(helloFrame({ ...hello, pad: 'x'.repeat(HANDSHAKE_MAX_FRAME_SIZE) }))).toThrow(protocolError());
  });
});
