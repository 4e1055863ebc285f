// A code reader's review of the node's state: every counter, table, timer and subscription has one owner that
// keeps it right on every path. Each test here failed before its fix.
import { Encoding, ErrorCode, FrameDecoder, FrameFlags, FrameType, type Frame, type IpcError, type NodeMessage } from '../../src';
import { cleanUp } from '../helpers/child';
import { delay, link, node, serveTcp, until } from '../helpers/net';
import { bytes, handshakeBytes, rawClient } from '../helpers/raw';

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

describe('a one-way send that waits for the socket', () => {
  it('gets its whole timeout, also after an earlier send with the same timeout timed out', async () => {
    const server = node('hub', { heartbeatInterval: 0 });
    const port = await serveTcp(server);
    const raw = rawClient(port);
    raw.write(handshakeBytes('raw'));
    await until(() => server.get('raw') !== undefined);
    raw.pause(); // reads nothing from now on
    const chunk = Buffer.alloc(8000);
    // Fill the kernel's buffers and the socket's: from some point on, sends wait for a 'drain' that never comes.
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 4000; i++) sends.push(server.sendTo('raw', chunk, { receptive: false, timeout: Infinity }) as Promise<void>);
    sends.forEach((send) => send.catch(() => undefined));
    const timedOut = async () => {
      const started = performance.now();
      const error = await server.sendTo('raw', chunk, { receptive: false, timeout: 200 }).catch((e: IpcError) => e);
      return { code: (error as IpcError)?.code, waited: performance.now() - started };
    };
    const first = await timedOut();
    expect(first.code).toBe(ErrorCode.TIMEOUT);
    expect(first.waited).toBeGreaterThanOrEqual(190);
    // It rejected at once: the first one's expired wait was shared with it.
    const second = await timedOut();
    expect(second.code).toBe(ErrorCode.TIMEOUT);
    expect(second.waited).toBeGreaterThanOrEqual(190);
    raw.destroy();
  });
});

describe('an answer goes to the request it was asked for', () => {
  it('a handler that answers after its request was cancelled does not answer a later request that reuses the id', async () => {
    // The requester's ids wrap at 2³², skipping only the ids *it* still awaits: an id it cancelled comes back. A
    // raw peer stands for that wrap here (it reuses id 7 at once, which the protocol allows).
    const server = node('hub', { heartbeatInterval: 0 });
    const held: NodeMessage[] = [];
    server.on('message', (m) => held.push(m));
    const port = await serveTcp(server);
    const raw = rawClient(port);
    const received: Frame[] = [];
    const decoder = new FrameDecoder((f) => received.push(f));
    raw.on('data', (chunk: Buffer) => decoder.push(chunk));
    raw.write(handshakeBytes('raw'));
    await until(() => server.get('raw') !== undefined);
    const ask = (data: string) => bytes({ type: FrameType.MESSAGE, flags: FrameFlags.RECEPTIVE, id: 7, encoding: Encoding.STRING, payload: Buffer.from(data) });
    raw.write(ask('first'));
    await until(() => held.length === 1);
    raw.write(bytes({ type: FrameType.CANCEL, flags: 0, id: 7, encoding: 0, payload: Buffer.alloc(0) }));
    raw.write(ask('second'));
    await until(() => held.length === 2);
    const [first, second] = held;
    expect(first.reply('answer to first')).toBe(false); // its requester gave up: nothing awaits it
    expect(second.reply('answer to second')).toBe(true);
    await until(() => received.some((f) => f.type === FrameType.REPLY));
    await delay(20);
    const replies = received.filter((f) => f.type === FrameType.REPLY).map((f) => f.payload.toString());
    expect(replies).toEqual(['answer to second']);
    raw.destroy();
  });
});
