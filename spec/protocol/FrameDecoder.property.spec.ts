import fc from 'fast-check';
import { FrameDecoder, IpcError, PeerDisconnectedError, ProtocolError, type Frame } from '../../src';
import { cut, plain, wire } from '../helpers/frames';

const frameArb = fc.record({
  type: fc.integer({ min: 0, max: 255 }),
  flags: fc.integer({ min: 0, max: 255 }),
  id: fc.nat({ max: 0xffffffff }),
  encoding: fc.integer({ min: 0, max: 255 }),
  payload: fc.uint8Array({ maxLength: 600 }).map((bytes) => Buffer.from(bytes)),
});

function decode(chunks: Buffer[], maxFrameSize?: number): { frames: Frame[]; error?: unknown } {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((f) => frames.push(f), { maxFrameSize });
  try {
    for (const chunk of chunks) decoder.push(chunk);
    decoder.end();
    return { frames };
  } catch (error) {
    return { frames, error };
  }
}

describe('FrameDecoder (properties)', () => {
  it('decodes any list of frames, cut into any chunks, to the same frames', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 12 }), fc.array(fc.nat({ max: 10_000 }), { maxLength: 40 }), (frames, offsets) => {
        const bytes = wire(...frames);
        const { frames: decoded, error } = decode(cut(bytes, offsets));
        expect(error).toBeUndefined();
        expect(decoded.map(plain)).toEqual(frames.map(plain));
      }),
      { numRuns: 500 },
    );
  });

  it('never crashes or hangs on random bytes: it yields frames, then at most one typed error', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 256 }), { maxLength: 20 }), fc.nat({ max: 4096 }), (chunks, max) => {
        const { frames, error } = decode(chunks.map((c) => Buffer.from(c)), max);
        if (error !== undefined) {
          expect(error instanceof ProtocolError || error instanceof PeerDisconnectedError).toBe(true);
        }
        for (const f of frames) expect(f.payload.length).toBeLessThanOrEqual(max);
      }),
      { numRuns: 2000 },
    );
  });

  it('survives valid frames with bytes flipped at random positions', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.array(fc.nat({ max: 4000 }), { maxLength: 10 }),
        (frames, flips, offsets) => {
          const bytes = Buffer.from(wire(...frames));
          for (const [at, value] of flips) bytes[at % bytes.length] = value;
          const { error } = decode(cut(bytes, offsets), 1024);
          if (error !== undefined) expect(error).toBeInstanceOf(IpcError);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
