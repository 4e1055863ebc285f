/**
 * Review probes: a user codec that misbehaves fails that one message with a clear `ERR_IPC_ENCODE`, on every path
 * (sendTo, one-way, reply, stream, broadcast, request$, iterate); nothing it returns is silently changed on the wire.
 */
import { firstValueFrom, toArray } from 'rxjs';
import { CodecError, ErrorCode, Node, type Codec } from '../../src';
import { closeAll, node, serveTcp } from '../helpers/net';

afterEach(closeAll);

const QUIET = { heartbeatInterval: 0 };

/** What a codec's `encode` returns for the value 'bad' (the value 'ok' and numbers encode fine). */
const BAD: Array<[string, unknown]> = [
  ['encoding 256 (was sent as tag 0, BUFFER)', { encoding: 256, payload: Buffer.from('x') }],
  ['encoding 0x181 (was sent as 0x81)', { encoding: 0x181, payload: Buffer.from('x') }],
  ['encoding -1 (was sent as 0xff)', { encoding: -1, payload: Buffer.from('x') }],
  ['encoding 128.5 (was sent as 0x80)', { encoding: 128.5, payload: Buffer.from('x') }],
  ['encoding NaN (was sent as tag 0)', { encoding: NaN, payload: Buffer.from('x') }],
  ['encoding "129" (was coerced)', { encoding: '129', payload: Buffer.from('x') }],
  ['no encoding', { payload: Buffer.from('x') }],
  ['a string payload (was UTF-8 encoded: a lone surrogate became U+FFFD)', { encoding: 0x80, payload: '\uD800x' }],
  ['a Uint16Array payload (its elements were cut to bytes)', { encoding: 0x80, payload: new Uint16Array([0x102, 0x304]) }],
  ['an ArrayBuffer payload (was "a payload of NaN bytes")', { encoding: 0x80, payload: new ArrayBuffer(4) }],
  ['a DataView payload', { encoding: 0x80, payload: new DataView(new ArrayBuffer(4)) }],
  ['a number payload', { encoding: 0x80, payload: 5 }],
  ['a null payload (was a bare TypeError)', { encoding: 0x80, payload: null }],
  ['undefined (was a bare TypeError)', undefined],
  ['null', null],
  ['a Promise (was a bare TypeError)', Promise.resolve({ encoding: 0x80, payload: Buffer.from('x') })],
  ['a result whose getters throw', { get encoding(): number { throw new Error('getter boom'); }, payload: Buffer.from('x') }],
  ['an encoding whose toString throws', { encoding: { toString() { throw new Error('trap'); } }, payload: Buffer.from('x') }],
  ['a Proxy payload whose traps throw', { encoding: 0x80, payload: new Proxy({}, { get() { throw new Error('trap'); }, getPrototypeOf() { throw new Error('trap'); } }) }],
];

function misbehaving(result: unknown, decoded: Array<[number, string]>): Codec {
  return {
    encode: (value) => (value === 'bad' ? (result as ReturnType<Codec['encode']>) : { encoding: 0x80, payload: Buffer.from(JSON.stringify(value)) }),
    decode: (payload, encoding) => {
      decoded.push([encoding, payload.toString('hex')]);
      return JSON.parse(payload.toString());
    },
  };
}

const encodeError = (reason: unknown) => {
  expect(reason).toBeInstanceOf(CodecError);
  expect(reason).toMatchObject({ code: ErrorCode.ENCODE, message: expect.stringMatching(/^Could not encode the value: (codec\.encode returned |getter boom$|trap$)/) });
};

async function pair(codec: Codec) {
  const server = node('server', { ...QUIET, codec });
  const client = node('client', { ...QUIET, codec });
  await client.connectTo('server', await serveTcp(server), '127.0.0.1');
  return { server, client };
}

describe('a user codec whose encode returns something other than { encoding: 0–255, payload: Uint8Array }', () => {
  it.each(BAD)('%s: sendTo and one-way sendTo reject with ERR_IPC_ENCODE, nothing is sent, the next message passes', async (_, result) => {
    const decoded: Array<[number, string]> = [];
    const { server, client } = await pair(misbehaving(result, decoded));
    server.on('message', (m) => m.reply(m.data));
    encodeError(await client.sendTo('server', 'bad').catch((e: unknown) => e));
    encodeError(await client.sendTo('server', 'bad', { receptive: false }).catch((e: unknown) => e));
    await expect(client.sendTo('server', 'ok')).resolves.toBe('ok');
    expect(decoded).toEqual([
      [0x80, Buffer.from('"ok"').toString('hex')],
      [0x80, Buffer.from('"ok"').toString('hex')],
    ]);
  });

  it.each(BAD.slice(0, 1).concat(BAD.slice(7, 8), BAD.slice(13, 14)))('%s: reply throws ERR_IPC_ENCODE and the requester gets that error, not a changed value', async (_, result) => {
    const decoded: Array<[number, string]> = [];
    const { server, client } = await pair(misbehaving(result, decoded));
    const thrown: unknown[] = [];
    server.on('message', (m) => {
      try {
        m.reply(m.data === 1 ? 'bad' : m.data);
      } catch (error) {
        thrown.push(error);
      }
    });
    await expect(client.sendTo('server', 1)).rejects.toMatchObject({ code: ErrorCode.REMOTE, remoteCode: ErrorCode.ENCODE });
    expect(thrown).toHaveLength(1);
    encodeError(thrown[0]);
    await expect(client.sendTo('server', 'ok')).resolves.toBe('ok');
    expect(decoded.map(([encoding]) => encoding)).toEqual([0x80, 0x80, 0x80]);
  });

  it.each(BAD.slice(0, 1).concat(BAD.slice(7, 8), BAD.slice(13, 14)))('%s: a streamed value, request$ and iterate fail with ERR_IPC_ENCODE', async (_, result) => {
    const decoded: Array<[number, string]> = [];
    const { server, client } = await pair(misbehaving(result, decoded));
    server.on('message', (m) => m.stream([1, 'bad', 3]));
    const viaRx = await firstValueFrom(client.request$('server', 0).pipe(toArray())).catch((e: unknown) => e);
    expect(viaRx).toMatchObject({ code: ErrorCode.REMOTE, remoteCode: ErrorCode.ENCODE });
    const got: unknown[] = [];
    const viaIterate = await (async () => {
      for await (const value of client.iterate('server', 0)) got.push(value);
    })().catch((e: unknown) => e);
    expect(viaIterate).toMatchObject({ code: ErrorCode.REMOTE, remoteCode: ErrorCode.ENCODE });
    expect(got).toEqual([1]);
    encodeError(await firstValueFrom(client.request$('server', 'bad')).catch((e: unknown) => e));
    encodeError(await client.iterate('server', 'bad').next().catch((e: unknown) => e));
    await expect(client.sendTo('server', 'ok', { receptive: false })).resolves.toBeUndefined();
  });

  it.each(BAD.slice(0, 1).concat(BAD.slice(7, 8), BAD.slice(13, 14)))('%s: broadcast and broadcastSettled reject with ERR_IPC_ENCODE', async (_, result) => {
    const decoded: Array<[number, string]> = [];
    const { server } = await pair(misbehaving(result, decoded));
    encodeError(await server.broadcast('bad').catch((e: unknown) => e));
    encodeError(await server.broadcastSettled('bad').catch((e: unknown) => e));
    expect(decoded).toEqual([]);
  });
});

