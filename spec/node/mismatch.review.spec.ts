// Two ends configured differently — a rolling deploy, a copy-paste mistake: every call ends with the right result or
// one clear error that names whose option to change; nothing hangs, leaks a slot (stats() back to zero on both
// sides) or takes down the connection other calls depend on.
import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { Observable, firstValueFrom, toArray } from 'rxjs';
import { ErrorCode, Encoding, type Codec, type NodeMessage, type NodeOptions } from '../../src';
import { closeAll, delay, freePort, node, outcome, serveTcp, socketPath, until } from '../helpers/net';
import { describeNats, startNatsServer, type NatsServer } from '../helpers/natsServer';
import { natsNode, serving } from '../helpers/natsNodes';

afterEach(closeAll);

type Place = 'tcp' | 'unix';
type TestNode = ReturnType<typeof node>;

/** A server and a client (no heartbeat unless given) with options of their own, connected over `place`. */
async function pair(serverOptions: NodeOptions, clientOptions: NodeOptions, place: Place = 'tcp'): Promise<{ server: TestNode; client: TestNode }> {
  const server = node('server', { heartbeatInterval: 0, ...serverOptions });
  const client = node('client', { heartbeatInterval: 0, ...clientOptions });
  if (place === 'tcp') await client.connectTo('server', await serveTcp(server), '127.0.0.1');
  else {
    const path = socketPath();
    server.serve('server', path);
    await once(server, 'listening');
    await client.connectTo('server', path);
  }
  return { server, client };
}

/** Both sides hold no request and no stream any more. */
async function settled(...nodes: TestNode[]): Promise<void> {
  await until(() => nodes.every((n) => n.stats().pendingRequests === 0 && n.stats().openStreams === 0), 5000, 'every slot freed');
}

const failure = (promise: Promise<unknown>) => promise.then((value) => ({ value }) as Record<string, unknown>, (error: Record<string, unknown>) => error);

/** A JSON codec under a user tag (0x80), as a service switching codecs would deploy it. */
const tagged: Codec = {
  encode: (value) => ({ encoding: 0x80, payload: Buffer.from(JSON.stringify(value) ?? 'null') }),
  decode: (payload) => JSON.parse(payload.toString('utf8')),
};

describe.each<Place>(['tcp', 'unix'])('maxFrameSize 1 MiB on the server, 64 KiB on the client (%s)', (place) => {
  it('a reply, a pulled or pushed stream value, a one-way and a broadcast over the client limit fail alone, naming the client and its limit', async () => {
    const { server, client } = await pair({ maxFrameSize: 1 << 20 }, { maxFrameSize: 64 * 1024 }, place);
    const big = Buffer.alloc(100_000, 1);
    const thrown: string[] = [];
    server.on('message', (m: NodeMessage) => {
      if (m.data === 'reply') {
        try {
          m.reply(big);
        } catch (error) {
          thrown.push((error as { code: string }).code);
        }
      } else if (m.data === 'pulled') m.stream([1, 2, big, 4]);
      else if (m.data === 'pushed') m.stream(new Observable((s) => (s.next(1), s.next(big), s.next(3), s.complete())));
      else m.reply((m.data as Buffer).length);
    });
    const limit = /exceeds the maxFrameSize of "client" \(65536 bytes\): nothing was sent/;
    expect(await failure(client.sendTo('server', 'reply'))).toMatchObject({ code: ErrorCode.REMOTE, remoteCode: ErrorCode.FRAME_TOO_LARGE, message: expect.stringMatching(limit) });
    expect(thrown).toEqual([ErrorCode.FRAME_TOO_LARGE]);
    const pulled = await outcome(client.request$('server', 'pulled'));
    expect(pulled).toEqual({ values: [1, 2], code: ErrorCode.REMOTE });
    const pushed = await outcome(client.request$('server', 'pushed'));
    expect(pushed).toEqual({ values: [1], code: ErrorCode.REMOTE });
    expect(await failure(server.sendTo('client', big, { receptive: false }))).toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE, message: expect.stringMatching(limit) });
    const [outcomeOfClient] = await server.broadcastSettled(big);
    expect(outcomeOfClient).toMatchObject({ name: 'client', status: 'rejected', reason: { code: ErrorCode.FRAME_TOO_LARGE } });
    // The other way, the client's 64 KiB is no limit for the server: the same value goes, and the connection is fine.
    expect(await client.sendTo('server', big)).toBe(big.length);
    await settled(server, client);
    expect([server.errors, client.errors]).toEqual([[], []]);
  });
});

