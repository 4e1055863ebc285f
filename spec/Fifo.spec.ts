import fc from 'fast-check';
import { Fifo } from '../src/Fifo';

describe('Fifo', () => {
  it('gives values back in the order they came, like an array with push and shift', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.integer(), fc.constant('shift'), fc.constant(undefined)), { maxLength: 5000 }), (ops) => {
        const fifo = new Fifo<unknown>();
        const model: unknown[] = [];
        for (const op of ops) {
          if (op === 'shift') expect(fifo.shift()).toBe(model.shift());
          else {
            fifo.push(op);
            model.push(op);
          }
          expect(fifo.length).toBe(model.length);
        }
      }),
    );
  });

  it('keeps its order across the cut of the array it reads from (after 1,024 shifts, at half read)', () => {
    const fifo = new Fifo<number>();
    const out: Array<number | undefined> = [];
    let next = 0;
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 3000; i++) fifo.push(next++);
      for (let i = 0; i < 2000; i++) out.push(fifo.shift());
    }
    while (fifo.length > 0) out.push(fifo.shift());
    expect(out).toEqual(Array.from({ length: next }, (_, i) => i));
    expect(fifo.shift()).toBeUndefined();
  });

  it('(was Array#shift: 12.8 s for 100,000) empties 1,000,000 values one at a time, pushes in between, in well under 5 s', () => {
    const fifo = new Fifo<{ i: number }>();
    for (let i = 0; i < 1_000_000; i++) fifo.push({ i });
    const start = Date.now();
    let sum = 0;
    for (let i = 0; i < 1_000_000; i++) {
      sum += fifo.shift()!.i;
      if (i % 2 === 0) fifo.push({ i: 0 });
    }
    while (fifo.length > 0) sum += fifo.shift()!.i;
    expect(sum).toBe((999_999 * 1_000_000) / 2);
    expect(Date.now() - start).toBeLessThan(5000);
  });

  it('clear() empties it', () => {
    const fifo = new Fifo<number>();
    fifo.push(1);
    fifo.push(2);
    fifo.shift();
    fifo.clear();
    expect(fifo.length).toBe(0);
    expect(fifo.shift()).toBeUndefined();
  });
});
