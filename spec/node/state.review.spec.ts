// A code reader's review of the node's state: every counter, table, timer and subscription has one owner that
// keeps it right on every path. Each test here failed before its fix.
import { Encoding, ErrorCode, FrameDecoder, FrameFlags, FrameType, type Frame, type IpcError, type NodeMessage } from '../../src';
import { natsTransport } from '../../src/nats';
import { cleanUp } from '../helpers/child';
import { describeNats, startNatsServer, type NatsServer } from '../helpers/natsServer';
import { createLinkPair } from '../../src';
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

describeNats('close({ drain }) over a transport', () => {
  let nats: NatsServer;
  beforeAll(async () => (nats = await startNatsServer()));

  it('dials nothing more: a connectTo still searching rejects at once, an instance that appears meanwhile is not linked', async () => {
    const api = node('api', { transport: natsTransport({ servers: nats.url, discoveryInterval: 50 }), maxRetries: Infinity, heartbeatInterval: 0 });
    // A request in flight on another connection keeps the drain going.
    const hub = node('hub', { heartbeatInterval: 0 });
    let answer: (() => void) | null = null;
    hub.on('message', (m) => (answer = () => m.reply('done')));
    const [a, b] = createLinkPair();
    hub.acceptVia(a);
    await api.connectVia('hub', b);
    const held = api.sendTo('hub', 'hold');
    held.catch(() => undefined);
    await until(() => answer !== null);
    const events: string[] = [];
    api.on('connect', (name) => events.push(`connect ${name}`));
    const connecting = api.connectTo('worker').then(
      () => 'connected',
      (error: IpcError) => error.code,
    );
    await delay(100);
    const closing = api.close({ drain: 5000 });
    const worker = node('worker', { transport: natsTransport({ servers: nats.url }), heartbeatInterval: 0 });
    worker.serve('worker');
    const started = performance.now();
    // It kept searching through the drain, and linked to the instance that came up.
    expect(await connecting).toBe(ErrorCode.CLOSED);
    expect(performance.now() - started).toBeLessThan(1000);
    await delay(500);
    expect(events).toEqual([]);
    answer!();
    await expect(held).resolves.toBe('done');
    await closing;
  });

  it('a fleet with a member ready links no other instance while its requests finish', async () => {
    const transport = () => natsTransport({ servers: nats.url, discoveryInterval: 50 });
    const first = node('worker', { transport: transport(), heartbeatInterval: 0 });
    let answer: (() => void) | null = null;
    first.on('message', (m) => (answer = () => m.reply('done')));
    first.serve('worker');
    const api = node('api', { transport: transport(), maxRetries: Infinity, heartbeatInterval: 0 });
    await api.connectTo('worker');
    const held = api.sendTo('worker', 'hold');
    held.catch(() => undefined);
    await until(() => answer !== null);
    const events: string[] = [];
    api.on('connect', (name, socket) => events.push(`connect ${name} ${socket.instance}`));
    const closing = api.close({ drain: 5000 });
    const second = node('worker', { transport: transport(), heartbeatInterval: 0 });
    second.serve('worker');
    await delay(600);
    expect(events).toEqual([]);
    answer!();
    await expect(held).resolves.toBe('done');
    await closing;
  });
});
