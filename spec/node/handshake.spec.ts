import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import {
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  ErrorCode,
  FrameDecoder,
  FrameType,
  HandshakeError,
  PROTOCOL_VERSION,
  type Frame,
} from '../../src';
import { Handshake, jsonFrame } from '../../src/internal';
import { closeFrame } from '../../src/protocol/control';
import { spawnNode } from '../helpers/child';
import { closeAll, delay, node, serveTcp, until } from '../helpers/net';

afterEach(closeAll);

const asFrame = (f: ReturnType<typeof jsonFrame>): Frame => ({ ...f, payload: Buffer.from(f.payload) });

describe('Handshake (pure state machine)', () => {
  it('completes client ↔ server in four frames: the client is ready only once the server accepted it', () => {
    const client = new Handshake('client', 'alice', { expectedPeer: 'bob' });
    const server = new Handshake('server', 'bob', { accept: () => undefined });
    const hello = client.start()!;
    expect(server.start()).toBeUndefined();
    const answer = server.receive(asFrame(hello));
    expect(answer.error).toBeUndefined();
    const ack = client.receive(asFrame(answer.send!));
    expect(ack.done).toBeUndefined();
    const accepted = server.receive(asFrame(ack.send!));
    expect(accepted.done).toBe('alice');
    expect(client.receive(asFrame(accepted.send!)).done).toBe('bob');
    expect([client.peerMaxFrameSize, server.peerMaxFrameSize]).toEqual([DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_FRAME_SIZE]);
  });

  it('the client refuses a server with an unexpected name', () => {
    const client = new Handshake('client', 'alice', { expectedPeer: 'bob' });
    const server = new Handshake('server', 'mallory');
    const result = client.receive(asFrame(server.receive(asFrame(client.start()!)).send!));
    expect(result.error).toBeInstanceOf(HandshakeError);
    expect(result.error?.message).toMatch(/"mallory".*"bob"/);
    expect(result.send?.type).toBe(FrameType.CLOSE);
  });

  it('the server refuses a name its accept() rejects, with a CLOSE saying whether to retry', () => {
    const refusal = new HandshakeError(ErrorCode.NAME_IN_USE, 'taken', { retryable: true });
    const server = new Handshake('server', 'bob', { accept: () => refusal });
    const result = server.receive(asFrame(new Handshake('client', 'alice').start()!));
    expect(result.error).toBe(refusal);
    expect(JSON.parse(Buffer.from(result.send!.payload).toString())).toEqual({ code: ErrorCode.NAME_IN_USE, message: 'taken', reconnect: true });
  });

  it('refuses another protocol version or a frame out of order', () => {
    const server = new Handshake('server', 'bob');
    const bad = jsonFrame(FrameType.HANDSHAKE, 1, { protocol: 'ipc-link-core', version: 99, name: 'x' });
    expect(server.receive(asFrame(bad)).error).toMatchObject({ code: ErrorCode.HANDSHAKE });
    const early = new Handshake('server', 'bob').receive({ type: FrameType.MESSAGE, flags: 0, id: 0, encoding: 0, payload: Buffer.alloc(0) });
    expect(early.error).toMatchObject({ code: ErrorCode.PROTOCOL });
  });
});

/** A plain TCP client that reads (and discards) what it receives, so it sees the server's FIN. */
function rawClient(port: number): Socket {
  return connect(port, '127.0.0.1').on('error', () => undefined).resume();
}

/** Reads frames a raw socket receives. */
function frames(socket: Socket): Frame[] {
  const out: Frame[] = [];
  const decoder = new FrameDecoder((f) => out.push(f));
  socket.on('data', (chunk) => decoder.push(chunk));
  return out;
}

