// A code reader's review of the node's state: every counter, table, timer and subscription has one owner that
// keeps it right on every path. Each test here failed before its fix.
import { cleanUp } from '../helpers/child';
import { delay, link, node } from '../helpers/net';

afterEach(cleanUp);

describe('reading paused for a peer is resumed', () => {
  it.each([0, 4096])('maxWriteBuffer %i (below the socket high-water mark): the server goes on answering', async (maxWriteBuffer) => {
    const server = node('hub', { heartbeatInterval: 0, maxWriteBuffer });
    const client = node('client', { heartbeatInterval: 0 });
    const answer = 'a'.repeat(5000);
    server.on('message', (m) => m.reply(`${m.data}${answer}`));
    await link(server, client, 'tcp');
    // The first answer left `queuedBytes` over the limit: reading paused, waiting for a 'drain' that never came.
    for (let i = 0; i < 5; i++) {
      await expect(client.sendTo('hub', i, { timeout: 2000 })).resolves.toBe(`${i}${answer}`);
      await delay(10);
    }
  });
});