describe('a handler that replies over the requester’s maxFrameSize without catching', () => {
  it('the requester gets one RemoteError naming its own limit, the responder one \'error\' event saying the same; the next request passes', async () => {
    const { server, client } = await pair({}, { maxFrameSize: 1024 });
    server.on('message', (m: NodeMessage) => m.reply(m.data === 'big' ? 'x'.repeat(5000) : 'ok'));
    expect(await failure(client.sendTo('server', 'big'))).toMatchObject({
      code: ErrorCode.REMOTE,
      remoteCode: ErrorCode.FRAME_TOO_LARGE,
      message: 'A payload of 5000 bytes exceeds the maxFrameSize of "client" (1024 bytes): nothing was sent',
    });
    expect(await client.sendTo('server', 'small')).toBe('ok');
    expect(server.errors).toMatchObject([{ code: ErrorCode.FRAME_TOO_LARGE, message: expect.stringContaining('the maxFrameSize of "client"') }]);
    await settled(server, client);
  });
});

describe('codecs that differ', () => {
  it('(was broken) a request the server cannot decode: that request fails with ERR_IPC_DECODE naming the codec option, the next passes', async () => {
    const { server, client } = await pair({}, { codec: tagged });
    server.on('message', (m: NodeMessage) => m.reply(typeof m.data));
    const error = await failure(client.sendTo('server', { x: 1 }));
    // Was "…: Unknown payload encoding 0x80": nothing said that the two ends' codecs differ.
    expect(error).toMatchObject({ code: ErrorCode.REMOTE, remoteCode: ErrorCode.DECODE, message: expect.stringContaining('give both ends the same `codec` option') });
    expect(server.errors).toMatchObject([{ code: ErrorCode.DECODE, message: expect.stringContaining('`codec` option') }]);
    // Our Serializer still reads what the server sends: raw bytes travel under a tag both know.
    client.removeAllListeners('message');
    expect(await failure(server.sendTo('client', 'hi'))).toMatchObject({ code: ErrorCode.REMOTE, remoteCode: ErrorCode.DECODE });
    await settled(server, client);
  });

  it('(was broken) a reply or stream value the requester cannot decode fails that request only, locally; the responder’s slot is freed', async () => {
    // The server answers some values under a tag only it knows (a new codec on half the fleet).
    const mixed: Codec = {
      encode: (value) => (value === 'new' ? tagged.encode(value) : { encoding: Encoding.STRING, payload: Buffer.from(String(value)) }),
      decode: (payload, encoding) => (encoding === 0x80 ? tagged.decode(payload, encoding) : payload.toString()),
    };
    const { server, client } = await pair({ codec: mixed }, {});
    let finalized = 0;
    server.on('message', (m: NodeMessage) => {
      if (m.data === 'stream')
        m.stream(new Observable((s) => (['a', 'new', 'c'].forEach((v) => s.next(v)), () => finalized++)));
      else m.reply(m.data === 'old' ? 'old' : 'new');
    });
    expect(await failure(client.sendTo('server', 'q'))).toMatchObject({ code: ErrorCode.DECODE, message: expect.stringContaining('`codec` option') });
    expect(await outcome(client.request$('server', 'stream'))).toEqual({ values: ['a'], code: ErrorCode.DECODE });
    await until(() => finalized === 1, 5000, 'the stream torn down on the responder');
    expect(await client.sendTo('server', 'old')).toBe('old');
    await settled(server, client);
    expect([server.errors, client.errors]).toEqual([[], []]);
  });
});

