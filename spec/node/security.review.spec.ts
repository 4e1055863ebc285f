// A hostile peer on the network, and a careless operator: what a security review found. Each spec failed before its fix.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { createLinkPair, DEFAULT_MAX_FRAME_SIZE, ErrorCode, FrameDecoder, FrameType, PROTOCOL_NAME, PROTOCOL_VERSION, type Frame } from '../../src';
import { jsonFrame } from '../../src/internal';
import { closeAll, delay, node, serveTcp, until } from '../helpers/net';
import { bytes, closed, handshakeBytes, rawClient } from '../helpers/raw';

afterEach(closeAll);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function heap(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
}

describe('a peer that trickles a large frame in tiny chunks', () => {
  it('holds about the bytes it sent, not a Buffer object per chunk (300,000 one-byte chunks: < 3 MB)', async () => {
    const server = node('hub', { heartbeatInterval: 0 });
    server.on('message', (m) => m.reply('pong'));
    const [a, b] = createLinkPair();
    server.acceptVia(a);
    b.resume();
    b.write(handshakeBytes('trickler'));
    await until(() => server.get('trickler') !== undefined);
    const header = bytes({ type: FrameType.MESSAGE, flags: 0, id: 0, encoding: 0, payload: Buffer.alloc(0) });
    header.writeUInt32BE(8 * 1024 * 1024, 12);
    b.write(header);
    const before = heap();
    const count = 300_000;
    for (let i = 0; i < count; i++) b.write(Buffer.alloc(1)); // as a socket gives them: a buffer a read
    await delay(10);
    const grown = heap() - before;
    // Before: each chunk was kept as it came (a Buffer object and its backing store, ~200 bytes a byte: 60 MB).
    expect(grown).toBeLessThan(3 * 1024 * 1024);
    expect(server.stats().bytesIn).toBeGreaterThan(0);
    b.destroy();
  });

  it('hands out the same frames, whatever small pieces they arrive in (the gathered bytes stay valid)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 3000 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 40 }),
        (payloads, sizes) => {
          const wire = Buffer.concat(payloads.map((p, id) => bytes({ type: FrameType.MESSAGE, flags: 0, id, encoding: 0, payload: p })));
          const frames: Frame[] = [];
          const decoder = new FrameDecoder((f) => frames.push(f));
          for (let at = 0, i = 0; at < wire.length; i++) {
            const n = sizes[i % sizes.length];
            decoder.push(Buffer.from(wire.subarray(at, at + n)));
            at += n;
          }
          expect(frames.map((f) => [f.id, Buffer.from(f.payload)])).toEqual(payloads.map((p, id) => [id, Buffer.from(p)]));
        },
      ),
    );
  });
});

