// What a hostile review found after the first hardening pass; each of these failed before its fix.
import { once } from 'node:events';
import { join } from 'node:path';
import { lastValueFrom, Observable, throwError, toArray } from 'rxjs';
import {
  ErrorCode,
  FrameDecoder,
  FrameFlags,
  FrameType,
  PROTOCOL_NAME,
  PROTOCOL_VERSION,
  RemoteError,
  Serializer,
  type Frame,
  type IpcError,
  type NodeMessage,
} from '../../src';
import { jsonFrame } from '../../src/internal';
import { cleanUp, ROOT, spawnNode } from '../helpers/child';
import { delay, link, node, serveTcp, until } from '../helpers/net';
import { bytes, handshakeBytes, rawClient, rawPeer } from '../helpers/raw';

afterEach(cleanUp);

/** A receptive MESSAGE carrying its window. */
function request(id: number, window: number, value: string): Buffer {
  const payload = Buffer.concat([Buffer.alloc(4), Buffer.from(value)]);
  payload.writeUInt32BE(window, 0);
  return bytes({ type: FrameType.MESSAGE, flags: FrameFlags.RECEPTIVE | FrameFlags.WINDOW, id, encoding: 2, payload });
}

async function pair(handle: (m: NodeMessage) => void, transport: 'tcp' | 'link' = 'tcp', serverOptions = {}, clientOptions = {}) {
  const server = node('hub', { heartbeatInterval: 0, ...serverOptions });
  const client = node('client', { heartbeatInterval: 0, ...clientOptions });
  server.on('message', handle);
  await link(server, client, transport);
  return { server, client };
}

describe('a stream is paced by the socket too: a requester that grants 2³²−1 credits and never reads', () => {
  it('cannot freeze the responder (another client is answered at once) nor make it queue the whole stream', async () => {
    let yielded = 0;
    function* items() {
      for (; yielded < 200_000; yielded++) yield 'x'.repeat(1000);
    }
    const { server, port, raw } = await rawPeer((m) => (m.data === 'ping' ? m.reply('pong') : m.stream(items())));
    raw.pause(); // never reads
    raw.write(request(1, 0xffff_ffff, 'stream'));
    await until(() => yielded > 0);
    const good = node('good');
    await good.connectTo('hub', port, '127.0.0.1');
    const started = Date.now();
    await expect(good.sendTo('hub', 'ping')).resolves.toBe('pong');
    expect(Date.now() - started).toBeLessThan(1000);
    await delay(300);
    // Paced by the socket: about STREAM_BACKLOG (1 MiB) plus what the kernel buffers, not 200 MB.
    expect(yielded).toBeLessThan(50_000);
    raw.destroy();
    await until(() => server.get('raw') === undefined);
  });
});

describe('a peer that never reads cannot grow our memory with the answers it asks for', () => {
  it('reading from it pauses while more than maxWriteBuffer waits for it', async () => {
    let handled = 0;
    const answer = 'y'.repeat(16 * 1024);
    const { raw } = await rawPeer(
      (m) => {
        handled++;
        m.reply(answer);
      },
      { maxWriteBuffer: 256 * 1024 },
    );
    raw.pause();
    const count = 20_000; // 320 MB of answers if nothing stopped them
    const batch: Buffer[] = [];
    for (let id = 1; id <= count; id++) batch.push(bytes({ type: FrameType.MESSAGE, flags: FrameFlags.RECEPTIVE, id, encoding: 2, payload: Buffer.from('q') }));
    raw.write(Buffer.concat(batch));
    await delay(500);
    const paused = handled;
    await delay(300);
    expect(handled).toBe(paused); // not reading any more
    expect(handled).toBeLessThan(count / 2);
    raw.destroy();
  });
});