describe('heartbeatInterval that differs', () => {
  it.each([
    ['10 ms on the server, 60 s on the client', 10, 60_000],
    ['10 ms on the client, none on the server', 0, 10],
  ])('%s: the connection stays up and answers', async (_, serverBeat, clientBeat) => {
    const { server, client } = await pair({ heartbeatInterval: serverBeat }, { heartbeatInterval: clientBeat });
    server.on('message', (m: NodeMessage) => m.reply(m.data));
    const pinged = serverBeat === 10 ? server : client;
    await until(() => pinged.stats().lastRtt !== null, 5000, 'a heartbeat answered');
    await delay(300); // 30 intervals of the fast side: 10 times its verdict's 3 silent intervals
    expect(await client.sendTo('server', 'still here')).toBe('still here');
    expect([server.errors, client.errors, server.stats().pendingRequests]).toEqual([[], [], 0]);
  });

  it('10 ms on the client, 60 s on the server: a 60 MiB reply (100–400 ms on loopback, 3 intervals are 30 ms) keeps the connection', async () => {
    const { server, client } = await pair({ heartbeatInterval: 60_000 }, { heartbeatInterval: 10 });
    const big = Buffer.alloc(60 << 20, 7);
    server.on('message', (m: NodeMessage) => m.reply(big));
    // The bytes of a frame still arriving are signs of life, though the PONGs wait behind it.
    expect(((await client.sendTo('server', 'big')) as Buffer).length).toBe(big.length);
    expect([server.errors, client.errors]).toEqual([[], []]);
    // (Not the other way: the client *sending* 60 MiB is dropped after 30 ms of "No sign of life" — its PINGs wait
    // behind the frame, and the server, whose own heartbeat is off or slow, says nothing meanwhile. Left alone, see
    // the review's report: no signal of a single write's progress to count instead.)
  });
});

describe('handshakeTimeout of 1 ms on one side', () => {
  it('(was broken) the server’s: the client is told it is the server’s handshakeTimeout; a few attempts, then connectTo rejects', async () => {
    const server = node('server', { heartbeatInterval: 0, handshakeTimeout: 1 });
    const port = await serveTcp(server);
    // A path 20 ms long each way: a handshake cannot beat 1 ms (on loopback, one may come within the timer's turn).
    const slow = createServer((inbound) => {
      const upstream = createConnection(port, '127.0.0.1');
      const relay = (from: Socket, to: Socket) => {
        from.on('data', (chunk) => setTimeout(() => to.writable && to.write(chunk), 20));
        from.on('close', () => setTimeout(() => to.destroy(), 20));
        from.on('error', () => undefined);
      };
      relay(inbound, upstream);
      relay(upstream, inbound);
    }).listen(0, '127.0.0.1');
    await once(slow, 'listening');
    const client = node('client', { heartbeatInterval: 0, maxRetries: 2, retryTime: 1 });
    const error = await failure(client.connectTo('server', (slow.address() as AddressInfo).port, '127.0.0.1'));
    slow.close();
    // Was "Refused by the peer: No handshake within 1 ms": which side's setting, the reader had to guess.
    expect(error).toMatchObject({ code: ErrorCode.HANDSHAKE, message: 'Refused by the peer: No handshake within 1 ms (the handshakeTimeout of "server")' });
    expect(client.errors).toHaveLength(2);
    await until(() => server.stats().handshaking === 0, 5000, 'no handshake left on the server');
  });
});

