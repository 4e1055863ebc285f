import { CodecError, defaultCodec, Encoding, ErrorCode, Serializer, type Codec } from '../../src';
import { decodeValue, encodeValue, encodeWire, TEXT_LIMIT } from '../../src/internal';

const codec = new Serializer();

/** Encodes, copies the bytes as a socket would deliver them, decodes. */
function roundTrip(value: unknown, using: Codec = codec): unknown {
  const { encoding, payload } = using.encode(value);
  const received = Buffer.concat([Buffer.from('junk'), payload]).subarray(4);
  return using.decode(received, encoding);
}

const circular: Record<string, unknown> = { name: 'loop' };
circular.self = circular;

describe('Serializer (default codec)', () => {
  const table: Array<[string, unknown]> = [
    ['empty string', ''],
    ['ascii string', 'hello'],
    ['non-BMP string', 'emoji 🐙 and 𝄞 and 中文'],
    ['integer', 42],
    ['float', -3.25],
    ['NaN', NaN],
    ['-0', -0],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
    ['max safe integer', Number.MAX_SAFE_INTEGER],
    ['bigint', 2n ** 70n],
    ['negative bigint', -5n],
    ['true', true],
    ['false', false],
    ['null', null],
    ['undefined', undefined],
    ['Date', new Date('2020-02-02T02:02:02.002Z')],
    ['RegExp', /ab+c/gi],
    ['Map', new Map<unknown, unknown>([[1, 'one'], ['two', { n: 2 }]])],
    ['Set', new Set([1, 'a', null])],
    ['array', [1, 'two', [3], { four: 4 }, null, undefined]],
    ['sparse values in object', { a: null, b: '', c: undefined, d: 0 }],
    ['nested object', { a: { b: { c: [1, 2, { d: 'deep' }] } }, when: new Date(0) }],
    ['Float64Array', new Float64Array([1.5, -2, NaN])],
    ['Int32Array', new Int32Array([-1, 2 ** 31 - 1])],
    ['Uint16Array', new Uint16Array([1, 65535])],
    ['empty object', {}],
    ['empty array', []],
  ];

  it.each(table)('round-trips %s exactly', (_, value) => {
    expect(roundTrip(value)).toStrictEqual(value);
  });

  it('says which encoding it does not know, also when called without one (was a TypeError of its own message)', () => {
    const codec = new Serializer();
    expect(() => codec.decode(Buffer.from('x'), 0x7f)).toThrow(new RangeError('Unknown payload encoding 0x7f'));
    expect(() => (codec.decode as (payload: Buffer) => unknown)(Buffer.from('x'))).toThrow(new RangeError('Unknown payload encoding undefined'));
  });

  it('keeps -0 and NaN bit-exact', () => {
    expect(Object.is(roundTrip(-0), -0)).toBe(true);
    expect(Number.isNaN(roundTrip(NaN))).toBe(true);
  });

  it('sends a Buffer as is (no copy) and receives a Buffer', () => {
    const buffer = Buffer.from('raw bytes');
    const encoded = codec.encode(buffer);
    expect(encoded.payload).toBe(buffer);
    expect(encoded.encoding).toBe(Encoding.BUFFER);
    const decoded = roundTrip(buffer);
    expect(Buffer.isBuffer(decoded)).toBe(true);
    expect(decoded).toEqual(buffer);
  });

  it('sends a plain Uint8Array without copy and receives a plain Uint8Array', () => {
    const bytes = new Uint8Array([1, 2, 3]);
    expect(codec.encode(bytes).payload).toBe(bytes);
    const decoded = roundTrip(bytes);
    expect(Buffer.isBuffer(decoded)).toBe(false);
    expect(decoded).toBeInstanceOf(Uint8Array);
    expect(Array.from(decoded as Uint8Array)).toEqual([1, 2, 3]);
  });

  it('round-trips circular references', () => {
    const decoded = roundTrip(circular) as Record<string, unknown>;
    expect(decoded.self).toBe(decoded);
    expect(decoded.name).toBe('loop');
  });

  it('round-trips Error objects with class, message, stack, cause and own properties', () => {
    const error = Object.assign(new TypeError('bad thing', { cause: new Error('root') }), { code: 'E_BAD', extra: 1 });
    const decoded = roundTrip(error) as TypeError & { code: string; extra: number };
    expect(decoded).toBeInstanceOf(TypeError);
    expect(decoded.message).toBe('bad thing');
    expect(decoded.stack).toBe(error.stack);
    expect(decoded.code).toBe('E_BAD');
    expect(decoded.extra).toBe(1);
    expect((decoded.cause as Error).message).toBe('root');
  });

  it("keeps an error's cause even when it is undefined, and no cause when it has none (was: `cause: undefined` lost)", () => {
    const undefinedCause = roundTrip(new Error('m', { cause: undefined })) as Error;
    expect(Object.hasOwn(undefinedCause, 'cause')).toBe(true);
    expect(undefinedCause.cause).toBeUndefined();
    expect(Object.hasOwn(roundTrip(new Error('m')) as Error, 'cause')).toBe(false);
    expect((roundTrip(new Error('m', { cause: null })) as Error).cause).toBeNull();
    expect((roundTrip(new Error('m', { cause: 0 })) as Error).cause).toBe(0);
  });

  it('keeps the name of a custom Error class', () => {
    class ShardError extends Error {
      override name = 'ShardError';
    }
    const decoded = roundTrip(new ShardError('shard 3 down')) as Error;
    expect(decoded).toBeInstanceOf(Error);
    expect(decoded.name).toBe('ShardError');
    expect(decoded.message).toBe('shard 3 down');
  });

  it('round-trips Errors nested in objects', () => {
    const decoded = roundTrip({ error: new RangeError('nested') }) as { error: Error };
    // Structured clone builds the error in Node's own realm, not jest's sandbox: compare by name.
    expect(Object.prototype.toString.call(decoded.error)).toBe('[object Error]');
    expect(decoded.error.name).toBe('RangeError');
    expect(decoded.error.message).toBe('nested');
  });

  it('decodes JSON payloads, so JSON peers can talk to it', () => {
    expect(codec.decode(Buffer.from('{"a":[1,null,""]}'), Encoding.JSON)).toEqual({ a: [1, null, ''] });
  });

  it('wraps an unencodable value into ERR_IPC_ENCODE', () => {
    const error = (() => {
      try {
        encodeValue(codec, { fn: () => 1 });
      } catch (e) {
        return e as CodecError;
      }
    })();
    expect(error).toBeInstanceOf(CodecError);
    expect(error?.code).toBe(ErrorCode.ENCODE);
    expect(error?.message).toMatch(/could not be cloned/);
  });

  it.each([
    ['garbage v8', Encoding.V8, Buffer.from([0xff, 0x0d, 0x6f, 0x22])],
    ['short number', Encoding.NUMBER, Buffer.from([1, 2, 3])],
    ['bad JSON', Encoding.JSON, Buffer.from('{nope')],
    ['unknown encoding', 0x7f, Buffer.from('x')],
  ])('wraps an undecodable payload (%s) into ERR_IPC_DECODE', (_, encoding, payload) => {
    expect(() => decodeValue(codec, payload, encoding)).toThrow(expect.objectContaining({ code: ErrorCode.DECODE }));
  });

  it('accepts a user codec (JSON)', () => {
    const json: Codec = {
      encode: (value) => ({ encoding: Encoding.JSON, payload: Buffer.from(JSON.stringify(value)) }),
      decode: (payload) => JSON.parse(payload.toString('utf8')),
    };
    expect(roundTrip({ a: 1, b: ['x', null] }, json)).toEqual({ a: 1, b: ['x', null] });
  });
});

