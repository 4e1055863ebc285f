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