describe('Handshake over sockets', () => {
  it('refuses a connectTo whose name is not the peer’s, finally (no retries)', async () => {
    const server = node('real-name');
    const port = await serveTcp(server);
    const client = node('client', { maxRetries: Infinity, retryTime: 10 });
    await expect(client.connectTo('other-name', port, '127.0.0.1')).rejects.toMatchObject({ code: ErrorCode.HANDSHAKE });
    expect(client.get('other-name')).toBeUndefined();
  });

  it('refuses a second peer with a name already in use (ERR_IPC_NAME_IN_USE), admits it once the name is free', async () => {
    const server = node('hub');
    const port = await serveTcp(server);
    const first = node('dup');
    await first.connectTo('hub', port, '127.0.0.1');
    const second = node('dup');
    await expect(second.connectTo('hub', port, '127.0.0.1')).rejects.toMatchObject({ code: ErrorCode.NAME_IN_USE });
    const patient = node('dup', { maxRetries: 50, retryTime: 20, maxRetryTime: 50 });
    const admitted = patient.connectTo('hub', port, '127.0.0.1');
    // Refused while the name is taken: each refusal is an 'error' event while it retries.
    await until(() => patient.errors.some((e) => (e as { code?: string }).code === ErrorCode.NAME_IN_USE));
    await first.close();
    await expect(admitted).resolves.toBeDefined();
    await until(() => server.get('dup')?.connected === true);
  });

  it('refuses a peer speaking another protocol version, with a clear error on both sides', async () => {
    const server = node('hub');
    const port = await serveTcp(server);
    const raw = rawClient(port);
    const received = frames(raw);
    const [header, payload] = encodeFrame(jsonFrame(FrameType.HANDSHAKE, 1, { protocol: 'ipc-link-core', version: 2, name: 'future' }));
    header[2] = PROTOCOL_VERSION + 1;
    raw.write(Buffer.concat([header, payload]));
    await once(raw, 'close');
    await until(() => server.errors.length > 0);
    expect(server.errors[0]).toMatchObject({ code: ErrorCode.PROTOCOL });
    expect(server.errors[0].message).toMatch(new RegExp(`version ${PROTOCOL_VERSION + 1}`));
    expect(received.map((f) => f.type)).toEqual([FrameType.CLOSE]);
    expect(JSON.parse(received[0].payload.toString()).message).toMatch(new RegExp(`Unsupported protocol version ${PROTOCOL_VERSION + 1}`));
  });

  it('a connectTo to something that is not ipc-link-core rejects with ERR_IPC_PROTOCOL', async () => {
    const stranger = createServer((socket) => socket.resume().end('SSH-2.0-OpenSSH_9.6\r\n'));
    stranger.listen(0, '127.0.0.1');
    await once(stranger, 'listening');
    const client = node('client', { maxRetries: 5 });
    await expect(client.connectTo('x', (stranger.address() as AddressInfo).port, '127.0.0.1')).rejects.toMatchObject({
      code: ErrorCode.PROTOCOL,
    });
    await new Promise((resolve) => stranger.close(resolve));
  });

  it('drops a connection that never says hello after handshakeTimeout', async () => {
    const server = node('hub', { handshakeTimeout: 100 });
    const port = await serveTcp(server);
    const raw = rawClient(port);
    const started = Date.now();
    await once(raw, 'close');
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    await until(() => server.errors.length > 0);
    expect(server.errors[0]).toMatchObject({ code: ErrorCode.HANDSHAKE });
  });

  it('rejects a frame larger than the handshake limit before the handshake', async () => {
    const server = node('hub');
    const port = await serveTcp(server);
    const raw = rawClient(port);
    const [header] = encodeFrame({ type: FrameType.HANDSHAKE, flags: 0, id: 1, encoding: 5, payload: Buffer.alloc(1024 * 1024) });
    raw.write(header);
    await once(raw, 'close');
    await until(() => server.errors.length > 0);
    expect(server.errors[0]).toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE });
  });
});

