import fc from 'fast-check';
import { Encoding, Serializer } from '../../src';

const codec = new Serializer();

/** Encodes, copies the bytes as a socket would deliver them, decodes. */
function roundTrip(value: unknown): unknown {
  const { encoding, payload } = codec.encode(value);
  return codec.decode(Buffer.from(payload), encoding);
}

/**
 * Fails unless `value` survives exactly. Jest's toStrictEqual compares extra array properties, holes, own
 * "__proto__" keys, prototypes, -0 and every code unit, and copes with objects structured clone builds in
 * Node's realm rather than jest's (node:util's isDeepStrictEqual does not).
 */
function expectExact(value: unknown): void {
  expect(roundTrip(value)).toStrictEqual(value);
}

/** Any UTF-16 code units, lone surrogates included (fast-check's default strings are well-formed). */
const units = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)) });
const surrogates = fc.string({ unit: fc.integer({ min: 0xd7ff, max: 0xe000 }).map((code) => String.fromCharCode(code)) });
const text = fc.oneof(units, surrogates, fc.string());

/** JSON-safe leaves, the values the JSON fast path takes. */
const leaf = fc.oneof(text, fc.boolean(), fc.constant(null), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }));

/** Arrays, some with extra enumerable properties (`a.extra = 'x'`), objects, some with an own "__proto__" key. */
const { data } = fc.letrec((tie) => ({
  data: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object')),
  array: fc
    .tuple(fc.array(tie('data'), { maxLength: 5 }), fc.dictionary(fc.constantFrom('extra', 'x', '-1', '1.5', 'length2'), tie('data'), { maxKeys: 2, noNullPrototype: true }))
    .map(([items, extra]) => Object.assign(items, extra)),
  object: fc
    .tuple(fc.dictionary(text, tie('data'), { maxKeys: 4, noNullPrototype: true }), fc.option(tie('data')))
    .map(([object, proto]) => {
      const result = { ...object };
      if (proto !== null) Object.defineProperty(result, '__proto__', { value: proto, enumerable: true, writable: true, configurable: true });
      return result;
    }),
}));

describe('Serializer: decode(encode(v)) is v, exactly', () => {
  it('for JSON-like data with lone surrogates, extra array properties and own "__proto__" keys', () => {
    fc.assert(
      fc.property(data, expectExact),
      { numRuns: Number(process.env.FC_RUNS ?? 2000) },
    );
  });

  it('for anything fast-check makes (Maps, Sets, typed arrays, Dates, bigint, sparse arrays…)', () => {
    // Null prototypes are left out: structured clone (like JSON) delivers plain objects, by design. Invalid dates
    // too: jest compares dates by value and NaN is not NaN (structured clone keeps them; see the table spec).
    const anything = fc.anything({
      key: fc.oneof(text, fc.constant('__proto__')),
      values: [text, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.bigInt(), fc.date({ noInvalidDate: true })],
      withMap: true,
      withSet: true,
      withTypedArray: true,
      withSparseArray: true,
      withBigInt: true,
      withNullPrototype: false,
    });
    fc.assert(
      fc.property(anything, expectExact),
      { numRuns: Number(process.env.FC_RUNS ?? 1000) },
    );
  });

  it.each([
    ['a lone high surrogate', '\uD800'],
    ['a lone low surrogate inside text', 'a\uDC00b'],
    ['a reversed pair', '\uDC00\uD800'],
  ])('keeps %s in a top-level string (not U+FFFD)', (_, value) => {
    expect(roundTrip(value)).toBe(value);
  });

  it('keeps the UTF-8 fast path for well-formed strings, surrogate pairs included', () => {
    expect(codec.encode('emoji 🐙').encoding).toBe(Encoding.STRING);
    expect(codec.encode('a\uDC00b').encoding).toBe(Encoding.V8);
  });

  it('keeps the extra properties of an array of JSON-safe values', () => {
    const array = Object.assign([1, 2], { extra: 'x' });
    const decoded = roundTrip(array) as typeof array;
    expect(decoded.extra).toBe('x');
    expect(decoded).toStrictEqual(array);
    expect(codec.encode([1, 2]).encoding).toBe(Encoding.JSON);
  });

  it('keeps an own "__proto__" key as an own key (JSON.parse makes one)', () => {
    const value = JSON.parse('{"__proto__":{"polluted":true},"a":[1]}') as Record<string, unknown>;
    expect(codec.encode(value).encoding).toBe(Encoding.JSON);
    const decoded = roundTrip(value) as Record<string, unknown>;
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(Object.keys(decoded)).toEqual(['__proto__', 'a']);
    expect(decoded).toStrictEqual(value);
  });
});
