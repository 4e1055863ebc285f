import type { Node } from '../../src';
import { closeAll, link, node, until } from '../helpers/net';

afterEach(closeAll);

/** A server that keeps every Buffer it receives as it is (a view, not a copy) and answers requests. */
async function pair(transport: 'tcp' | 'link') {
  const server = node('server', { heartbeatInterval: 0 });
  const client = node('client', { heartbeatInterval: 0 });
  const received: Buffer[] = [];
  server.on('message', (m) => {
    received.push(m.data as Buffer);
    if (m.receptive) m.reply(true);
  });
  await link(server, client, transport);
  return { client, received };
}

/** Sends scratch buffers of `size` bytes 50 times, overwriting each right after its send resolved. */
async function sendAndReuse(client: Node, size: number, receptive: boolean): Promise<Buffer[]> {
  const scratch = Buffer.alloc(size);
  const sent: Buffer[] = [];
  for (let i = 0; i < 50; i++) {
    scratch.fill(i + 1);
    sent.push(Buffer.from(scratch));
    await client.sendTo('server', scratch, { receptive });
    scratch.fill(0xff); // reused at once: must not change what the peer gets
  }
  return sent;
}

describe.each(['tcp', 'link'] as const)('a Buffer may be reused once its send resolved (%s)', (transport) => {
  it.each([
    [100, false],
    [9000, false],
    [64 * 1024, false],
    [100, true],
    [64 * 1024, true],
  ])('%i bytes, receptive: %s', async (size, receptive) => {
    const { client, received } = await pair(transport);
    const sent = await sendAndReuse(client, size, receptive);
    await until(() => received.length === sent.length);
    const wrong = received.filter((bytes, i) => !bytes.equals(sent[i])).length;
    expect(wrong).toBe(0);
  });
});