describe('a server that closes during our handshake', () => {
  /** A stand-in server that answers every hello with a CLOSE `ERR_IPC_CLOSED`, as a node does while it closes. */
  async function closingServer(reconnect: boolean): Promise<{ port: number; hellos: () => number; close(): void }> {
    let hellos = 0;
    const server = createServer((socket) =>
      socket.once('data', () => {
        hellos++;
        const [header, payload] = encodeFrame(closeFrame({ code: ErrorCode.CLOSED, message: 'Node "hub" is closing', reconnect }));
        socket.end(Buffer.concat([header, payload]));
      }),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { port: (server.address() as AddressInfo).port, hellos: () => hellos, close: () => server.close() };
  }

  it('is a quiet retry, as a server that closes after the handshake (was an ERR_IPC_HANDSHAKE error event at each attempt)', async () => {
    const server = await closingServer(true);
    try {
      const client = node('client', { maxRetries: 2, retryTime: 5, maxRetryTime: 10 });
      const error = await client.connectTo('hub', server.port, '127.0.0.1').catch((e: unknown) => e);
      expect(server.hellos()).toBe(3);
      expect(client.errors).toEqual([]);
      expect(error).toMatchObject({ code: ErrorCode.PEER_DISCONNECTED, message: expect.stringMatching(/"hub" closed the connection during the handshake.*is closing/) });
    } finally {
      server.close();
    }
  });

  it('told not to come back, the client gives up at once', async () => {
    const server = await closingServer(false);
    try {
      const client = node('client', { maxRetries: 5, retryTime: 5 });
      await expect(client.connectTo('hub', server.port, '127.0.0.1')).rejects.toMatchObject({ code: ErrorCode.PEER_DISCONNECTED });
      expect(server.hellos()).toBe(1);
      expect(client.errors).toEqual([]);
    } finally {
      server.close();
    }
  });
});

describe('a handshake timeout on a peer that never answers takes handshakeTimeout, not 2 s more', () => {
  const HANDSHAKE = 300;

  async function timedConnect(port: number): Promise<{ code: unknown; ms: number }> {
    const client = node('impatient', { handshakeTimeout: HANDSHAKE, maxRetries: 0 });
    const started = Date.now();
    const error = await client.connectTo('frozen', port, '127.0.0.1').then(
      () => null,
      (e: unknown) => e,
    );
    return { code: (error as HandshakeError | null)?.code, ms: Date.now() - started };
  }

  it('a server that accepted the connection and never reads nor closes it (was 2.3 s: a CLOSE, then the close grace)', async () => {
    // allowHalfOpen: our FIN does not make it close its end; pauseOnConnect: it never reads.
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, () => undefined);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { code, ms } = await timedConnect((server.address() as AddressInfo).port);
      expect(code).toBe(ErrorCode.HANDSHAKE);
      expect(ms).toBeLessThan(HANDSHAKE + 1500);
    } finally {
      server.close();
    }
  });

  it('a TCP connect that hangs (the server process is frozen and its accept queue full)', async () => {
    // A child listens with a backlog of 1, then blocks its event loop without burning CPU: the kernel completes two
    // connects into its accept queue, then drops the SYNs of later ones, whose connect hangs.
    const frozen = spawnNode([
      '-e',
      `const s = require('node:net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
         console.log('port ' + s.address().port);
         setTimeout(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30000), 50);
       });`,
    ]);
    try {
      await frozen.waitFor(/port \d+/);
      const port = Number(/port (\d+)/.exec(frozen.output())![1]);
      await delay(200);
      const fillers = [0, 1, 2].map(() => connect(port, '127.0.0.1').on('error', () => undefined));
      await delay(300);
      try {
        const { code, ms } = await timedConnect(port);
        expect(code).toBe(ErrorCode.HANDSHAKE);
        expect(ms).toBeLessThan(HANDSHAKE + 1500);
      } finally {
        fillers.forEach((socket) => socket.destroy());
      }
    } finally {
      frozen.process.kill('SIGKILL');
      await frozen.exited;
    }
  });
});
