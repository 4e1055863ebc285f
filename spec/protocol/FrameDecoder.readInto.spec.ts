import fc from 'fast-check';
import { ErrorCode, FrameDecoder, HEADER_SIZE, PeerDisconnectedError, type Frame } from '../../src';
import { frame, plain, thrown, wire } from '../helpers/frames';

/**
 * Plays a socket in read-into mode: each read copies up to `sizes[i]` bytes of `bytes` (never more than the
 * target has room for) into `decoder.readTarget()`, then reports them with `wrote`.
 */
function readInto(decoder: FrameDecoder, bytes: Buffer, sizes: number[] = [65536]): void {
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const target = decoder.readTarget();
    const n = Math.min(sizes[i % sizes.length] || 1, target.length, bytes.length - at);
    bytes.copy(target, 0, at, at + n);
    at += n;
    decoder.wrote(n);
  }
}

function decodeInto(bytes: Buffer, sizes?: number[], maxFrameSize?: number): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((f) => frames.push(f), { maxFrameSize });
  readInto(decoder, bytes, sizes);
  decoder.end();
  return frames;
}

/** Bytes that show where they came from: byte i of a payload is (i * 7 + seed) & 0xff. */
function pattern(size: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 7 + seed) & 0xff;
  return bytes;
}

/** Small and large payload sizes (large ones go straight into their own buffer). */
const sizeArb = fc.oneof(fc.nat({ max: 300 }), fc.integer({ min: 20_000, max: 300_000 }));

