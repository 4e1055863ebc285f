import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { DEFAULT_MAX_FRAME_SIZE, Encoding, ErrorCode, FrameType, PROTOCOL_NAME, PROTOCOL_VERSION } from '../../src';
import { Handshake, jsonFrame } from '../../src/internal';
import { closeAll, delay, node, serveTcp, until } from '../helpers/net';

afterEach(closeAll);

const SECRET = 'correct horse battery staple';
/** A frame the state machine wrote, as the other side reads it (its payload a Buffer). */
const asFrame = (f: { type: number; flags: number; id: number; encoding: number; payload: Uint8Array }) => ({ ...f, payload: Buffer.from(f.payload) });
/** A hello with a nonce, as a peer would write it by hand. */
const hello = (name: string, id: number, nonce: string) => jsonFrame(FrameType.HANDSHAKE, id, { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name, maxFrameSize: DEFAULT_MAX_FRAME_SIZE, nonce });

/** A TCP proxy that records both directions. */
async function recordingProxy(targetPort: number) {
  const clientToServer: Buffer[] = [];
  const serverToClient: Buffer[] = [];
  const sockets: Socket[] = [];
  const proxy = createServer((inbound) => {
    const outbound = connect(targetPort, '127.0.0.1');
    sockets.push(inbound, outbound);
    inbound.on('data', (d) => {
      clientToServer.push(d);
      outbound.write(d);
    });
    outbound.on('data', (d) => {
      serverToClient.push(d);
      inbound.write(d);
    });
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  return {
    port: (proxy.address() as AddressInfo).port,
    clientToServer,
    serverToClient,
    close: () => {
      sockets.forEach((s) => s.destroy());
      return new Promise((resolve) => proxy.close(resolve));
    },
  };
}

describe('authentication (auth: { secret })', () => {
  it('admits a peer with the right secret; the secret never crosses the wire', async () => {
    const server = node('vault', { auth: { secret: SECRET } });
    server.on('message', (m) => m.reply('opened'));
    const port = await serveTcp(server);
    const proxy = await recordingProxy(port);
    const client = node('teller', { auth: { secret: Buffer.from(SECRET) } });
    await client.connectTo('vault', proxy.port, '127.0.0.1');
    await expect(client.sendTo('vault', 'open')).resolves.toBe('opened');
    const wire = Buffer.concat([...proxy.clientToServer, ...proxy.serverToClient]);
    expect(wire.includes(Buffer.from(SECRET))).toBe(false);
    expect(wire.includes(Buffer.from('horse'))).toBe(false);
    await client.close();
    await proxy.close();
  });

  it.each([
    ['a wrong secret', { auth: { secret: 'wrong' } }],
    ['no secret', {}],
  ])('refuses a client with %s: ERR_IPC_AUTH within seconds, final, no connection, no message', async (_, options) => {
    const server = node('vault', { auth: { secret: SECRET } });
    const connections: string[] = [];
    const messages: unknown[] = [];
    server.on('connection', (name) => connections.push(name));
    server.messages$.subscribe((m) => messages.push(m.data));
    const port = await serveTcp(server);
    const client = node('intruder', { ...options, maxRetries: Infinity, retryTime: 10 });
    const started = Date.now();
    await expect(client.connectTo('vault', port, '127.0.0.1')).rejects.toMatchObject({ code: ErrorCode.AUTH });
    expect(Date.now() - started).toBeLessThan(3000);
    await delay(100);
    expect(connections).toEqual([]);
    expect(messages).toEqual([]);
    expect(server.errors.map((e) => (e as { code?: string }).code)).toEqual([ErrorCode.AUTH]);
    expect(client.get('vault')).toBeUndefined();
  });

  it('a client with a secret refuses a server without one', async () => {
    const server = node('impostor');
    const port = await serveTcp(server);
    const client = node('careful', { auth: { secret: SECRET } });
    await expect(client.connectTo('impostor', port, '127.0.0.1')).rejects.toMatchObject({ code: ErrorCode.AUTH });
  });

  it('a replayed handshake fails', async () => {
    const server = node('vault', { auth: { secret: SECRET } });
    const port = await serveTcp(server);
    const proxy = await recordingProxy(port);
    const client = node('teller', { auth: { secret: SECRET } });
    await client.connectTo('vault', proxy.port, '127.0.0.1');
    await client.close();
    await proxy.close();
    const recorded = Buffer.concat(proxy.clientToServer);

    const connections: string[] = [];
    server.on('connection', (name) => connections.push(name));
    const replay = connect(port, '127.0.0.1').on('error', () => undefined).resume();
    replay.write(recorded);
    await once(replay, 'close');
    await until(() => server.errors.length > 0);
    expect(connections).toEqual([]);
    expect(server.errors.some((e) => (e as { code?: string }).code === ErrorCode.AUTH)).toBe(true);
  });

  it('the client proves first: a server hands no proof to a client that has not proven itself (no offline guessing)', async () => {
    const secret = Buffer.from(SECRET);
    const body = (f: { payload: Uint8Array }) => JSON.parse(Buffer.from(f.payload).toString()) as Record<string, unknown>;
    // Pure state machines: the server's hello has a nonce and no proof; its proof comes in step 4, after the client's.
    const client = new Handshake('client', 'a', { expectedPeer: 'b', secret });
    const server = new Handshake('server', 'b', { secret });
    const hello = server.receive(asFrame(client.start()!));
    expect(Object.keys(body(hello.send!)).sort()).toEqual(['maxFrameSize', 'name', 'nonce', 'protocol', 'version']);
    const ack = client.receive(asFrame(hello.send!));
    expect(typeof body(ack.send!).proof).toBe('string');
    const accepted = server.receive(asFrame(ack.send!));
    expect(typeof body(accepted.send!).proof).toBe('string');
    expect(client.receive(asFrame(accepted.send!)).done).toBe('b');

    // An intruder without the secret sends a bogus proof: it gets a CLOSE, never a proof of the server.
    const vault = new Handshake('server', 'b', { secret });
    const intruder = new Handshake('client', 'a', { expectedPeer: 'b', secret: Buffer.from('guess') });
    const answer = vault.receive(asFrame(intruder.receive(asFrame(vault.receive(asFrame(intruder.start()!)).send!)).send!));
    expect(answer.error).toMatchObject({ code: ErrorCode.AUTH });
    expect(answer.send!.type).toBe(FrameType.CLOSE);
    expect(JSON.stringify(body(answer.send!))).not.toContain('proof');

    // Over a socket too: everything the server sends to an intruder carries no proof.
    const real = node('vault', { auth: { secret: SECRET } });
    const port = await serveTcp(real);
    const proxy = await recordingProxy(port);
    const guesser = node('guesser', { auth: { secret: 'hunter2' }, maxRetries: 0 });
    await expect(guesser.connectTo('vault', proxy.port, '127.0.0.1')).rejects.toMatchObject({ code: ErrorCode.AUTH });
    expect(Buffer.concat(proxy.serverToClient).includes('proof')).toBe(false);
    await proxy.close();
  });

  it('tells which names are connected only to a client that proved itself: an intruder is refused ERR_IPC_AUTH, a twin ERR_IPC_NAME_IN_USE', async () => {
    const server = node('vault', { auth: { secret: SECRET } });
    const port = await serveTcp(server);
    await node('teller', { auth: { secret: SECRET } }).connectTo('vault', port, '127.0.0.1');
    const intruder = node('teller', { auth: { secret: 'guess' }, maxRetries: 0 });
    await expect(intruder.connectTo('vault', port, '127.0.0.1')).rejects.toMatchObject({ code: ErrorCode.AUTH });
    const stranger = node('teller', { maxRetries: 0 });
    await expect(stranger.connectTo('vault', port, '127.0.0.1')).rejects.toMatchObject({ code: ErrorCode.AUTH });
    const twin = node('teller', { auth: { secret: SECRET }, maxRetries: 0 });
    await expect(twin.connectTo('vault', port, '127.0.0.1')).rejects.toMatchObject({ code: ErrorCode.NAME_IN_USE });
  });

  it('a client refuses a server that sends a nonce but cannot prove the secret (step 4), and tells it why', () => {
    const secret = Buffer.from(SECRET);
    const accept = (body: object) => ({ type: FrameType.HANDSHAKE, flags: 0, id: 4, encoding: Encoding.JSON, payload: Buffer.from(JSON.stringify(body)) });
    for (const body of [{ proof: 'AAAA' }, {}, { proof: 7 }]) {
      const client = new Handshake('client', 'a', { expectedPeer: 'b', secret });
      // An impostor that knows no secret answers the hello with a nonce, skips the client's proof, and accepts.
      const impostor = new Handshake('server', 'b', { secret: Buffer.from('not the secret') });
      expect(client.receive(asFrame(impostor.receive(asFrame(client.start()!)).send!)).send).toBeDefined();
      const result = client.receive(accept(body));
      expect(result.error).toMatchObject({ code: ErrorCode.AUTH });
      expect(result.done).toBeUndefined();
      expect(result.send!.type).toBe(FrameType.CLOSE);
    }
  });

  it('binds proofs to both nonces and both names (pure state machine)', () => {
    const secret = Buffer.from(SECRET);
    let n = 0;
    const nonce = () => Buffer.alloc(32, ++n);
    const client = new Handshake('client', 'a', { expectedPeer: 'b', secret, nonce });
    const server = new Handshake('server', 'b', { secret, nonce });
    const hello = asFrame(client.start()!);
    const answer = server.receive(hello);
    const ack = client.receive(asFrame(answer.send!));
    const accepted = server.receive(asFrame(ack.send!));
    expect(accepted.done).toBe('a');
    expect(client.receive(asFrame(accepted.send!)).done).toBe('b');
    // The same ack presented to a fresh server (new nonce) is refused.
    const fresh = new Handshake('server', 'b', { secret, nonce });
    fresh.receive(hello);
    expect(fresh.receive(asFrame(ack.send!)).error).toMatchObject({ code: ErrorCode.AUTH });
  });

  it('refuses a nonce that is not base64 text, either way (a line feed in it would give the signed text two readings)', () => {
    const secret = Buffer.from(SECRET);
    for (const bad of ['abc\ndef', 'not base64!', '', 'x'.repeat(1025)]) {
      const server = new Handshake('server', 'b', { secret });
      expect(server.receive(asFrame(hello('a', 1, bad))).error).toMatchObject({ code: ErrorCode.AUTH, message: expect.stringMatching(/nonce that is not base64 text/) });
      const client = new Handshake('client', 'a', { expectedPeer: 'b', secret });
      client.start();
      expect(client.receive(asFrame(hello('b', 2, bad))).error).toMatchObject({ code: ErrorCode.AUTH, message: expect.stringMatching(/nonce that is not base64 text/) });
    }
  });

  it('(was possible) a relay cannot pass a client named "a" that dials "b\\nc" off as "a\\nb" to a real server "c": names with a line feed are refused', () => {
    const secret = Buffer.from(SECRET);
    // Both proofs would sign "…\na\nb\nc": the client's ("a", "b\nc") and the server's ("a\nb", "c").
    const server = new Handshake('server', 'c', { secret });
    const relayed = jsonFrame(FrameType.HANDSHAKE, 1, { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name: 'a\nb', maxFrameSize: DEFAULT_MAX_FRAME_SIZE, nonce: Buffer.alloc(32, 1).toString('base64') });
    // The client's connectTo('b\nc') is a TypeError now (arguments.spec); the server refuses the relayed hello at once.
    expect(server.receive(asFrame(relayed)).error).toMatchObject({ code: ErrorCode.HANDSHAKE, message: expect.stringMatching(/control characters/) });
  });
});

describe('authentication: names and nonces the signed text must keep apart (review)', () => {
  const secret = Buffer.from('review secret');

  it('(was possible) a relay cannot pass a server named "b\\uFFFD" off as "b\\uD800": HMAC signs UTF-8, where every lone surrogate becomes U+FFFD', () => {
    const client = new Handshake('client', 'a', { expectedPeer: 'b\uD800', secret });
    const server = new Handshake('server', 'b\uFFFD', { secret });
    const answer = asFrame(server.receive(asFrame(client.start()!)).send!);
    // The relay rewrites the server's announced name to the one the client dials (JSON carries the lone surrogate).
    const body = JSON.parse(answer.payload.toString('utf8'));
    const relayed = { ...answer, payload: Buffer.from(JSON.stringify({ ...body, name: 'b\uD800' })) };
    const result = client.receive(relayed);
    expect(result.error).toMatchObject({ code: ErrorCode.HANDSHAKE, message: expect.stringMatching(/lone surrogate/) });
  });

  it('takes base64url nonces (as Python secrets.token_urlsafe or Go RawURLEncoding make them): only a line feed could harm', () => {
    const nonce = Buffer.alloc(32, 0xfb).toString('base64url'); // "-_-_…" without padding
    expect(new Handshake('server', 'b', { secret }).receive(asFrame(hello('a', 1, nonce))).error).toBeUndefined();
    const client = new Handshake('client', 'a', { expectedPeer: 'b', secret });
    client.start();
    expect(client.receive(asFrame(hello('b', 2, nonce))).error).toBeUndefined();
  });
});
