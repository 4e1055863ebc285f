import { ErrorCode, FrameDecoder, HEADER_SIZE, PeerDisconnectedError, type Frame } from '../../src';
import { cut, frame, plain, thrown, wire } from '../helpers/frames';

function decodeAll(chunks: Buffer[], maxFrameSize?: number): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((f) => frames.push(f), { maxFrameSize });
  for (const chunk of chunks) decoder.push(chunk);
  decoder.end();
  return frames;
}

const sample = [
  frame({ type: 0x01, flags: 1, id: 1, encoding: 2, payload: Buffer.from('hello') }),
  frame({ type: 0x02, id: 0xffffffff, payload: Buffer.alloc(0) }),
  frame({ type: 0x07, id: 42, encoding: 5, payload: Buffer.from('{"a":1}') }),
  frame({ type: 0x01, id: 7, payload: Buffer.alloc(300, 0xab) }),
];
const sampleWire = wire(...sample);

describe('FrameDecoder', () => {
  it('decodes the hex fixture from PROTOCOL.md', () => {
    const bytes = Buffer.from('494c0201010200000000000100000002' + '6869', 'hex');
    expect(decodeAll([bytes]).map(plain)).toEqual([
      { type: 1, flags: 1, id: 1, encoding: 2, payload: Buffer.from('hi').toString('hex') },
    ]);
  });

  it('decodes frames glued in one chunk', () => {
    expect(decodeAll([sampleWire]).map(plain)).toEqual(sample.map(plain));
  });

  it('decodes frames arriving one byte at a time', () => {
    const bytes = [...sampleWire].map((b) => Buffer.from([b]));
    expect(decodeAll(bytes).map(plain)).toEqual(sample.map(plain));
  });

  it('decodes frames split at every offset (two cuts)', () => {
    const expected = sample.map(plain);
    for (let i = 1; i < sampleWire.length; i++) {
      for (let j = i; j < sampleWire.length; j += 7) {
        expect(decodeAll(cut(sampleWire, [i, j])).map(plain)).toEqual(expected);
      }
    }
  });

  it('hands out a view, not a copy, when a frame lies inside one chunk', () => {
    const chunk = wire(frame({ payload: Buffer.from('abcdef') }), frame({ payload: Buffer.from('xyz') }));
    const frames = decodeAll([chunk]);
    expect(frames[0].payload.buffer).toBe(chunk.buffer);
    expect(frames[1].payload.buffer).toBe(chunk.buffer);
    expect(frames[1].payload.toString()).toBe('xyz');
  });

  it('copies a 64 MiB frame arriving in 64 KiB chunks exactly once', () => {
    const size = 64 * 1024 * 1024;
    const payload = Buffer.alloc(size, 7);
    const bytes = wire(frame({ payload }));
    const chunks = cut(bytes, Array.from({ length: Math.ceil(bytes.length / 65536) }, (_, i) => (i + 1) * 65536));
    const copy = jest.spyOn(Buffer.prototype, 'copy');
    let frames: Frame[];
    try {
      frames = decodeAll(chunks, size);
    } finally {
      copy.mockRestore();
    }
    const copied = copy.mock.calls.reduce((sum, call) => sum + ((call[3] as number) - (call[2] as number)), 0);
    expect(frames).toHaveLength(1);
    expect(frames[0].payload.length).toBe(size);
    expect(frames[0].payload.equals(payload)).toBe(true);
    // The header (16 bytes) lies in the first chunk; the body is copied once.
    expect(copied).toBeLessThanOrEqual(size + HEADER_SIZE);
  });

  it('never allocates a body from the declared length before its bytes arrive', () => {
    const size = 4 * 1024 * 1024;
    const bytes = wire(frame({ payload: Buffer.alloc(size, 3) }));
    const alloc = jest.spyOn(Buffer, 'allocUnsafe');
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((f) => frames.push(f), { maxFrameSize: size });
    try {
      decoder.push(bytes.subarray(0, bytes.length - 1));
      expect(alloc.mock.calls.some(([n]) => n >= size)).toBe(false);
      expect(decoder.bufferedBytes).toBe(size - 1);
      decoder.push(bytes.subarray(bytes.length - 1));
    } finally {
      alloc.mockRestore();
    }
    expect(frames[0].payload.length).toBe(size);
  });

  it('decodes large frames mixed with small ones, cut anywhere', () => {
    const big = frame({ id: 9, payload: Buffer.from(Array.from({ length: 600_000 }, (_, i) => i % 251)) });
    const bytes = wire(frame({ id: 1, payload: Buffer.from('a') }), big, frame({ id: 2, payload: Buffer.from('b') }), big);
    const expected = [1, 9, 2, 9];
    for (const step of [1000, 65536, 333_333, 700_000]) {
      const offsets = Array.from({ length: Math.ceil(bytes.length / step) }, (_, i) => (i + 1) * step + (i % 7));
      const frames = decodeAll(cut(bytes, offsets), 1 << 20);
      expect(frames.map((f) => f.id)).toEqual(expected);
      expect(frames[1].payload.equals(big.payload)).toBe(true);
      expect(frames[3].payload.equals(big.payload)).toBe(true);
    }
  });

  it('rejects a declared length above maxFrameSize before buffering the body', () => {
    const header = wire(frame({ payload: Buffer.alloc(1025) })).subarray(0, HEADER_SIZE);
    const decoder = new FrameDecoder(() => undefined, { maxFrameSize: 1024 });
    const error = thrown(() => decoder.push(header));
    expect(error.code).toBe(ErrorCode.FRAME_TOO_LARGE);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('reads the limit from a function before each header', () => {
    let limit = 4;
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((f) => frames.push(f), { maxFrameSize: () => limit });
    decoder.push(wire(frame({ payload: Buffer.from('abcd') })));
    limit = 8;
    decoder.push(wire(frame({ payload: Buffer.from('abcdefgh') })));
    expect(frames).toHaveLength(2);
    expect(thrown(() => decoder.push(wire(frame({ payload: Buffer.alloc(9) })))).code).toBe(ErrorCode.FRAME_TOO_LARGE);
  });

  it('fails on bad magic with ERR_IPC_PROTOCOL, and stays failed', () => {
    const decoder = new FrameDecoder(() => undefined);
    const error = thrown(() => decoder.push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')));
    expect(error.code).toBe(ErrorCode.PROTOCOL);
    expect(error.message).toMatch(/magic/);
    expect(thrown(() => decoder.push(sampleWire))).toBe(error);
  });

  it('fails on an unsupported version', () => {
    const bytes = wire(frame());
    bytes[2] = 9;
    const error = thrown(() => decodeAll([bytes]));
    expect(error.code).toBe(ErrorCode.PROTOCOL);
    expect(error.message).toMatch(/version 9/);
  });

  it('says the peer went away (ERR_IPC_PEER_DISCONNECTED, not a protocol error) when the stream ends inside a frame', () => {
    const bytes = wire(frame({ payload: Buffer.from('hello') }));
    for (const end of [3, HEADER_SIZE, bytes.length - 1]) {
      expect(thrown(() => decodeAll([bytes.subarray(0, end)]), PeerDisconnectedError).code).toBe(ErrorCode.PEER_DISCONNECTED);
    }
  });

  it('keeps decoding after a frame handler throws', () => {
    const seen: number[] = [];
    const decoder = new FrameDecoder((f) => {
      seen.push(f.id);
      if (f.id === 1) throw new Error('handler');
    });
    expect(() => decoder.push(wire(frame({ id: 1 }), frame({ id: 2 })))).toThrow('handler');
    decoder.push(wire(frame({ id: 3 })));
    expect(seen).toEqual([1, 2, 3]);
  });
});