describe('Serializer JSON fast path', () => {
  it.each([
    ['plain nested data', { a: [1, 'x', true, null, { b: -1.5 }], c: '' }],
    ['a boolean', false],
    ['an empty array', []],
    ['lone surrogates', { s: '\ud800x\udfff' }],
    ['a null-prototype object', Object.assign(Object.create(null), { a: 1 })],
  ])('sends %s as JSON, exactly', (_, value) => {
    expect(codec.encode(value).encoding).toBe(Encoding.JSON);
    expect(roundTrip(value)).toEqual(value);
  });

  it.each([
    ['undefined inside', { a: undefined }],
    ['NaN inside', [NaN]],
    ['-0 inside', { z: -0 }],
    ['a Date inside', { d: new Date(0) }],
    ['a hole', [1, , 3]], // eslint-disable-line no-sparse-arrays
    ['a bigint inside', { n: 1n }],
    ['a Buffer inside', { b: Buffer.from('x') }],
    ['a cycle', circular],
  ])('keeps structured clone for %s', (_, value) => {
    expect(codec.encode(value).encoding).toBe(Encoding.V8);
    expect(roundTrip(value)).toStrictEqual(value);
  });

  it('leaves class instances to structured clone (which sends their own properties)', () => {
    const point = new (class Point {
      x = 1;
    })();
    expect(codec.encode(point).encoding).toBe(Encoding.V8);
    expect(roundTrip(point)).toEqual({ x: 1 });
  });

  // The check is written out per position (top level, in an object, in an array): each refusal at each place.
  const hole = [1, , 3]; // eslint-disable-line no-sparse-arrays
  const holeWithExtra = Object.assign([1, , 3], { x: 1 }); // eslint-disable-line no-sparse-arrays
  const extra = Object.assign([1, 2], { x: 1 });
  it.each([
    ['-0 at the top of an array', [-0]],
    ['-0 in a nested array', { a: [[1, -0]] }],
    ['Infinity in an object', { i: Infinity }],
    ['-Infinity in an array', [[-Infinity]]],
    ['NaN in an object', { n: { m: NaN } }],
    ['undefined in an array', [1, undefined]],
    ['undefined in a nested array', { a: [undefined] }],
    ['a hole in a nested array', { a: hole }],
    ['a hole and an extra property (as many keys as elements)', holeWithExtra],
    ['an extra array property, nested', { a: extra }],
    ['a bigint in an array', [1n]],
    ['a Map in an array', [new Map()]],
  ])('keeps structured clone for %s', (_, value) => {
    expect(codec.encode(value).encoding).toBe(Encoding.V8);
    expect(roundTrip(value)).toStrictEqual(value);
  });

  it.each([
    ['a class instance in an object', { p: new (class P {})() }],
    ['an array subclass in an object', { a: new (class A extends Array {})() }],
  ])('keeps structured clone for %s (which sends own properties)', (_, value) => {
    expect(codec.encode(value).encoding).toBe(Encoding.V8);
  });

  it.each([
    ['a function in an object', { f: () => 1 }],
    ['a symbol in an array', [Symbol('s')]],
  ])('refuses %s (neither JSON nor structured clone carries it)', (_, value) => {
    expect(() => codec.encode(value)).toThrow();
  });

  it.each([
    ['0 and +0 in arrays and objects', { a: [0, +0, [0]], z: 0 }],
    ['numbers at the edges', [Number.MAX_VALUE, Number.MIN_VALUE, -Number.MAX_VALUE, Number.EPSILON, -1e-300]],
    ['null in arrays and objects', [null, { n: null }, [null]]],
    ['a null-prototype object in an array', [Object.assign(Object.create(null), { a: [1] })]],
  ])('sends %s as JSON, exactly', (_, value) => {
    expect(codec.encode(value).encoding).toBe(Encoding.JSON);
    expect(roundTrip(value)).toEqual(value);
  });

  it('takes JSON up to 32 levels of objects or arrays and structured clone from 33 on', () => {
    const nest = (levels: number, inArrays: boolean) => {
      let value: unknown = 1;
      for (let i = 0; i < levels; i++) value = inArrays ? [value] : { v: value };
      return value;
    };
    for (const inArrays of [false, true]) {
      expect(codec.encode(nest(32, inArrays)).encoding).toBe(Encoding.JSON);
      expect(codec.encode(nest(33, inArrays)).encoding).toBe(Encoding.V8);
      expect(roundTrip(nest(33, inArrays))).toEqual(nest(33, inArrays));
    }
  });

  it('falls back to structured clone for very deep nesting', () => {
    let deep: unknown = 'bottom';
    for (let i = 0; i < 100; i++) deep = { deep };
    expect(codec.encode(deep).encoding).toBe(Encoding.V8);
    expect(roundTrip(deep)).toEqual(deep);
  });
});