describe('auth.secret on one side only, or different', () => {
  it.each([
    ['the server only', undefined, /did not authenticate: this node requires a secret/],
    ['different secrets', 'client-secret-5f1e8c', /failed authentication \(wrong secret or replayed handshake\)/],
  ])('%s: ERR_IPC_AUTH once, final even with maxRetries Infinity (one connection), no secret in any message', async (_, clientSecret, reason) => {
    const server = node('server', { heartbeatInterval: 0, auth: { secret: 'server-secret-9a7b3d' } });
    const port = await serveTcp(server);
    let connections = 0;
    server.server!.on('connection', () => connections++);
    const client = node('client', { heartbeatInterval: 0, maxRetries: Infinity, retryTime: 1, ...(clientSecret ? { auth: { secret: clientSecret } } : {}) });
    const error = await failure(client.connectTo('server', port, '127.0.0.1'));
    expect(error).toMatchObject({ code: ErrorCode.AUTH, retryable: false, message: expect.stringMatching(reason) });
    await delay(100); // room for a retry storm, were there one
    expect(connections).toBe(1);
    expect(server.errors).toMatchObject([{ code: ErrorCode.AUTH }]);
    const said = [error, ...server.errors, ...client.errors].map((e) => `${String(e.message)} ${String(e.stack)}`).join('\n');
    expect(said).not.toMatch(/secret-/);
    expect(server.stats()).toMatchObject({ handshaking: 0, peers: {} });
  });
});

describe('maxPendingRequests 1 against 100 requests at once', () => {
  it('(was broken) on the server: one answered, 99 refused at once naming the server’s maxPendingRequests; no slot left', async () => {
    const { server, client } = await pair({ maxPendingRequests: 1 }, {});
    server.on('message', (m: NodeMessage) => setTimeout(() => m.reply(m.data), 20));
    const results = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => client.sendTo('server', i)));
    const answered = results.filter((r) => r.status === 'fulfilled');
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Record<string, unknown>] : []));
    expect([answered.length, refused.length]).toEqual([1, 99]);
    // Was '"server" already has 1 requests from "client" to answer': no word of the option to raise.
    expect(refused[0]).toMatchObject({ code: ErrorCode.REMOTE, remoteCode: ErrorCode.TOO_MANY_REQUESTS, message: '"server" already has 1 requests from "client" to answer (its maxPendingRequests)' });
    expect(refused.every((r) => r.remoteCode === ErrorCode.TOO_MANY_REQUESTS)).toBe(true);
    expect(await client.sendTo('server', 'after')).toBe('after');
    await settled(server, client);
    expect([server.errors, client.errors]).toEqual([[], []]);
  });

  it('(was broken) on the client: the 99 fail locally with ERR_IPC_TOO_MANY_REQUESTS naming the client’s maxPendingRequests, nothing sent', async () => {
    const { server, client } = await pair({}, { maxPendingRequests: 1 });
    let received = 0;
    server.on('message', (m: NodeMessage) => (received++, setTimeout(() => m.reply(m.data), 20)));
    const results = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => client.sendTo('server', i)));
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Record<string, unknown>] : []));
    expect(refused).toHaveLength(99);
    expect(refused[0]).toMatchObject({ code: ErrorCode.TOO_MANY_REQUESTS, message: '1 request to "server" already awaits an answer (the maxPendingRequests of "client")' });
    expect(received).toBe(1);
    await settled(server, client);
  });
});

describe('credits at the extremes against a fast responder', () => {
  it('window 1 and 2³²−1 for request$, window 1 for iterate: every value of a pulled source, in order, no slot left', async () => {
    const { server, client } = await pair({}, {});
    let produced = 0;
    server.on('message', (m: NodeMessage) =>
      m.stream(
        (function* () {
          for (let i = 0; i < 300; i++) yield (produced++, i);
        })(),
      ),
    );
    const all = Array.from({ length: 300 }, (_, i) => i);
    expect(await firstValueFrom(client.request$('server', 'a', { window: 1 }).pipe(toArray()))).toEqual(all);
    expect(await firstValueFrom(client.request$('server', 'a', { window: 2 ** 32 - 1 }).pipe(toArray()))).toEqual(all);
    const iterated: number[] = [];
    for await (const v of client.iterate<number>('server', 'a', { window: 1 })) iterated.push(v);
    expect(iterated).toEqual(all);
    await settled(server, client);
    expect(produced).toBe(900);
  });
});