describe('FrameDecoder, read-into mode', () => {
  it('decodes any frames, small and large, read in reads of any size, to the same frames', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(sizeArb, fc.nat({ max: 0xffffffff })), { maxLength: 10 }),
        fc.array(fc.integer({ min: 1, max: 100_000 }), { minLength: 1, maxLength: 20 }),
        (specs, sizes) => {
          const frames = specs.map(([size, id]) => frame({ id, type: 1 + (id % 12), encoding: id % 7, payload: pattern(size, id) }));
          expect(decodeInto(wire(...frames), sizes).map(plain)).toEqual(frames.map(plain));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('reads a 16 MiB body into the buffer that becomes its payload: nothing copied but what came with the header', () => {
    const size = 16 * 1024 * 1024;
    const payload = pattern(size, 3);
    const bytes = wire(frame({ payload }));
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((f) => frames.push(f), { maxFrameSize: size });
    const targets = new Set<ArrayBufferLike>();
    const copy = jest.spyOn(Buffer.prototype, 'copy');
    let at = 0;
    try {
      while (at < bytes.length) {
        const target = decoder.readTarget();
        targets.add(target.buffer);
        const n = Math.min(65536, target.length, bytes.length - at);
        target.set(bytes.subarray(at, at + n)); // the "kernel" writes; not a Buffer#copy
        at += n;
        decoder.wrote(n);
      }
    } finally {
      copy.mockRestore();
    }
    const copied = copy.mock.calls.reduce((sum, call) => sum + ((call[3] as number) - (call[2] as number)), 0);
    expect(frames).toHaveLength(1);
    expect(frames[0].payload.equals(payload)).toBe(true);
    expect(targets.has(frames[0].payload.buffer)).toBe(true);
    // Only the body bytes that arrived in the same read as the header are copied (less than one read).
    expect(copied).toBeLessThan(65536);
  });

  it('hands out small frames as views of the slab, also when a frame spans two reads', () => {
    const frames = [frame({ id: 1, payload: pattern(100, 1) }), frame({ id: 2, payload: pattern(200, 2) })];
    const bytes = wire(...frames);
    const decoded: Frame[] = [];
    const decoder = new FrameDecoder((f) => decoded.push(f));
    const slab = decoder.readTarget().buffer;
    readInto(decoder, bytes, [HEADER_SIZE + 50, 7, 1000]);
    expect(decoded.map(plain)).toEqual(frames.map(plain));
    expect(decoded.every((f) => f.payload.buffer === slab)).toBe(true);
  });

  it('never hands a read a place that holds bytes already read', () => {
    const bytes = wire(...Array.from({ length: 70 }, (_, i) => frame({ id: i, payload: pattern(1000, i) })));
    const decoder = new FrameDecoder(() => undefined);
    const write = (from: number, n: number) => {
      bytes.copy(decoder.readTarget(), 0, from, from + n);
      decoder.wrote(n);
    };
    const first = decoder.readTarget();
    expect(decoder.readTarget().byteOffset).toBe(first.byteOffset); // the same place until something is written
    write(0, 10);
    const second = decoder.readTarget();
    expect(second.buffer).toBe(first.buffer);
    expect(second.byteOffset).toBe(first.byteOffset + 10);
    // A nearly full slab is retired rather than handing out a tiny target.
    write(10, second.length - 100);
    const third = decoder.readTarget();
    expect(third.buffer).not.toBe(first.buffer);
    expect(third.length).toBe(64 * 1024);
  });

  it('checks the declared length against maxFrameSize before allocating the body', () => {
    const alloc = jest.spyOn(Buffer, 'allocUnsafe');
    const decoder = new FrameDecoder(() => undefined, { maxFrameSize: 1024 * 1024 });
    const header = wire(frame({ payload: Buffer.alloc(0) }));
    header.writeUInt32BE(64 * 1024 * 1024, 12);
    try {
      const target = decoder.readTarget();
      header.copy(target);
      expect(thrown(() => decoder.wrote(HEADER_SIZE)).code).toBe(ErrorCode.FRAME_TOO_LARGE);
      expect(alloc.mock.calls.some(([n]) => n > 1024 * 1024)).toBe(false);
      // Stays failed, and still offers a place to read into (the socket is being closed).
      expect(thrown(() => decoder.wrote(1)).code).toBe(ErrorCode.FRAME_TOO_LARGE);
      expect(decoder.readTarget().length).toBeGreaterThan(0);
    } finally {
      alloc.mockRestore();
    }
  });

  it('fails on bad magic', () => {
    const decoder = new FrameDecoder(() => undefined);
    Buffer.from('GET / HTTP/1.1\r\n\r\n').copy(decoder.readTarget());
    expect(thrown(() => decoder.wrote(18)).code).toBe(ErrorCode.PROTOCOL);
  });

  it('counts what it holds, and fails when the stream ends inside a large body', () => {
    const size = 200_000;
    const bytes = wire(frame({ payload: pattern(size, 9) }));
    const decoder = new FrameDecoder(() => undefined);
    readInto(decoder, bytes.subarray(0, 100_000));
    expect(decoder.inFrame).toBe(true);
    expect(decoder.bufferedBytes).toBe(100_000 - HEADER_SIZE);
    const error = thrown(() => decoder.end(), PeerDisconnectedError);
    expect(error.code).toBe(ErrorCode.PEER_DISCONNECTED);
    expect(error.message).toContain(`${size - (100_000 - HEADER_SIZE)} more byte(s)`);
  });

  it('keeps decoding after a frame handler throws', () => {
    const seen: number[] = [];
    const decoder = new FrameDecoder((f) => {
      seen.push(f.id);
      if (f.id === 1) throw new Error('handler failed');
    });
    const bytes = wire(frame({ id: 1, payload: pattern(100_000, 5) }), frame({ id: 2, payload: Buffer.from('after') }));
    let at = 0;
    const feed = () => {
      while (at < bytes.length) {
        const target = decoder.readTarget();
        const n = Math.min(65536, target.length, bytes.length - at);
        bytes.copy(target, 0, at, at + n);
        at += n;
        decoder.wrote(n);
      }
    };
    expect(feed).toThrow('handler failed'); // thrown by the read that completed frame 1
    feed();
    expect(seen).toEqual([1, 2]);
  });
});