describe('control bodies are bounded before they are parsed', () => {
  it('a CLOSE with a 4 MiB body is a protocol error, not 4 MiB of JSON.parse', async () => {
    const { server, raw } = await rawPeer(() => undefined);
    const body = Buffer.from(JSON.stringify({ code: 'x', message: 'm'.repeat(4 * 1024 * 1024), reconnect: true }));
    raw.write(bytes({ type: FrameType.CLOSE, flags: 0, id: 0, encoding: 5, payload: body }));
    await until(() => server.errors.length > 0);
    expect(server.errors[0]).toMatchObject({ code: ErrorCode.PROTOCOL, message: expect.stringMatching(/Control frame .* at most 16384/) });
  });

  it('a peer announcing a maxFrameSize below 1024 is refused in the handshake', async () => {
    const server = node('hub');
    const port = await serveTcp(server);
    const raw = rawClient(port);
    const received: Frame[] = [];
    const decoder = new FrameDecoder((f) => received.push(f));
    raw.on('data', (chunk: Buffer) => decoder.push(chunk));
    raw.write(bytes(jsonFrame(FrameType.HANDSHAKE, 1, { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name: 'tiny', maxFrameSize: 64 })));
    await once(raw, 'close');
    expect(received.map((f) => f.type)).toEqual([FrameType.CLOSE]);
    expect(JSON.parse(received[0].payload.toString()).message).toMatch(/maxFrameSize \(a whole number from 1024/);
  });
});

describe('every failure is answered, whatever was thrown', () => {
  it.each([
    ['a generator that throws undefined', (m: NodeMessage) => m.stream((function* () { throw undefined; })())], // prettier-ignore
    ['an Observable that errors with null', (m: NodeMessage) => m.stream(throwError(() => null))],
    ['a Promise rejected without a reason', (m: NodeMessage) => m.stream(Promise.reject())],
    ['message.error(undefined)', (m: NodeMessage) => m.error(undefined as never)],
    ['an async handler that rejects', async () => Promise.reject(new Error('async handler failed'))],
    [
      'an AsyncIterable whose iterator cannot be had',
      (m: NodeMessage) => {
        try {
          m.stream({ [Symbol.asyncIterator]: () => { throw new Error('locked'); } }); // prettier-ignore
        } catch {
          // the handler sees the error too; the requester must not wait for it
        }
      },
    ],
  ])('%s: the requester gets a RemoteError at once, the slot is free', async (_, handle) => {
    const { server, client } = await pair(handle as (m: NodeMessage) => void, 'tcp', { maxPendingRequests: 1 });
    for (let i = 0; i < 2; i++) {
      const error = await client.sendTo('hub', 'x', { timeout: 10_000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RemoteError);
    }
    expect(server.stats().openStreams).toBe(0);
  });
});

describe('a synchronous Observable is stopped as soon as its stream overflows', () => {
  it('it sees its subscriber closed and stops emitting', async () => {
    let emitted = 0;
    const flood = new Observable<number>((subscriber) => {
      while (!subscriber.closed && emitted < 5_000_000) subscriber.next(emitted++);
    });
    const { client } = await pair((m) => m.stream(flood), 'link', { streamBuffer: 10 });
    const error = await lastValueFrom(client.request$('hub', 'x', { window: 1 }).pipe(toArray())).catch((e: unknown) => e);
    expect(error).toMatchObject({ remoteCode: ErrorCode.STREAM_OVERFLOW });
    expect(emitted).toBeLessThan(100);
  });
});

describe('one-way sends', () => {
  it('a large one-way send to a peer that leaves before reading it rejects (not resolves)', async () => {
    const { server, raw } = await rawPeer(() => undefined);
    raw.pause();
    const sent = server.sendTo('raw', Buffer.alloc(16 * 1024 * 1024), { receptive: false, timeout: Infinity });
    await delay(50);
    raw.destroy();
    await expect(sent).rejects.toMatchObject({ code: ErrorCode.PEER_DISCONNECTED });
  });

  it('a one-way send over the peer’s maxFrameSize rejects; it never throws', async () => {
    const { client } = await pair(() => undefined, 'tcp', { maxFrameSize: 1024 });
    let sent: Promise<unknown> | undefined;
    expect(() => (sent = client.sendTo('hub', Buffer.alloc(2048), { receptive: false }))).not.toThrow();
    await expect(sent).rejects.toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE });
  });

  it('broadcastSettled with receptive: false settles within its timeout when one peer does not read', async () => {
    const server = node('hub', { heartbeatInterval: 0 });
    const port = await serveTcp(server);
    const reader = node('reader');
    reader.on('message', () => undefined);
    await reader.connectTo('hub', port, '127.0.0.1');
    const raw = rawClient(port);
    raw.write(handshakeBytes('sleeper'));
    raw.pause();
    await until(() => server.get('sleeper') !== undefined && server.get('reader') !== undefined);
    const started = Date.now();
    const outcomes = await server.broadcastSettled(Buffer.alloc(8 * 1024 * 1024), { receptive: false, timeout: 500 });
    expect(Date.now() - started).toBeLessThan(3000);
    expect(Object.fromEntries(outcomes.map((o) => [o.name, o.status === 'rejected' ? (o.reason as IpcError).code : o.status]))).toEqual({
      reader: 'fulfilled',
      sleeper: ErrorCode.TIMEOUT,
    });
    raw.destroy();
  });
});

describe('timeouts', () => {
  it('(child process) a sendTo over an in-memory link times out, and keeps the process up until it does', async () => {
    const child = spawnNode([join(ROOT, 'spec', 'fixtures', 'link-timeout.js')]);
    await expect(child.exited).resolves.toEqual({ code: 0, signal: null });
    expect(child.output().trim()).toBe(ErrorCode.TIMEOUT);
  });

  it('idleTimeout with timeout: Infinity does not limit the wait for the first value', async () => {
    const { client } = await pair((m) => setTimeout(() => m.stream(['a', 'b']), 150), 'link');
    await expect(lastValueFrom(client.request$('hub', 'x', { timeout: Infinity, idleTimeout: 50 }).pipe(toArray()))).resolves.toEqual(['a', 'b']);
  });
});

describe('errors whose name is an Object.prototype key arrive as they were', () => {
  it.each(['constructor', 'toString', 'hasOwnProperty', '__proto__'])('name %p', (name) => {
    const codec = new Serializer();
    const error = Object.assign(new Error('boom'), { code: 'E_X' });
    Object.defineProperty(error, 'name', { value: name, configurable: true, writable: true });
    const { encoding, payload } = codec.encode(error);
    const back = codec.decode(Buffer.from(payload), encoding) as Error & { code?: string };
    expect(back).toBeInstanceOf(Error);
    expect([back.name, back.message, back.code]).toEqual([name, 'boom', 'E_X']);
  });

  it('an own "__proto__" property of a received error stays a property', () => {
    const codec = new Serializer();
    const error = new Error('boom');
    Object.defineProperty(error, '__proto__', { value: { polluted: true }, enumerable: true, configurable: true, writable: true });
    const { encoding, payload } = codec.encode(error);
    const back = codec.decode(Buffer.from(payload), encoding) as Error;
    expect(Object.getPrototypeOf(back)).toBe(Error.prototype);
    expect((back as unknown as { polluted?: boolean }).polluted).toBeUndefined();
  });
});