describe('a requestTimeout shorter than the server’s handling time', () => {
  it('every request fails with ERR_IPC_TIMEOUT, the server’s slots are freed by CANCEL before it answers, late answers go nowhere quietly', async () => {
    const { server, client } = await pair({}, { requestTimeout: 30 });
    const replied: boolean[] = [];
    server.on('message', (m: NodeMessage) => setTimeout(() => replied.push(m.reply('late')), 500));
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => client.sendTo('server', i)));
    expect(results.every((r) => r.status === 'rejected' && (r.reason as { code: string }).code === ErrorCode.TIMEOUT)).toBe(true);
    await until(() => server.stats().pendingRequests === 0, 5000, 'the server’s slots freed by CANCEL');
    expect(replied).toEqual([]); // freed before the handler answered
    await until(() => replied.length === 50, 5000, 'every late answer tried');
    expect(replied.every((r) => r === false)).toBe(true);
    await settled(server, client);
    expect([server.errors, client.errors]).toEqual([[], []]);
  });
});

describe('a client whose name is in use on the server, with retries', () => {
  it('retries with backoff, one error per attempt, then rejects with ERR_IPC_NAME_IN_USE; the admitted twin is untouched', async () => {
    const server = node('server', { heartbeatInterval: 0 });
    server.on('message', (m: NodeMessage) => m.reply(m.data));
    const port = await serveTcp(server);
    const first = node('client', { heartbeatInterval: 0 });
    await first.connectTo('server', port, '127.0.0.1');
    let connections = 0;
    server.server!.on('connection', () => connections++);
    const twin = node('client', { heartbeatInterval: 0, maxRetries: 4, retryTime: 5, maxRetryTime: 20 });
    const error = await failure(twin.connectTo('server', port, '127.0.0.1'));
    expect(error).toMatchObject({ code: ErrorCode.NAME_IN_USE, message: expect.stringContaining('give each process a name of its own') });
    // 1 + maxRetries attempts: an 'error' event for each but the last, whose refusal is connectTo's rejection.
    expect([connections, twin.errors.length]).toEqual([5, 4]);
    expect(twin.errors.every((e) => (e as { code?: string }).code === ErrorCode.NAME_IN_USE)).toBe(true);
    expect(await first.sendTo('server', 'fine')).toBe('fine');
    expect(server.stats().handshaking).toBe(0);
  });
});

describe('maxDecodedSize that differs', () => {
  it('a request over the server’s limit is refused by the server; a reply over the client’s fails at the client; the connection serves on', async () => {
    const { server, client } = await pair({ maxDecodedSize: 1000 }, { maxDecodedSize: 10_000 });
    server.on('message', (m: NodeMessage) => m.reply(m.data === 'big' ? { s: 'x'.repeat(20_000) } : m.data));
    expect(await failure(client.sendTo('server', { s: 'x'.repeat(2000) }))).toMatchObject({
      code: ErrorCode.REMOTE,
      remoteName: 'ProtocolError',
      remoteCode: ErrorCode.FRAME_TOO_LARGE,
      message: expect.stringContaining('is over maxDecodedSize (1000 bytes)'),
    });
    expect(await failure(client.sendTo('server', 'big'))).toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE, message: expect.stringContaining('over maxDecodedSize (10000 bytes)') });
    expect(await client.sendTo('server', { ok: 1 })).toEqual({ ok: 1 });
    await settled(server, client);
    expect(server.errors).toMatchObject([{ code: ErrorCode.FRAME_TOO_LARGE }]);
    expect(client.errors).toMatchObject([]);
  });

  it('(was broken) an error answer over the requester’s maxDecodedSize says so, not that some payload of ours was too large', async () => {
    // A requester with a tiny limit (a copy-paste of a test setting): the server's refusal of a too large request
    // cannot be read. Was: "A payload of 157 bytes (encoding 0x5) is over maxDecodedSize (100 bytes): not decoded",
    // which reads as if the 2,008-byte request or an answer of ours were the problem.
    const { server, client } = await pair({ maxDecodedSize: 1000 }, { maxDecodedSize: 100 });
    server.on('message', (m: NodeMessage) => m.reply(m.data));
    const error = await failure(client.sendTo('server', { s: 'x'.repeat(2000) }));
    expect(error).toMatchObject({
      code: ErrorCode.FRAME_TOO_LARGE,
      message: expect.stringMatching(/^The error answer of "server" \(\d+ bytes\) is over the maxDecodedSize of "client" \(100 bytes\): not read/),
    });
    expect(await client.sendTo('server', 'fine')).toBe('fine');
    await settled(server, client);
  });
});

