// Edge values that are accepted (the smallest, the largest, 1 where 1 is special) and whether each does exactly
// what the README and TSDoc promise, deterministically: races show as flakiness, so what timing could sway runs
// 20 times, over TCP and over the in-memory link.
import { Observable } from 'rxjs';
import { ErrorCode, type NodeMessage } from '../../src';
import { closeAll, link, node, outcome, quietPair, until, type Transport } from '../helpers/net';
import { bytes, closed, rawPeer } from '../helpers/raw';
import { Encoding, FrameFlags, FrameType } from '../../src';

afterEach(closeAll);

const TRANSPORTS: Transport[] = ['tcp', 'link'];

const pair = quietPair;

describe.each(TRANSPORTS)('idleTimeout 0 (%s): no time at all between two values', (transport) => {
  it('a second value written a turn of the event loop after the first was delivered fails the stream, every time', async () => {
    const { hub, client } = await pair(transport);
    let delivered: () => void = () => undefined;
    let torn = 0;
    hub.on('message', (m: NodeMessage) =>
      m.stream(
        new Observable<number>((subscriber) => {
          subscriber.next(0);
          void new Promise<void>((resolve) => (delivered = resolve)).then(() =>
            setImmediate(() => {
              subscriber.next(1);
              subscriber.complete();
            }),
          );
          return () => torn++;
        }),
      ),
    );
    const seen: string[] = [];
    for (let i = 0; i < 20; i++) {
      const source = new Observable<unknown>((subscriber) =>
        client.request$('hub', 'x', { timeout: 5000, idleTimeout: 0 }).subscribe({
          next: (v) => {
            subscriber.next(v);
            delivered();
          },
          error: (e) => subscriber.error(e),
          complete: () => subscriber.complete(),
        }),
      );
      const { values, code } = await outcome(source);
      seen.push(`${JSON.stringify(values)} ${code ?? 'completed'}`);
    }
    expect(new Set(seen)).toEqual(new Set([`[0] ${ErrorCode.TIMEOUT}`]));
    await until(() => torn === 20 && hub.stats().openStreams === 0 && client.stats().pendingRequests === 0, 2000, 'no slot left');
  });

  it('values that come together (one write) all pass, every time', async () => {
    const { hub, client } = await pair(transport);
    hub.on('message', (m: NodeMessage) => m.stream([1, 2, 3]));
    for (let i = 0; i < 20; i++) {
      expect(await outcome(client.request$('hub', 'x', { timeout: 5000, idleTimeout: 0 }))).toEqual({ values: [1, 2, 3] });
    }
    await until(() => hub.stats().openStreams === 0 && client.stats().pendingRequests === 0, 2000, 'no slot left');
  });
});