it('a result whose payload getter changes its answer is read once: what was checked is what is sent', async () => {
  let reads = 0;
  const changing = { encoding: 0x80, get payload() { return reads++ === 0 ? Buffer.from('"checked"') : '\uD800'; } };
  const decoded: Array<[number, string]> = [];
  const { server, client } = await pair(misbehaving(changing, decoded));
  server.on('message', (m) => m.reply(m.data));
  await expect(client.sendTo('server', 'bad')).resolves.toBe('checked');
  expect(reads).toBe(1);
});

describe('options.codec whose methods cannot be read', () => {
  it.each([
    ['a getter that throws', { get encode(): never { throw new Error('getter boom'); }, decode: () => 0 }],
    ['a Proxy whose get trap throws', new Proxy({}, { get() { throw new Error('trap boom'); } })],
  ])('(was broken: its own Error escaped) %s is a TypeError from new Node, with the cause', (_, codec) => {
    let thrown: unknown;
    try {
      new Node('strict', { codec: codec as Codec });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(TypeError);
    expect((thrown as Error).message).toMatch(/^options\.codec must be an object with encode and decode methods, reading them threw: (getter|trap) boom$/);
    expect((thrown as Error).cause).toBeInstanceOf(Error);
  });
});

describe('a user codec whose decode is async (returns a Promise)', () => {
  const asyncDecode = (reject: boolean): Codec => ({
    encode: (value) => ({ encoding: 0x80, payload: Buffer.from(JSON.stringify(value)) }),
    decode: async (payload) => {
      if (reject) throw new Error('async boom');
      return JSON.parse(payload.toString());
    },
  });

  it.each([
    ['resolving', false],
    ['rejecting (its rejection ended the process, unhandled)', true],
  ])('%s: the message fails with ERR_IPC_DECODE (its data was the Promise), the connection lives on', async (_, reject) => {
    const server = node('server', { ...QUIET, codec: asyncDecode(reject) });
    const client = node('client', QUIET);
    const data: unknown[] = [];
    server.on('message', (message) => {
      data.push(message.data);
      message.reply('unreachable');
    });
    await client.connectTo('server', await serveTcp(server), '127.0.0.1');
    await expect(client.sendTo('server', { a: 1 })).rejects.toMatchObject({ code: ErrorCode.REMOTE, remoteCode: ErrorCode.DECODE });
    expect(data).toEqual([]);
    expect(server.errors).toEqual([expect.objectContaining({ code: ErrorCode.DECODE, message: expect.stringMatching(/decode must be synchronous/) })]);
    await new Promise((resolve) => setImmediate(resolve));
    await expect(client.pingTo('server')).resolves.toBeGreaterThanOrEqual(0);
  });

  // Jest fails no test on an unhandled rejection (nor do a spec's process listeners see one): the case above passed
  // without decodeValue's catch. A Promise subclass shows whether a rejection handler was attached (review).
  it('a rejected Promise (a subclass here) from decode gets a rejection handler: it cannot end the process', async () => {
    let handled = false;
    class Tracked<T> extends Promise<T> {
      override then<A = T, B = never>(onFulfilled?: ((value: T) => A | PromiseLike<A>) | null, onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
        if (onRejected) handled = true;
        return super.then(onFulfilled, onRejected);
      }
    }
    const codec: Codec = {
      encode: (value) => ({ encoding: 0x80, payload: Buffer.from(JSON.stringify(value)) }),
      decode: () => Tracked.reject(new Error('async boom')),
    };
    const server = node('server', { ...QUIET, codec });
    const client = node('client', QUIET);
    await client.connectTo('server', await serveTcp(server), '127.0.0.1');
    await expect(client.sendTo('server', { a: 1 })).rejects.toMatchObject({ code: ErrorCode.REMOTE, remoteCode: ErrorCode.DECODE });
    expect(handled).toBe(true);
  });
});