describe('a server restarted with other options under a reconnecting client (a rolling deploy)', () => {
  it('(was broken) a smaller maxFrameSize is learnt from the new handshake (a send over it fails alone); a new secret is ERR_IPC_AUTH once, final, and later sends say so', async () => {
    const port = await freePort();
    const restart = async (options: NodeOptions, answer: string) => {
      const server = node('server', { heartbeatInterval: 0, ...options });
      server.on('message', (m: NodeMessage) => m.reply(answer));
      server.serve('server', port, '127.0.0.1');
      await once(server, 'listening');
      return server;
    };
    const first = await restart({ maxFrameSize: 1 << 20 }, 'first');
    const client = node('client', { heartbeatInterval: 0, maxRetries: Infinity, retryTime: 5, maxRetryTime: 20 });
    await client.connectTo('server', port, '127.0.0.1');
    const big = Buffer.alloc(100_000);
    expect(await client.sendTo('server', big)).toBe('first');
    await first.close();
    const second = await restart({ maxFrameSize: 64 * 1024 }, 'second');
    await once(client, 'connect');
    expect(await failure(client.sendTo('server', big))).toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE, message: expect.stringContaining('the maxFrameSize of "server" (65536 bytes)') });
    expect(await client.sendTo('server', 'small')).toBe('second');
    expect(second.errors).toEqual([]);
    await second.close();
    const third = await restart({ auth: { secret: 'rotated-secret-c04f' } }, 'third');
    let connections = 0;
    third.server!.on('connection', () => connections++);
    await until(() => client.errors.length > 0, 5000, 'the refusal');
    await delay(200); // room for a retry storm (retryTime 5 ms), were there one
    expect([connections, client.errors.map((e) => (e as { code?: string }).code)]).toEqual([1, [ErrorCode.AUTH]]);
    // (was broken) Was 'Node "client" is not connected to "server"': every later send said nothing of the refusal.
    expect(await failure(client.sendTo('server', 'x'))).toMatchObject({
      code: ErrorCode.NOT_CONNECTED,
      message: expect.stringMatching(/^Node "client" is not connected to "server": its connection ended for good \(ERR_IPC_AUTH: Refused by the peer: "client" did not authenticate/),
    });
  });
});

