/**
 * Review probes of the default codec's Error records: what arrives has the same own keys, in the same order, with
 * the same values as what was sent.
 */
import { Serializer } from '../../src';

const codec = new Serializer();
const roundTrip = <T>(value: T): T => {
  const { encoding, payload } = codec.encode(value);
  return codec.decode(Buffer.from(payload), encoding) as T;
};

describe('a top-level Error', () => {
  it('(was broken) an own enumerable "__proto__" property arrives as an own property, not dropped', () => {
    const error = new Error('m');
    Object.defineProperty(error, '__proto__', { value: { x: 1 }, enumerable: true, writable: true, configurable: true });
    const back = roundTrip(error);
    expect(Object.keys(back)).toEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(back, '__proto__')?.value).toEqual({ x: 1 });
    expect(Object.getPrototypeOf(back)).toBe(Error.prototype);
  });

  it('(was broken) a subclass that sets this.name after its fields keeps the order of its own keys', () => {
    class NotFound extends Error {
      code = 'E_NOT_FOUND';
      status = 404;
      constructor(message: string) {
        super(message);
        this.name = 'NotFound';
      }
    }
    const error = new NotFound('gone');
    const back = roundTrip(error);
    expect(Object.keys(back)).toEqual(Object.keys(error));
    expect(Object.keys(back)).toEqual(['code', 'status', 'name']);
    expect(back).toMatchObject({ name: 'NotFound', message: 'gone', code: 'E_NOT_FOUND', status: 404 });
    expect(Object.getOwnPropertyDescriptor(back, 'name')?.enumerable).toBe(true);
  });

  it('a name that is not own and enumerable stays non-enumerable (no own key added)', () => {
    const back = roundTrip(new RangeError('r'));
    expect(Object.keys(back)).toEqual([]);
    expect(back).toBeInstanceOf(RangeError);
    const renamed = new Error('x');
    Object.defineProperty(renamed, 'name', { value: 'Custom', writable: true, configurable: true });
    const again = roundTrip(renamed);
    expect(again.name).toBe('Custom');
    expect(Object.keys(again)).toEqual([]);
  });
});