describe('TLS', () => {
  const pem = (file: string) => readFileSync(join(__dirname, '..', 'fixtures', 'tls', file));
  const tls = { key: pem('server-key.pem'), cert: pem('server-cert.pem') };

  it('a client that opens a TCP connection to a TLS server and says nothing is dropped after handshakeTimeout (not Node’s 120 s)', async () => {
    const server = node('hub', { handshakeTimeout: 200, tls });
    server.serve('hub', 0, '127.0.0.1');
    await once(server, 'listening');
    const raw = rawClient((server.server!.address() as AddressInfo).port);
    const started = Date.now();
    const gone = closed(raw);
    const verdict = await Promise.race([gone.then(() => 'closed'), delay(5000).then(() => 'still open after 5 s')]);
    raw.destroy();
    expect(verdict).toBe('closed');
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it('a tls.handshakeTimeout of the operator’s own is kept', async () => {
    const server = node('hub', { handshakeTimeout: 60_000, tls: { ...tls, handshakeTimeout: 200 } });
    server.serve('hub', 0, '127.0.0.1');
    await once(server, 'listening');
    const raw = rawClient((server.server!.address() as AddressInfo).port);
    const verdict = await Promise.race([closed(raw).then(() => 'closed'), delay(5000).then(() => 'still open after 5 s')]);
    raw.destroy();
    expect(verdict).toBe('closed');
  });
});

/** A raw TCP peer: the frames it receives, decoded. */
function rawPeer(port: number) {
  const socket = rawClient(port);
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((f) => frames.push(f));
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  return { socket, frames, json: (i: number) => JSON.parse(frames[i].payload.toString()) as Record<string, unknown> };
}

describe('a connected peer cannot be taken over by someone who only knows its instance id', () => {
  it('an unauthenticated peer claiming the name and instance of a connected one is refused (ERR_IPC_NAME_IN_USE); the real one stays', async () => {
    const hub = node('hub', { heartbeatInterval: 0 });
    hub.on('message', (m) => m.reply('from hub'));
    const hubPort = await serveTcp(hub);
    // alice serves too, and connects to the hub: anybody who connects to her learns her instance id (her hello).
    const alice = node('alice', { heartbeatInterval: 0, maxRetries: Infinity, retryTime: 10, maxRetryTime: 20 });
    alice.on('message', (m) => m.reply('alice'));
    const alicePort = await serveTcp(alice);
    await alice.connectTo('hub', hubPort, '127.0.0.1');
    const spy = rawPeer(alicePort);
    spy.socket.write(handshakeBytes('spy'));
    await until(() => spy.frames.length >= 1);
    const instance = spy.json(0).instance;
    expect(instance).toBe(alice.instance);
    spy.socket.destroy();

    const disconnects: string[] = [];
    alice.on('disconnect', (name) => disconnects.push(name));
    const real = hub.get('alice')!;
    const evil = rawPeer(hubPort);
    const hello = { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name: 'alice', instance, maxFrameSize: DEFAULT_MAX_FRAME_SIZE };
    evil.socket.write(Buffer.concat([bytes(jsonFrame(FrameType.HANDSHAKE, 1, hello)), bytes(jsonFrame(FrameType.HANDSHAKE, 3, {}))]));
    await closed(evil.socket);
    // Before: the hub dropped alice's connection for the impostor's (which then got what the hub sent alice),
    // alice came back and dropped the impostor: an impostor reconnecting in a loop kept her flapping.
    expect(evil.frames.map((f) => f.type)).toEqual([FrameType.CLOSE]);
    expect(evil.json(0).code).toBe(ErrorCode.NAME_IN_USE);
    await delay(100);
    expect(disconnects).toEqual([]);
    expect(hub.get('alice')).toBe(real);
    await expect(hub.sendTo('alice', 'hi')).resolves.toBe('alice');
  });
});

describe('a peer flooding cheap requests does not hog the event loop', () => {
  it('another peer is answered after at most a few thousand of the flood’s frames, not after millions of bytes of them', async () => {
    const hub = node('hub', { heartbeatInterval: 0 });
    let handled = 0;
    hub.on('message', (m) => {
      if (m.from === 'flood') handled++;
      m.reply('ok');
    });
    const port = await serveTcp(hub);
    const good = node('good', { heartbeatInterval: 0 });
    await good.connectTo('hub', port, '127.0.0.1');
    const flood = rawClient(port);
    flood.write(handshakeBytes('flood'));
    await until(() => hub.get('flood') !== undefined);
    // 17 bytes a request: 64 KiB of them is ~3,900 requests; 400,000 are 6.8 MB, written at once.
    const one = (id: number) => bytes({ type: FrameType.MESSAGE, flags: 1, id, encoding: 2, payload: Buffer.from('x') });
    const batch = Buffer.concat(Array.from({ length: 400_000 }, (_, i) => one(i + 1)));
    flood.write(batch);
    await until(() => handled > 0);
    const waits: number[] = [];
    while (handled < 300_000) {
      const before = handled;
      await good.sendTo('hub', 'hi');
      waits.push(handled - before);
    }
    flood.destroy();
    // Before: a socket was read (and its frames handled) up to 32 times 64 KiB in one turn of the event loop:
    // a good request waited behind ~120,000 of the flood's (~200 ms on a 2-core machine).
    expect(Math.max(...waits)).toBeLessThan(20_000);
  });
});