/** The end of this turn of the event loop: the socket had its turn to hand what was written to the kernel. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe.each(TRANSPORTS)('a one-way sendTo with timeout 0 (%s): taken at once, or ERR_IPC_TIMEOUT at once', (transport) => {
  const outcomeOf = (sent: Promise<unknown>) => sent.then(() => 'resolved', (e: { code?: string }) => String(e.code));

  it('a payload of 8 KiB (copied) into an empty socket resolves, every time', async () => {
    const { hub, client } = await pair(transport);
    hub.on('message', () => undefined);
    for (let i = 0; i < 20; i++) {
      expect(await outcomeOf(client.sendTo('hub', Buffer.alloc(8 * 1024, 1), { receptive: false, timeout: 0 }))).toBe('resolved');
      await nextTurn();
    }
  });

  it('a payload over 8 KiB (taken by the socket later, without a copy) fails, every time, and is still delivered', async () => {
    const { hub, client } = await pair(transport);
    let received = 0;
    hub.on('message', () => received++);
    const outcomes = new Set<string>();
    for (let i = 0; i < 20; i++) {
      outcomes.add(await outcomeOf(client.sendTo('hub', Buffer.alloc(i % 2 ? 4 * 1024 * 1024 : 8 * 1024 + 1, 1), { receptive: false, timeout: 0 })));
      await until(() => received === i + 1, 5000, 'the message delivered');
    }
    expect(outcomes).toEqual(new Set([ErrorCode.TIMEOUT]));
  });

  it('small payloads sent in one tick: those the socket takes at once resolve, the rest (waiting for a drain) fail at once', async () => {
    const { hub, client } = await pair(transport);
    let received = 0;
    hub.on('message', () => received++);
    for (let i = 0; i < 20; i++) {
      const outcomes = await Promise.all(Array.from({ length: 64 }, () => outcomeOf(client.sendTo('hub', Buffer.alloc(4096, 1), { receptive: false, timeout: 0 }))));
      const taken = outcomes.filter((o) => o === 'resolved').length;
      expect(outcomes).toEqual([...Array(taken).fill('resolved'), ...Array(64 - taken).fill(ErrorCode.TIMEOUT)]);
      // Over TCP the writer takes frames up to the socket's high-water mark (16 KiB); an in-memory link takes all.
      expect(taken).toBe(transport === 'tcp' ? 3 : 64);
      await until(() => received === 64 * (i + 1), 5000, 'every message delivered');
    }
  });
});

describe.each(TRANSPORTS)('a value at the peer\'s maxFrameSize (%s)', (transport) => {
  it('sendTo takes a value of exactly maxFrameSize; request$ and iterate, whose request carries 4 bytes of credits, one of maxFrameSize − 4, and say why not above', async () => {
    const hub = node('hub', { heartbeatInterval: 0, maxFrameSize: 1024 });
    const client = node('client', { heartbeatInterval: 0 });
    await link(hub, client, transport);
    hub.on('message', (m: NodeMessage) => m.reply((m.data as Buffer).length));
    await expect(client.sendTo('hub', Buffer.alloc(1024))).resolves.toBe(1024);
    expect(await outcome(client.request$('hub', Buffer.alloc(1020)))).toEqual({ values: [1020] });
    await expect(client.iterate('hub', Buffer.alloc(1020)).next()).resolves.toEqual({ value: 1020, done: false });
    const refusal = {
      code: ErrorCode.FRAME_TOO_LARGE,
      message: 'A payload of 1021 bytes (and the 4 bytes of credits its request carries) exceeds the maxFrameSize of "hub" (1024 bytes): nothing was sent',
    };
    await expect(new Promise((_, reject) => client.request$('hub', Buffer.alloc(1021)).subscribe({ error: reject }))).rejects.toMatchObject(refusal);
    await expect(client.iterate('hub', Buffer.alloc(1021)).next()).rejects.toMatchObject(refusal);
    await expect(client.sendTo('hub', Buffer.alloc(1025))).rejects.toMatchObject({
      message: 'A payload of 1025 bytes exceeds the maxFrameSize of "hub" (1024 bytes): nothing was sent',
    });
    // The connection goes on, and nothing is left pending.
    await expect(client.sendTo('hub', Buffer.alloc(1))).resolves.toBe(1);
    expect(client.stats().pendingRequests).toBe(0);
  });
});

describe.each(TRANSPORTS)('maxDecodedSize 0 (%s): what still passes', (transport) => {
  it('Buffers, Uint8Arrays, strings and numbers; not undefined, null, booleans or an error answer: those fail that request, the connection stays', async () => {
    const { hub, client } = await pair(transport, { maxDecodedSize: 0 });
    hub.on('message', (m: NodeMessage) => {
      if (m.data === 'ack') m.reply(undefined);
      else if (m.data === 'error') m.error(new Error('no'));
      else if (m.data === 'empty') m.stream([]);
      else m.reply(JSON.parse(m.data as string));
    });
    const tooLarge = { code: ErrorCode.FRAME_TOO_LARGE };
    await expect(client.sendTo('hub', '7')).resolves.toBe(7);
    await expect(client.sendTo('hub', '"text"')).resolves.toBe('text');
    expect(await outcome(client.request$('hub', 'empty'))).toEqual({ values: [] });
    for (const data of ['ack', 'error', 'null', 'true']) await expect(client.sendTo('hub', data)).rejects.toMatchObject(tooLarge);
    await expect(client.sendTo('hub', '1')).resolves.toBe(1);
    expect(client.stats().pendingRequests).toBe(0);
  });
});

describe('a frame of exactly maxFrameSize from a peer, and one byte more', () => {
  it('the frame at the limit is handled; the one above it ends the connection with ERR_IPC_FRAME_TOO_LARGE', async () => {
    const { server, raw, received } = await rawPeer((m) => m.reply((m.data as Buffer).length), { maxFrameSize: 1024 });
    raw.write(bytes({ type: FrameType.MESSAGE, flags: FrameFlags.RECEPTIVE, id: 1, encoding: Encoding.BUFFER, payload: Buffer.alloc(1024) }));
    await until(() => received.some((f) => f.type === FrameType.REPLY && f.id === 1), 2000, 'the reply');
    raw.write(bytes({ type: FrameType.MESSAGE, flags: FrameFlags.RECEPTIVE, id: 2, encoding: Encoding.BUFFER, payload: Buffer.alloc(1025) }));
    await closed(raw);
    const close = received.find((f) => f.type === FrameType.CLOSE);
    expect(JSON.parse(Buffer.from(close!.payload).toString())).toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE });
    expect(received.some((f) => f.id === 2 && (f.type === FrameType.REPLY || f.type === FrameType.ERROR))).toBe(false);
    await until(() => server.get('raw') === undefined && server.stats().pendingRequests === 0, 2000, 'the peer forgotten');
  });
});
