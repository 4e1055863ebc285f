/**
 * Review probes (third pass over the default codec): values that arrived changed without an error. Each is sent
 * between two real nodes, one-way and as a request echoed back.
 */
import { once } from 'node:events';
import type { NodeMessage } from '../../src';
import { closeAll, link, node } from '../helpers/net';

afterEach(closeAll);

/** Two nodes over TCP; the server echoes every receptive message. */
async function pair() {
  const server = node('server', { heartbeatInterval: 0 });
  const client = node('client', { heartbeatInterval: 0 });
  server.on('message', (m) => m.receptive && m.reply(m.data));
  await link(server, client, 'tcp');
  return { server, client };
}

/** What `value` arrives as: one-way, and as the reply to a request echoing it. */
async function across(value: unknown): Promise<[unknown, unknown]> {
  const { server, client } = await pair();
  const arrived = once(server, 'message') as Promise<[NodeMessage]>;
  await client.sendTo('server', value, { receptive: false });
  const [message] = await arrived;
  return [message.data, await client.sendTo('server', value)];
}

describe('an Error whose message is not a string (was: undefined arrived as "", 42 as "42", an object as "[object Object]")', () => {
  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['a number', 42],
    ['an object', { reason: 'disk' }],
    ['null', null],
  ])('message set to %s arrives as sent, still an own non-enumerable property', async (_, message) => {
    const sent = new Error('was text');
    (sent as { message: unknown }).message = message;
    for (const back of await across(sent)) {
      expect(back).toBeInstanceOf(Error);
      expect((back as Error).message).toStrictEqual(message);
      expect(Object.hasOwn(back as Error, 'message')).toBe(true);
      expect(Object.keys(back as Error)).toEqual([]);
    }
  });

  it('an Error made without a message still reads ""', async () => {
    for (const back of await across(new TypeError())) {
      expect((back as Error).message).toBe('');
      expect((back as Error).name).toBe('TypeError');
    }
  });
});

/**
 * Left open (see the report of review-values3): plain data is read twice — once by the JSON check, once by
 * JSON.stringify — so a getter (or a Proxy trap) that answers a JSON-exact value first and something else next is
 * sent as JSON of the second answer. Every sound fix measured (a property descriptor per key, a snapshot copy, a
 * JSON.stringify replacer) cost 19–80% on 1 KB plain objects. These flip to passing once it is fixed: then drop
 * `.failing`.
 */
describe('a getter that changes its answer between the check and JSON.stringify (open: read twice)', () => {
  const flipping = (first: unknown, then: unknown) => {
    let reads = 0;
    return { get x() { return reads++ === 0 ? first : then; } };
  };
  it.failing.each<[string, unknown]>([
    ['NaN (arrives as null)', NaN],
    ['undefined (the key is dropped)', undefined],
    ['a Date (arrives as its ISO string)', new Date(0)],
    ['a Map (arrives as {})', new Map([[1, 2]])],
  ])('1, then %s: arrives as one of its answers, or fails with ERR_IPC_ENCODE', async (_, then) => {
    const { server, client } = await pair();
    const arrived = once(server, 'message') as Promise<[NodeMessage]>;
    const sent = await client.sendTo('server', flipping(1, then), { receptive: false }).then(() => true, (e: { code?: string }) => e.code);
    if (sent !== true) return expect(sent).toBe('ERR_IPC_ENCODE');
    const [message] = await arrived;
    expect([{ x: 1 }, { x: then }]).toContainEqual(message.data);
    expect(Object.keys(message.data as object)).toEqual(['x']);
  });
});
