import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import fc from 'fast-check';
import { ErrorCode, FrameType, HEADER_SIZE, IpcError, PROTOCOL_NAME, PROTOCOL_VERSION, RemoteError } from '../../src';
import { HandshakeStep, jsonFrame } from '../../src/internal';
import { closeAll, delay, node, serveTcp, until } from '../helpers/net';
import { bytes, closed, handshakeBytes, rawClient } from '../helpers/raw';

afterEach(closeAll);

/** A hub that answers "pong", with a good client connected to it. */
async function hub(options = {}) {
  const server = node('hub', { handshakeTimeout: 300, ...options });
  server.on('message', (m) => m.reply('pong'));
  const port = await serveTcp(server);
  const good = node('good');
  await good.connectTo('hub', port, '127.0.0.1');
  return { server, port, good };
}

const codes = (errors: Error[]) => errors.map((e) => (e as IpcError).code);

describe('hostile input: one connection is closed with a typed error, nothing else notices', () => {
  it.each([
    ['garbage bytes', () => Buffer.from('\x00\x01garbage\xff'.repeat(10)), ErrorCode.PROTOCOL],
    ['a header claiming a 4 GiB payload', () => bytes({ type: 1, flags: 0, id: 1, encoding: 0, payload: Buffer.alloc(0) }).fill(0xff, 12, 16), ErrorCode.FRAME_TOO_LARGE],
    ['a valid handshake, then garbage', () => Buffer.concat([handshakeBytes('evil'), Buffer.from('GET / HTTP/1.1\r\n\r\n')]), ErrorCode.PROTOCOL],
    ['a valid handshake, then an unknown frame type', () => Buffer.concat([handshakeBytes('evil'), bytes({ type: 0x7e, flags: 0, id: 1, encoding: 0, payload: Buffer.alloc(3) })]), ErrorCode.PROTOCOL],
    ['a valid handshake, then a frame over maxFrameSize', () => Buffer.concat([handshakeBytes('evil'), bytes({ type: 1, flags: 0, id: 1, encoding: 0, payload: Buffer.alloc(0) }).fill(0x7f, 12, 13)]), ErrorCode.FRAME_TOO_LARGE],
  ])('%s', async (_, make, code) => {
    const { server, port, good } = await hub();
    const raw = rawClient(port);
    raw.write(make());
    await closed(raw);
    await until(() => server.errors.length > 0);
    expect(codes(server.errors)).toContain(code);
    await expect(good.sendTo('hub', 'ping')).resolves.toBe('pong');
  });

  it('a truncated frame then EOF: the peer went away (a disconnect, not a protocol error)', async () => {
    const { server, port, good } = await hub();
    const raw = rawClient(port);
    const frame = bytes({ type: FrameType.MESSAGE, flags: 1, id: 1, encoding: 2, payload: Buffer.from('hello world') });
    raw.write(Buffer.concat([handshakeBytes('evil'), frame.subarray(0, HEADER_SIZE + 3)]));
    await until(() => server.get('evil') !== undefined);
    const gone = once(server, 'socketClose');
    raw.end();
    await closed(raw);
    await gone;
    expect(server.errors).toEqual([]);
    await expect(good.sendTo('hub', 'ping')).resolves.toBe('pong');
  });

  it('a peer that connects and says nothing is dropped after handshakeTimeout', async () => {
    const { server, port, good } = await hub();
    const raw = rawClient(port);
    await closed(raw);
    await until(() => server.errors.length > 0);
    expect(codes(server.errors)).toEqual([ErrorCode.HANDSHAKE]);
    await expect(good.sendTo('hub', 'ping')).resolves.toBe('pong');
  });

  it('hundreds of connections opened and dropped at once', async () => {
    const { server, port, good } = await hub();
    const raws = Array.from({ length: 300 }, () => rawClient(port));
    await Promise.all(raws.map((r) => once(r, 'connect')));
    raws.forEach((r, i) => (i % 2 ? r.destroy() : r.end(handshakeBytes(`drive-by-${i}`).subarray(0, 30))));
    await Promise.all(raws.map(closed));
    await expect(good.sendTo('hub', 'ping')).resolves.toBe('pong');
    await until(() => server.stats().handshaking === 0);
  });

  it('a payload that does not decode fails that one request', async () => {
    const { server, port, good } = await hub();
    const raw = rawClient(port);
    const answers: Buffer[] = [];
    raw.on('data', (d) => answers.push(d));
    raw.write(Buffer.concat([handshakeBytes('sloppy'), bytes({ type: FrameType.MESSAGE, flags: 1, id: 7, encoding: 0x04, payload: Buffer.from([0xff, 0x0f, 0x99]) })]));
    await until(() => server.errors.length > 0);
    expect(codes(server.errors)).toEqual([ErrorCode.DECODE]);
    await until(() => Buffer.concat(answers).includes(Buffer.from('ERR_IPC_DECODE')));
    expect(raw.destroyed).toBe(false);
    raw.destroy();
    await expect(good.sendTo('hub', 'ping')).resolves.toBe('pong');
  });
});

