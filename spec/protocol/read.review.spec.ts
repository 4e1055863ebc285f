import { FrameDecoder, type Frame } from '../../src';
import { frame, plain, wire } from '../helpers/frames';

describe('read.review: FrameDecoder', () => {
  it('push re-entered from onFrame with a large chunk that ends inside a frame: every frame decodes whole (the small outer chunk does not gather the inner one into the 16 KiB tail)', () => {
    const small = frame({ id: 1, payload: Buffer.from('hi') });
    const large = frame({ id: 2, payload: Buffer.alloc(40_000, 7) });
    const bytes = wire(large);
    const first = bytes.subarray(0, 30_000);
    const rest = bytes.subarray(30_000);
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((f) => {
      frames.push(f);
      // Over an in-memory link a frame's handler can make the peer write back to us in the same call stack.
      if (f.id === 1) decoder.push(first);
    });
    decoder.push(wire(small));
    decoder.push(rest);
    decoder.end();
    expect(frames.map(plain)).toEqual([plain(small), plain(large)]);
  });
});
