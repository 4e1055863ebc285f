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
  // Text up to 2,730 characters is encoded straight into the writer's buffer, longer text through a Buffer first.
  ['an empty string', () => ''],
  ['text of every UTF-8 width', () => 'a é € 𝄞 日本 🎉'],
  ['2,730 three-byte characters (the longest text written in place)', () => '€'.repeat(2730)],
  ['2,731 three-byte characters', () => '€'.repeat(2731)],
  ['2,730 emoji (surrogate pairs: 5,460 characters)', () => '🎉'.repeat(2730)],
  ['plain data whose JSON holds wide characters', () => ({ name: 'Zoë', tags: ['日本', '🎉'], n: 1 })],
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

describe('text against the peer\'s maxFrameSize', () => {
  it('counts UTF-8 bytes, not characters: 1,000 ASCII characters pass a 1 KiB limit, 342 three-byte ones do not', async () => {
    const server = node('server', { heartbeatInterval: 0, maxFrameSize: 1024 });
    const client = node('client', { heartbeatInterval: 0 });
    server.on('message', (m) => m.receptive && m.reply(m.data));
    await link(server, client, 'tcp');
    await expect(client.sendTo('server', 'x'.repeat(1000))).resolves.toBe('x'.repeat(1000));
    await expect(client.sendTo('server', '€'.repeat(341))).resolves.toBe('€'.repeat(341)); // 1,023 bytes
    await expect(client.sendTo('server', '€'.repeat(342))).rejects.toMatchObject({ code: 'ERR_IPC_FRAME_TOO_LARGE' });
    await expect(client.sendTo('server', { text: '€'.repeat(340) })).rejects.toMatchObject({ code: 'ERR_IPC_FRAME_TOO_LARGE' });
    // The connection is still up, and the refused messages left nothing behind.
    await expect(client.sendTo('server', 'after')).resolves.toBe('after');
  });
});
