import { once } from 'node:events';
import type { NodeMessage } from '../../src';
import { closeAll, link, node } from '../helpers/net';

afterEach(closeAll);

/** Two nodes over an in-memory link or TCP; the server echoes every receptive message. */
async function pair(transport: 'link' | 'tcp') {
  const server = node('server', { heartbeatInterval: 0 });
  const client = node('client', { heartbeatInterval: 0 });
  server.on('message', (m) => m.receptive && m.reply(m.data));
  await link(server, client, transport);
  return { server, client };
}

const values: Array<[string, () => unknown]> = [
  ['a lone high surrogate', () => '\uD800'],
  ['a lone low surrogate inside text', () => 'a\uDC00b'],
  ['an array with an extra property', () => Object.assign([1, 2], { extra: 'x' })],
  ['an extra array property deeper down', () => ({ list: Object.assign(['a'], { total: 1 }) })],
];

describe.each(['link', 'tcp'] as const)('values arrive unchanged (%s)', (transport) => {
  it.each(values)('%s, one-way and as a request and its reply', async (_, make) => {
    const { server, client } = await pair(transport);
    const arrived = once(server, 'message') as Promise<[NodeMessage]>;
    await client.sendTo('server', make(), { receptive: false });
    const [message] = await arrived;
    expect(message.data).toStrictEqual(make());
    await expect(client.sendTo('server', make())).resolves.toStrictEqual(make());
  });
});