describe('limits', () => {
  it('maxPendingRequests: requests beyond the cap are answered at once with ERR_IPC_TOO_MANY_REQUESTS', async () => {
    const server = node('hub', { maxPendingRequests: 5 });
    const held: unknown[] = [];
    server.on('message', (m) => held.push(m));
    const port = await serveTcp(server);
    const client = node('client');
    await client.connectTo('hub', port, '127.0.0.1');
    const results = Array.from({ length: 8 }, () => client.sendTo('hub', 'x', { timeout: 500 }).catch((e: Error) => e));
    const settled = await Promise.all(results);
    expect(held).toHaveLength(5);
    const refused = settled.filter((e) => e instanceof RemoteError && e.remoteCode === ErrorCode.TOO_MANY_REQUESTS);
    expect(refused).toHaveLength(3);
  });

  it('maxPendingRequests also caps our own requests to one peer', async () => {
    const server = node('hub');
    server.on('message', () => undefined);
    const port = await serveTcp(server);
    const client = node('client', { maxPendingRequests: 3 });
    await client.connectTo('hub', port, '127.0.0.1');
    const pending = Array.from({ length: 3 }, () => client.sendTo('hub', 'x', { timeout: 200 }).catch(() => 'timed out'));
    await expect(client.sendTo('hub', 'x')).rejects.toMatchObject({ code: ErrorCode.TOO_MANY_REQUESTS });
    await Promise.all(pending);
  });

  it('maxWriteBuffer: sends that would queue beyond it reject instead of growing memory', async () => {
    const server = node('hub');
    const port = await serveTcp(server);
    const client = node('client', { maxWriteBuffer: 1024 * 1024 });
    await client.connectTo('hub', port, '127.0.0.1');
    const chunk = Buffer.alloc(256 * 1024);
    const results = await Promise.all(Array.from({ length: 12 }, () => client.sendTo('hub', chunk, { receptive: false }).then(() => 'sent', (e: IpcError) => e.code)));
    expect(results.filter((r) => r === 'sent').length).toBeGreaterThanOrEqual(4);
    expect(results).toContain(ErrorCode.WRITE_BUFFER_FULL);
    await expect(client.sendTo('hub', chunk, { receptive: false })).resolves.toBeUndefined();
  });
});

describe('fuzz: random and mutated byte streams against a live node', () => {
  it('never brings the node down; a good client is served throughout', async () => {
    const { server, port, good } = await hub({ handshakeTimeout: 200 });
    const valid = Buffer.concat([
      handshakeBytes('fuzzer'),
      bytes({ type: FrameType.MESSAGE, flags: 1, id: 1, encoding: 2, payload: Buffer.from('hi') }),
      bytes({ type: FrameType.PING, flags: 0, id: 2, encoding: 0, payload: Buffer.alloc(0) }),
      bytes({ type: FrameType.MESSAGE, flags: 0, id: 0, encoding: 0x05, payload: Buffer.from('{"a":[1,2]}') }),
      // Control frames for ids never requested: dropped, they hold nothing.
      bytes({ type: FrameType.REQUEST_N, flags: 0, id: 99, encoding: 0, payload: Buffer.from([0, 0, 1, 0]) }),
      bytes({ type: FrameType.CANCEL, flags: 0, id: 98, encoding: 0, payload: Buffer.alloc(0) }),
      bytes({ type: FrameType.STREAM_NEXT, flags: 0, id: 97, encoding: 2, payload: Buffer.from('x') }),
      bytes({ type: FrameType.PONG, flags: 0, id: 96, encoding: 0, payload: Buffer.alloc(0) }),
      // A request with its window inside (flags RECEPTIVE | WINDOW).
      bytes({ type: FrameType.MESSAGE, flags: 3, id: 5, encoding: 2, payload: Buffer.from([0, 0, 0, 8, 0x68, 0x69]) }),
    ]);
    const stream = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      fc
        .tuple(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat({ max: valid.length }))
        .map(([flips, cutAt]) => {
          const mutated = Buffer.from(valid);
          for (const [at, value] of flips) mutated[at % mutated.length] = value;
          return mutated.subarray(0, Math.max(1, cutAt));
        }),
    );
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(stream, async (input) => {
        cases++;
        const raw = rawClient(port);
        raw.write(input);
        await delay(2);
        raw.end();
        await closed(raw);
        if (cases % 25 === 0) await expect(good.sendTo('hub', 'ping')).resolves.toBe('pong');
      }),
      { numRuns: 300 },
    );
    await expect(good.sendTo('hub', 'ping')).resolves.toBe('pong');
    console.log(`fuzz: ${cases} hostile connections, ${server.errors.length} typed errors reported, node still serving`);
    expect(server.errors.every((e) => e instanceof IpcError)).toBe(true);
  }, 120_000);
});