describe('encodeWire: what reaches the writer', () => {
  const serializer = new Serializer();

  it('short text and the JSON of plain data stay strings (encoded in the slab), with the default codec or any Serializer', () => {
    for (const codec of [defaultCodec, serializer]) {
      expect(encodeWire(codec, 'héllo')).toEqual({ encoding: Encoding.STRING, payload: 'héllo' });
      expect(encodeWire(codec, '€'.repeat(TEXT_LIMIT))).toEqual({ encoding: Encoding.STRING, payload: '€'.repeat(TEXT_LIMIT) });
      expect(encodeWire(codec, { a: [1, 'b'] })).toEqual({ encoding: Encoding.JSON, payload: '{"a":[1,"b"]}' });
    }
  });

  it('longer text, lone surrogates and everything else are bytes, as encode gives them', () => {
    const long = 'x'.repeat(TEXT_LIMIT + 1);
    for (const value of [long, { text: long }, '\uD800', 42, true, Buffer.from('b'), new Date(0), new Map()]) {
      const wire = encodeWire(defaultCodec, value);
      expect(typeof wire.payload).not.toBe('string');
      expect(wire).toEqual(serializer.encode(value));
    }
  });

  it('a user codec is called and its bytes are passed on as they are', () => {
    const payload = Buffer.from('x');
    const codec: Codec = { encode: () => ({ encoding: 0x80, payload }), decode: () => 'x' };
    expect(encodeWire(codec, 'text').payload).toBe(payload);
  });

  it('a failure is an ERR_IPC_ENCODE CodecError, as with encodeValue', () => {
    expect(() => encodeWire(defaultCodec, () => 1)).toThrow(expect.objectContaining({ code: ErrorCode.ENCODE }));
  });
});
