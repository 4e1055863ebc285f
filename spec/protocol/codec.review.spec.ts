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

describe('an Error that is not the value itself (documented: structured clone)', () => {
  class NotFound extends TypeError {
    code = 'E_NOT_FOUND';
    constructor(message: string) {
      super(message);
      this.name = 'NotFound';
    }
  }

  it('inside an object, or as the cause of a sent Error: message, stack and cause kept; own props and a custom name not', () => {
    const inner = new NotFound('gone');
    for (const back of [roundTrip({ e: inner }).e, roundTrip(new Error('outer', { cause: inner })).cause as Error]) {
      expect(Object.prototype.toString.call(back)).toBe('[object Error]'); // another realm under jest: not instanceof
      expect(back.name).toBe('Error');
      expect(back.message).toBe('gone');
      expect(back.stack).toBe(inner.stack);
      expect(Object.keys(back)).toEqual([]);
    }
    const standard = roundTrip({ e: new RangeError('r', { cause: 1 }) }).e;
    expect(standard.name).toBe('RangeError');
    expect(standard.cause).toBe(1);
  });

  it('README says so', () => {
    const readme = require('node:fs').readFileSync(require('node:path').join(__dirname, '..', '..', 'README.md'), 'utf8') as string;
    const codecs = readme.slice(readme.indexOf('## Codecs'), readme.indexOf('## Framing layer'));
    expect(codecs).toMatch(/An Error that is not the value itself[^]*loses its own properties/);
  });
});

describe('an Error whose cause was assigned (`error.cause = x`: an own enumerable property)', () => {
  it('(was broken) the cause stays an own enumerable key, in its place: Object.keys and spreading see it as sent', () => {
    const cause = { reason: 'disk' };
    const error = Object.assign(new Error('m'), { code: 'E_IO', cause, after: 1 });
    const back = roundTrip(error);
    expect(Object.keys(back)).toEqual(['code', 'cause', 'after']);
    expect(back.cause).toEqual(cause);
    expect({ ...back }).toEqual({ code: 'E_IO', cause, after: 1 });
  });

  it('an error made with { cause } keeps it non-enumerable; { cause: undefined } keeps an own undefined cause', () => {
    const back = roundTrip(new Error('m', { cause: 'c' }));
    expect(Object.keys(back)).toEqual([]);
    expect(back.cause).toBe('c');
    const undef = roundTrip(new Error('m', { cause: undefined }));
    expect(Object.hasOwn(undef, 'cause')).toBe(true);
    expect(Object.keys(undef)).toEqual([]);
  });

  it('a peer of the previous version (which rebuilt the cause from record.cause only) still gets the same cause', () => {
    // What an older decoder does with the record: new Ctor(message, { cause: record.cause }), then its props.
    const { payload } = codec.encode(Object.assign(new Error('m'), { cause: 7 }));
    const record = require('node:v8').deserialize(Buffer.from(payload)) as { cause: unknown; hasCause: boolean };
    expect(record.cause).toBe(7);
    expect(record.hasCause).toBe(true);
  });
});

describe('an AggregateError (Promise.any, several failures at once)', () => {
  it('(was broken: its errors were dropped) arrives as an AggregateError with its errors, non-enumerable as sent', async () => {
    const sent = await Promise.any([Promise.reject(new RangeError('first')), Promise.reject(new TypeError('second'))]).catch((e: AggregateError) => e);
    const back = roundTrip(sent);
    expect(Object.prototype.toString.call(back.errors)).toBe('[object Array]');
    expect(back.errors.map((e: Error) => [e.name, e.message])).toEqual([['RangeError', 'first'], ['TypeError', 'second']]);
    expect(back).toBeInstanceOf(AggregateError);
    expect(back.name).toBe('AggregateError');
    expect(back.message).toBe(sent.message);
    expect(Object.keys(back)).toEqual([]);
    expect(Object.getOwnPropertyDescriptor(back, 'errors')?.enumerable).toBe(false);
  });

  it('errors that are not Errors, and an own enumerable errors key on a plain Error, arrive as sent', () => {
    const back = roundTrip(new AggregateError([1, 'two', { three: 3 }], 'mixed', { cause: 'c' }));
    expect(back.errors).toEqual([1, 'two', { three: 3 }]);
    expect(back.cause).toBe('c');
    const plain = roundTrip(Object.assign(new Error('p'), { errors: ['e'] }));
    expect(Object.keys(plain)).toEqual(['errors']);
    expect((plain as Error & { errors: string[] }).errors).toEqual(['e']);
    expect(plain).not.toBeInstanceOf(AggregateError);
  });
});

describe('documented, not changed (the JSON check is measured by the bench)', () => {
  it('a getter is read twice for plain data: one that answers 1 then NaN is sent as null, and README says so', () => {
    let reads = 0;
    const live = {
      get x() {
        return reads++ === 0 ? 1 : NaN;
      },
    };
    expect(roundTrip(live)).toEqual({ x: null });
    const readme = require('node:fs').readFileSync(require('node:path').join(__dirname, '..', '..', 'README.md'), 'utf8') as string;
    expect(readme).toMatch(/read twice\s+for plain data[^]*sent as `null`/);
    expect(readme).toMatch(/properties added to a Buffer, typed array, Date, Map or Set are\s+dropped/);
  });
});