describeNats('instances of one service configured differently (NATS)', () => {
  let nats: NatsServer;
  beforeAll(async () => {
    nats = await startNatsServer();
  });

  it('(was broken) maxFrameSize 64 KiB on one instance, 1 MiB on the other: a 100 KB value goes to the one that takes it', async () => {
    const small = await serving('svc', nats.url, { heartbeatInterval: 0, maxFrameSize: 64 * 1024 });
    const large = await serving('svc', nats.url, { heartbeatInterval: 0, maxFrameSize: 1 << 20 });
    for (const n of [small, large]) n.on('message', (m: NodeMessage) => m.reply(n.instance));
    const client = natsNode('api', nats.url, { heartbeatInterval: 0 });
    await client.connectTo('svc');
    const seen = new Set<unknown>();
    const both = () => seen.has(small.instance) && seen.has(large.instance);
    for (const deadline = Date.now() + 10_000; !both() && Date.now() < deadline; ) seen.add(await client.sendTo('svc', 'x'));
    expect(both()).toBe(true); // both links up
    const big = Buffer.alloc(100_000);
    // Was: 9 of 10 rejected with ERR_IPC_FRAME_TOO_LARGE — the least busy instance was the small one, whose refusal
    // (local, nothing sent) left it the least busy for the next request too.
    const answers = await Promise.allSettled(Array.from({ length: 10 }, () => client.sendTo('svc', big)));
    expect(answers.map((a) => (a.status === 'fulfilled' ? a.value : (a.reason as { code: string }).code))).toEqual(Array(10).fill(large.instance));
    const streamed = await outcome(client.request$('svc', big));
    expect(streamed).toEqual({ values: [large.instance] });
    // Small values still go to both.
    const smallAnswers = await Promise.all(Array.from({ length: 10 }, () => client.sendTo('svc', 'x')));
    expect(new Set(smallAnswers)).toEqual(new Set([small.instance, large.instance]));
    // Too large for every instance: the usual local error.
    expect(await failure(client.sendTo('svc', Buffer.alloc(2 << 20)))).toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE });
    await settled(client, small, large);
  });

  it('(was broken) two clients of one name with different maxFrameSize: the server’s sendTo(name) of a large value goes to the one that takes it', async () => {
    const service = await serving('svc', nats.url, { heartbeatInterval: 0 });
    const small = natsNode('api', nats.url, { heartbeatInterval: 0, maxFrameSize: 64 * 1024 });
    const large = natsNode('api', nats.url, { heartbeatInterval: 0, maxFrameSize: 1 << 20 });
    for (const n of [small, large]) {
      n.on('message', (m: NodeMessage) => m.reply(n.instance));
      await n.connectTo('svc');
    }
    await until(() => (service.stats().peers ? Object.keys(service.stats().peers).length === 2 : false), 5000, 'both clients admitted');
    const answers = await Promise.allSettled(Array.from({ length: 10 }, () => service.sendTo('api', Buffer.alloc(100_000))));
    expect(answers.map((a) => (a.status === 'fulfilled' ? a.value : (a.reason as { code: string }).code))).toEqual(Array(10).fill(large.instance));
    await settled(service, small, large);
  });

  it('different secrets on two instances: the wrong one is reported once and left alone, every request goes to the right one', async () => {
    const right = await serving('svc', nats.url, { heartbeatInterval: 0, auth: { secret: 'fleet-secret-31c9e0' } });
    const wrong = await serving('svc', nats.url, { heartbeatInterval: 0, auth: { secret: 'stale-secret-77ad42' } });
    for (const n of [right, wrong]) n.on('message', (m: NodeMessage) => m.reply(n.instance));
    const client = natsNode('api', nats.url, { heartbeatInterval: 0, auth: { secret: 'fleet-secret-31c9e0' }, maxRetries: Infinity, retryTime: 10 });
    await client.connectTo('svc');
    await delay(500); // a few discovery rounds
    const answers = await Promise.all(Array.from({ length: 10 }, () => client.sendTo('svc', 'x')));
    expect(new Set(answers)).toEqual(new Set([right.instance]));
    expect(client.errors).toMatchObject([{ code: ErrorCode.AUTH }]);
    expect(wrong.errors).toMatchObject([{ code: ErrorCode.AUTH }]);
    expect([...client.errors, ...wrong.errors].map((e) => e.message).join('\n')).not.toMatch(/secret-/);
  });
});