describe('fuzz: a hostile server against a node that dials it (the FrameReader path)', () => {
  it('every bad stream ends that one connection with a typed error; the node keeps working', async () => {
    const { port: goodPort } = await hub();
    const dialer = node('dialer', { handshakeTimeout: 300 });
    await dialer.connectTo('hub', goodPort, '127.0.0.1');
    const serverHello = Buffer.concat([
      bytes(jsonFrame(FrameType.HANDSHAKE, HandshakeStep.SERVER_HELLO, { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name: 'evil', maxFrameSize: 1 << 20 })),
      bytes(jsonFrame(FrameType.HANDSHAKE, HandshakeStep.SERVER_ACCEPT, {})),
    ]);
    const large = bytes({ type: FrameType.MESSAGE, flags: 0, id: 0, encoding: 0, payload: Buffer.alloc(100_000, 9) });
    const valid = Buffer.concat([
      bytes({ type: FrameType.MESSAGE, flags: 0, id: 0, encoding: 2, payload: Buffer.from('hi') }),
      large,
      bytes({ type: FrameType.PING, flags: 0, id: 2, encoding: 0, payload: Buffer.alloc(0) }),
    ]);
    const stream = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      // A header that claims a large body (read straight into its own buffer), then only part of it.
      fc.tuple(fc.integer({ min: 40_000, max: 64 * 1024 * 1024 }), fc.nat({ max: 200_000 })).map(([length, sent]) => {
        const header = bytes({ type: FrameType.MESSAGE, flags: 0, id: 0, encoding: 0, payload: Buffer.alloc(0) });
        header.writeUInt32BE(length, 12);
        return Buffer.concat([header, Buffer.alloc(Math.min(sent, length - 1), 1)]);
      }),
      fc
        .tuple(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat({ max: valid.length }))
        .map(([flips, cutAt]) => {
          const mutated = Buffer.from(valid);
          for (const [at, value] of flips) mutated[at % mutated.length] = value;
          return mutated.subarray(0, Math.max(1, cutAt));
        }),
    );
    let input = Buffer.alloc(0);
    const evil = createServer((socket) => {
      socket.on('error', () => undefined).resume();
      socket.end(Buffer.concat([serverHello, input]));
    });
    evil.listen(0, '127.0.0.1');
    await once(evil, 'listening');
    const evilPort = (evil.address() as AddressInfo).port;
    let cases = 0;
    const seen = new Map<string, number>();
    try {
      await fc.assert(
        fc.asyncProperty(stream, async (hostile) => {
          input = hostile;
          cases++;
          const errors: Error[] = [];
          dialer.errors.length = 0;
          const gone = once(dialer, 'disconnect').catch(() => undefined);
          const connected = await dialer.connectTo('evil', evilPort, '127.0.0.1').then(
            () => true,
            (error: Error) => (errors.push(error), false),
          );
          if (connected) await Promise.race([gone, delay(1000)]);
          await until(() => dialer.get('evil') === undefined);
          errors.push(...dialer.errors);
          expect(errors.every((e) => e instanceof IpcError)).toBe(true);
          for (const e of errors) seen.set((e as IpcError).code, (seen.get((e as IpcError).code) ?? 0) + 1);
          if (cases % 25 === 0) await expect(dialer.sendTo('hub', 'ping')).resolves.toBe('pong');
        }),
        { numRuns: 150 },
      );
    } finally {
      evil.close();
    }
    await expect(dialer.sendTo('hub', 'ping')).resolves.toBe('pong');
    console.log(`fuzz (dialling side): ${cases} hostile servers, typed errors: ${JSON.stringify(Object.fromEntries(seen))}`);
    // Mostly truncated streams (a disconnect mid-frame), some bytes that are not frames.
    expect((seen.get(ErrorCode.PROTOCOL) ?? 0) + (seen.get(ErrorCode.PEER_DISCONNECTED) ?? 0)).toBeGreaterThan(0);
  }, 120_000);
});
