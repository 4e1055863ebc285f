// Interop: a peer written from PROTOCOL.md alone (spec/helpers/docPeer.ts) against a real Node.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as net from 'node:net';
import type { Server } from 'node:net';
import { from, interval, take, finalize } from 'rxjs';
import { Node, type NodeMessage } from 'ipc-link-core';
import { DocPeer, docServer, E, F, frame, json, str, T, u32 } from '../helpers/docPeer';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'docpeer-'));
let seq = 0;
const sockPath = (): string => path.join(dir, `s${++seq}.sock`);
const nodes: Node[] = [];
const peers: DocPeer[] = [];
const servers: Server[] = [];

function mkNode(name: string, options: ConstructorParameters<typeof Node>[1] = {}): Node & { errors: Error[] } {
  const n = new Node(name, { heartbeatInterval: 0, ...options }) as Node & { errors: Error[] };
  n.errors = [];
  n.on('error', (e) => n.errors.push(e));
  nodes.push(n);
  return n;
}
async function serving(n: Node): Promise<string> {
  const p = sockPath();
  const listening = new Promise((r) => n.once('listening', r));
  n.serve(n.name, p);
  await listening;
  return p;
}
async function peer(p: string): Promise<DocPeer> {
  const d = await DocPeer.connect(p);
  peers.push(d);
  return d;
}
async function readyPeer(p: string, name: string, server: string, extra: object = {}): Promise<DocPeer> {
  const d = await peer(p);
  await d.clientHandshake({ name, server, ...extra });
  return d;
}
const body = (f: { payload: Buffer }): any => JSON.parse(f.payload.toString('utf8'));
async function waitFor(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 5));
  }
}
/** The connection works: a request gets its reply. */
async function alive(d: DocPeer, id: number): Promise<void> {
  d.send(T.MESSAGE, id, str('ping?'), F.RECEPTIVE, E.STRING);
  const r = await d.next((f) => f.id === id && (f.type === T.REPLY || f.type === T.ERROR));
  expect(r.type).toBe(T.REPLY);
}

afterEach(async () => {
  for (const d of peers.splice(0)) d.destroy();
  await Promise.all(nodes.splice(0).map((n) => n.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

describe('doc peer as a client of a Node', () => {
  test('handshake without auth: four frames, the Node knows us by name at step 4', async () => {
    const n = mkNode('srv');
    const p = await serving(n);
    const connected = new Promise<string>((r) => n.once('connection', (name) => r(name)));
    const d = await peer(p);
    const { hello, ack } = await d.clientHandshake({ name: 'doc', server: 'srv', instance: 'abc' });
    expect(hello).toMatchObject({ protocol: 'ipc-link-core', version: 2, name: 'srv', maxFrameSize: 64 * 1024 * 1024 });
    expect(typeof ack.resume).toBe('string');
    expect(Buffer.from(ack.resume, 'base64')).toHaveLength(32);
    expect(await connected).toBe('doc');
    expect(n.get('doc')).toBeDefined();
  });

  test('handshake with auth.secret: both proofs verify; a wrong proof is CLOSE ERR_IPC_AUTH, final', async () => {
    const n = mkNode('srv', { auth: { secret: 's3cret' } });
    n.on('message', (m) => m.reply('ok'));
    const p = await serving(n);
    const d = await peer(p);
    await d.clientHandshake({ name: 'doc', server: 'srv', secret: 's3cret' });
    await alive(d, 1);
    const bad = await peer(p);
    const err = await bad.clientHandshake({ name: 'doc2', server: 'srv', secret: 'wrong' }).catch((e) => e);
    expect(err.close).toMatchObject({ code: 'ERR_IPC_AUTH', reconnect: false });
    const nononce = await peer(p);
    nononce.send(T.HANDSHAKE, 1, json({ protocol: 'ipc-link-core', version: 2, name: 'doc3', maxFrameSize: 65536 }), 0, E.JSON);
    expect(body(await nononce.nextOf(T.CLOSE))).toMatchObject({ code: 'ERR_IPC_AUTH' });
    await alive(d, 2);
  });

  test('with a secret, a stranger taking a connected name learns nothing: ERR_IPC_AUTH after its proof, never ERR_IPC_NAME_IN_USE', async () => {
    const n = mkNode('srv', { auth: { secret: 'k' } });
    n.on('message', (m) => m.reply('ok'));
    const p = await serving(n);
    const d = await peer(p);
    await d.clientHandshake({ name: 'doc', server: 'srv', secret: 'k' });
    const stranger = await peer(p);
    const err = await stranger.clientHandshake({ name: 'doc', server: 'srv', secret: 'guess' }).catch((e) => e);
    expect(err.message).toBe('refused at step 4');
    expect(err.close).toMatchObject({ code: 'ERR_IPC_AUTH', reconnect: false });
    const twin = await peer(p);
    const err2 = await twin.clientHandshake({ name: 'doc', server: 'srv', secret: 'k' }).catch((e) => e);
    expect(err2.close).toMatchObject({ code: 'ERR_IPC_NAME_IN_USE' });
    await alive(d, 1);
  });

  test('without a secret, a twin is refused at step 2', async () => {
    const n = mkNode('srv');
    const p = await serving(n);
    await readyPeer(p, 'doc', 'srv');
    const twin = await peer(p);
    const err = await twin.clientHandshake({ name: 'doc', server: 'srv' }).catch((e) => e);
    expect(err.message).toBe('refused at step 2');
    expect(err.close).toMatchObject({ code: 'ERR_IPC_NAME_IN_USE', reconnect: true });
  });

  test('request answered by a REPLY; one-way message; PING → PONG', async () => {
    const n = mkNode('srv');
    const got: NodeMessage[] = [];
    n.on('message', (m) => { got.push(m); if (m.receptive) m.reply(`re:${m.data}`); });
    const d = await readyPeer(await serving(n), 'doc', 'srv');
    d.send(T.MESSAGE, 1, str('hi'), F.RECEPTIVE, E.STRING);
    const r = await d.nextOf(T.REPLY, 1);
    expect(r.encoding).toBe(E.STRING);
    expect(r.payload.toString()).toBe('re:hi');
    d.send(T.MESSAGE, 0, json({ a: 1 }), F.NONE, E.JSON);
    await waitFor(() => got.length === 2);
    expect(got[1]).toMatchObject({ data: { a: 1 }, receptive: false, from: 'doc' });
    const eight = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
    d.send(T.PING, 9, eight);
    expect((await d.nextOf(T.PONG, 9)).payload).toEqual(eight);
    d.send(T.PING, 10, Buffer.alloc(9, 1));
    expect((await d.nextOf(T.PONG, 10)).payload).toHaveLength(0);
  });

  test('stream: initial window, REQUEST_N top-ups, never more than the credits', async () => {
    const n = mkNode('srv');
    n.on('message', (m) => { m.stream(Array.from({ length: 20 }, (_, i) => i)); });
    const d = await readyPeer(await serving(n), 'doc', 'srv');
    d.send(T.MESSAGE, 7, Buffer.concat([u32(4), str('go')]), F.RECEPTIVE | F.WINDOW, E.STRING);
    let credits = 4;
    const values: number[] = [];
    for (;;) {
      const f = await d.next((x) => x.id === 7);
      if (f.type === T.COMPLETE) break;
      expect(f.type).toBe(T.NEXT);
      credits -= 1;
      expect(credits).toBeGreaterThanOrEqual(0);
      values.push(f.payload.readDoubleBE(0));
      if (credits === 0) {
        // the responder must stop here: a round trip shows nothing more came
        await d.sync();
        expect(d.frames.filter((x) => x.id === 7)).toHaveLength(0);
        d.send(T.REQUEST_N, 7, u32(3));
        credits += 3;
      }
    }
    expect(values).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  test('an Observable source also stays within the credits', async () => {
    const n = mkNode('srv');
    n.on('message', (m) => { m.stream(from(Array.from({ length: 10 }, (_, i) => i))); });
    const d = await readyPeer(await serving(n), 'doc', 'srv');
    d.send(T.MESSAGE, 3, Buffer.concat([u32(2), str('go')]), F.RECEPTIVE | F.WINDOW, E.STRING);
    await d.nextOf(T.NEXT, 3);
    await d.nextOf(T.NEXT, 3);
    await d.sync();
    expect(d.frames.filter((x) => x.id === 3)).toHaveLength(0);
    d.send(T.REQUEST_N, 3, u32(100));
    for (let i = 2; i < 10; i++) expect((await d.nextOf(T.NEXT, 3)).payload.readDoubleBE(0)).toBe(i);
    await d.nextOf(T.COMPLETE, 3);
  });

  test('a request without WINDOW starts with one credit; REQUEST_N before streaming adds to it', async () => {
    const n = mkNode('srv');
    let start!: () => void;
    const started = new Promise<void>((r) => (start = r));
    n.on('message', async (m) => { await started; m.stream([1, 2, 3]); });
    const d = await readyPeer(await serving(n), 'doc', 'srv');
    d.send(T.MESSAGE, 1, str('x'), F.RECEPTIVE, E.STRING);
    d.send(T.MESSAGE, 2, str('y'), F.RECEPTIVE, E.STRING);
    d.send(T.REQUEST_N, 2, u32(2));
    await d.sync();
    start();
    await d.nextOf(T.NEXT, 1).catch((e) => { throw new Error(`${e.message} log: ${d.log.map((f) => `${f.type}#${f.id}`).join(',')}`); });
    for (let i = 0; i < 3; i++) await d.nextOf(T.NEXT, 2);
    // a pulled source (an iterable) learns it ended only by being asked for one more value, which takes a credit
    await d.sync();
    expect(d.frames.filter((x) => x.id === 2)).toHaveLength(0);
    d.send(T.REQUEST_N, 2, u32(1));
    await d.nextOf(T.COMPLETE, 2);
    await d.sync();
    expect(d.frames.filter((x) => x.id === 1)).toHaveLength(0);
    d.send(T.CANCEL, 1);
  });

  test('CANCEL mid-stream tears the source down, nothing more for that id', async () => {
    const n = mkNode('srv');
    let finalized = false;
    n.on('message', (m) => { if (m.data === 'go') m.stream(interval(5).pipe(finalize(() => (finalized = true)))); else m.reply('ok'); });
    const d = await readyPeer(await serving(n), 'doc', 'srv');
    d.send(T.MESSAGE, 5, Buffer.concat([u32(1000), str('go')]), F.RECEPTIVE | F.WINDOW, E.STRING);
    await d.nextOf(T.NEXT, 5);
    await d.nextOf(T.NEXT, 5);
    d.send(T.CANCEL, 5);
    await waitFor(() => finalized);
    await d.sync();
    d.frames.length = 0;
    await d.sync();
    await d.sync();
    expect(d.frames.filter((x) => x.id === 5)).toHaveLength(0);
    await alive(d, 6);
  });

  test('graceful CLOSE from the doc peer', async () => {
    const n = mkNode('srv');
    const p = await serving(n);
    const d = await readyPeer(p, 'doc', 'srv');
    const gone = new Promise<string>((r) => n.once('socketClose', (name) => r(name)));
    d.send(T.CLOSE, 0, json({ code: 'ERR_IPC_CLOSED', message: 'bye', reconnect: false }), 0, E.JSON);
    d.end();
    expect(await gone).toBe('doc');
    await d.closed;
    expect(n.errors).toEqual([]);
  });

  test('GOAWAY: the draining Node answers what it has, refuses new requests with ERROR ERR_IPC_CLOSED, then CLOSEs', async () => {
    const n = mkNode('srv');
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    n.on('message', async (m) => { if (m.data === 'slow') { await held; m.reply('done'); } else m.reply('ok'); });
    const d = await readyPeer(await serving(n), 'doc', 'srv');
    d.send(T.MESSAGE, 1, str('slow'), F.RECEPTIVE, E.STRING);
    await d.sync();
    const closing = n.close({ drain: 10_000 });
    const g = await d.nextOf(T.GOAWAY);
    expect(g.id).toBe(0);
    expect(g.payload).toHaveLength(0);
    d.send(T.MESSAGE, 2, str('new'), F.RECEPTIVE, E.STRING);
    const e = await d.nextOf(T.ERROR, 2);
    expect(body(e)).toMatchObject({ code: 'ERR_IPC_CLOSED' });
    d.send(T.PING, 3);
    await d.nextOf(T.PONG, 3);
    release();
    expect((await d.nextOf(T.REPLY, 1)).payload.toString()).toBe('done');
    await d.nextOf(T.CLOSE, 0);
    await closing;
  });

  test('a payload that fails to decode is an ERROR ERR_IPC_DECODE for that request only', async () => {
    const n = mkNode('srv');
    n.on('message', (m) => m.reply('ok'));
    const d = await readyPeer(await serving(n), 'doc', 'srv');
    d.send(T.MESSAGE, 1, str('{not json'), F.RECEPTIVE, E.JSON);
    expect(body(await d.nextOf(T.ERROR, 1))).toMatchObject({ code: 'ERR_IPC_DECODE' });
    d.send(T.MESSAGE, 2, Buffer.alloc(3), F.RECEPTIVE, E.NUMBER);
    expect(body(await d.nextOf(T.ERROR, 2))).toMatchObject({ code: 'ERR_IPC_DECODE' });
    await alive(d, 3);
  });
});

describe('doc peer as a server a Node connects to', () => {
  async function docServe(opts: { name?: string; secret?: string; maxFrameSize?: number; badProof?: boolean } = {}): Promise<{ path: string; peer: Promise<DocPeer>; hello: Promise<any> }> {
    const p = sockPath();
    let gotPeer!: (d: DocPeer) => void;
    let gotHello!: (h: any) => void;
    let failHello!: (e: unknown) => void;
    const peerP = new Promise<DocPeer>((r) => (gotPeer = r));
    const helloP = new Promise<any>((r, j) => { gotHello = r; failHello = j; });
    helloP.catch(() => undefined);
    servers.push(await docServer(p, (d) => {
      peers.push(d);
      gotPeer(d);
      d.serverHandshake({ name: opts.name ?? 'docsrv', secret: opts.secret, maxFrameSize: opts.maxFrameSize, badProof: opts.badProof })
        .then((r) => gotHello(r.hello), failHello);
    }));
    return { path: p, peer: peerP, hello: helloP };
  }

  test('accepts its handshake, answers sendTo with a REPLY, gets one-way messages', async () => {
    const s = await docServe();
    const n = mkNode('cli');
    const sock = await n.connectTo('docsrv', s.path);
    expect(sock.name).toBe('docsrv');
    const hello = await s.hello;
    expect(hello).toMatchObject({ protocol: 'ipc-link-core', version: 2, name: 'cli', maxFrameSize: 64 * 1024 * 1024 });
    expect(typeof hello.instance).toBe('string');
    const d = await s.peer;
    const reply = n.sendTo('docsrv', 'question');
    const m = await d.nextOf(T.MESSAGE);
    expect(m.flags & F.RECEPTIVE).toBeTruthy();
    expect(m.id).not.toBe(0);
    expect(m.payload.toString()).toBe('question');
    d.send(T.REPLY, m.id, str('answer'), 0, E.STRING);
    await expect(reply).resolves.toBe('answer');
    await n.sendTo('docsrv', 42, { receptive: false });
    const one = await d.nextOf(T.MESSAGE);
    expect(one).toMatchObject({ id: 0, flags: 0, encoding: E.NUMBER });
    expect(one.payload.readDoubleBE(0)).toBe(42);
    // an ERROR answer is a RemoteError
    const failing = n.sendTo('docsrv', 'fail');
    const m2 = await d.nextOf(T.MESSAGE);
    d.send(T.ERROR, m2.id, json({ name: 'Error', message: 'nope', code: 'E_X' }), 0, E.JSON);
    await expect(failing).rejects.toMatchObject({ code: 'ERR_IPC_REMOTE', remoteCode: 'E_X', message: 'nope' });
  });

  test('with auth.secret: verifies the Node\'s proof, the Node verifies ours; a wrong server proof fails with ERR_IPC_AUTH', async () => {
    const s = await docServe({ secret: 'k' });
    const n = mkNode('cli', { auth: { secret: 'k' } });
    await n.connectTo('docsrv', s.path);
    expect((await s.hello).nonce).toEqual(expect.any(String));
    const bad = await docServe({ name: 'docbad', secret: 'k', badProof: true });
    const n2 = mkNode('cli2', { auth: { secret: 'k' }, maxRetries: 0 });
    await expect(n2.connectTo('docbad', bad.path)).rejects.toMatchObject({ code: 'ERR_IPC_AUTH' });
    const d = await bad.peer;
    await d.closed;
    expect(d.log.filter((f) => f.type === T.CLOSE).map(body)).toEqual([expect.objectContaining({ code: 'ERR_IPC_AUTH', reconnect: false })]);
  });

  test('request$ is a WINDOW request; the doc server streams within the credits and gets REQUEST_N', async () => {
    const s = await docServe();
    const n = mkNode('cli');
    await n.connectTo('docsrv', s.path);
    const d = await s.peer;
    const values: number[] = [];
    const done = new Promise<void>((resolve, reject) => n.request$('docsrv', 'feed', { window: 8 }).subscribe({ next: (v) => values.push(v as number), complete: resolve, error: reject }));
    const m = await d.nextOf(T.MESSAGE);
    expect(m.flags).toBe(F.RECEPTIVE | F.WINDOW);
    let credits = m.payload.readUInt32BE(0);
    expect(credits).toBe(8);
    expect(m.payload.subarray(4).toString()).toBe('feed');
    let sent = 0;
    const total = 50;
    while (sent < total) {
      while (credits > 0 && sent < total) { d.send(T.NEXT, m.id, (() => { const b = Buffer.alloc(8); b.writeDoubleBE(sent); return b; })(), 0, E.NUMBER); sent++; credits--; }
      if (sent < total) {
        const rn = await d.nextOf(T.REQUEST_N, m.id);
        expect(rn.payload).toHaveLength(4);
        credits += rn.payload.readUInt32BE(0);
      }
    }
    d.send(T.COMPLETE, m.id);
    await done;
    expect(values).toEqual(Array.from({ length: total }, (_, i) => i));
  });

  test('request$ unsubscribed mid-stream sends CANCEL; sendTo answered by a stream takes the first value and cancels', async () => {
    const s = await docServe();
    const n = mkNode('cli');
    await n.connectTo('docsrv', s.path);
    const d = await s.peer;
    const got: unknown[] = [];
    n.request$('docsrv', 'feed').pipe(take(2)).subscribe((v) => got.push(v));
    const m = await d.nextOf(T.MESSAGE);
    for (let i = 0; i < 3; i++) d.send(T.NEXT, m.id, str(`v${i}`), 0, E.STRING);
    await d.nextOf(T.CANCEL, m.id);
    expect(got).toEqual(['v0', 'v1']);
    const first = n.sendTo('docsrv', 'one');
    const m2 = await d.nextOf(T.MESSAGE);
    expect(m2.flags).toBe(F.RECEPTIVE);
    d.send(T.NEXT, m2.id, str('first'), 0, E.STRING);
    await expect(first).resolves.toBe('first');
    await d.nextOf(T.CANCEL, m2.id);
    const empty = n.sendTo('docsrv', 'none');
    const m3 = await d.nextOf(T.MESSAGE);
    d.send(T.COMPLETE, m3.id);
    await expect(empty).rejects.toMatchObject({ code: 'ERR_IPC_EMPTY_REPLY' });
  });

  test('answers the Node\'s heartbeat PINGs (id 0, 8-byte float64) and stays connected', async () => {
    const s = await docServe();
    const n = mkNode('cli', { heartbeatInterval: 100 });
    const sock = await n.connectTo('docsrv', s.path);
    const d = await s.peer;
    await waitFor(() => d.log.filter((f) => f.type === T.PING).length >= 6, 5000);
    const pings = d.log.filter((f) => f.type === T.PING);
    for (const p of pings) { expect(p.id).toBe(0); expect(p.payload).toHaveLength(8); }
    expect(sock.connected).toBe(true);
    expect(n.stats().lastRtt).toEqual(expect.any(Number));
  });

  test('the Node\'s requests are refused locally after our GOAWAY; pings and one-way messages still go', async () => {
    const s = await docServe();
    const n = mkNode('cli');
    await n.connectTo('docsrv', s.path);
    const d = await s.peer;
    d.send(T.GOAWAY, 0);
    await d.sync();
    await expect(n.sendTo('docsrv', 'x')).rejects.toMatchObject({ code: 'ERR_IPC_NOT_CONNECTED' });
    await n.sendTo('docsrv', 'oneway', { receptive: false });
    expect((await d.nextOf(T.MESSAGE)).payload.toString()).toBe('oneway');
    await expect(n.pingTo('docsrv')).resolves.toEqual(expect.any(Number));
  });

  test('STREAM_NEXT beyond the credits: iterate() fails that request (ERR_IPC_PROTOCOL) and CANCELs it; the connection goes on', async () => {
    const s = await docServe();
    const n = mkNode('cli');
    await n.connectTo('docsrv', s.path);
    const d = await s.peer;
    const it = n.iterate('docsrv', 'x', { window: 2 });
    const first = it.next();
    const m = await d.nextOf(T.MESSAGE);
    expect(m.payload.readUInt32BE(0)).toBe(2);
    for (let i = 0; i < 10; i++) d.send(T.NEXT, m.id, str(`v${i}`), 0, E.STRING);
    await d.nextOf(T.CANCEL, m.id);
    expect(await first).toEqual({ value: 'v0', done: false });
    const rest: unknown[] = [];
    const failure = await (async () => { for (;;) { const r = await it.next(); if (r.done) return null; rest.push(r.value); } })().catch((e) => e);
    expect(failure).toMatchObject({ code: 'ERR_IPC_PROTOCOL' });
    const reply = n.sendTo('docsrv', 'still');
    const m2 = await d.nextOf(T.MESSAGE);
    d.send(T.REPLY, m2.id, str('here'), 0, E.STRING);
    await expect(reply).resolves.toBe('here');
  });

  test('an ERROR body that is not a JSON object fails that request with a RemoteError; the connection goes on', async () => {
    const s = await docServe();
    const n = mkNode('cli');
    await n.connectTo('docsrv', s.path);
    const d = await s.peer;
    for (const bad of ['{x', '5', 'null']) {
      const p = n.sendTo('docsrv', 'q');
      const m = await d.nextOf(T.MESSAGE);
      d.send(T.ERROR, m.id, str(bad), 0, E.JSON);
      await expect(p).rejects.toMatchObject({ code: 'ERR_IPC_REMOTE' });
    }
    await expect(n.pingTo('docsrv')).resolves.toEqual(expect.any(Number));
    expect(n.errors).toEqual([]);
  });

  test('an ERROR or STREAM_ERROR whose code is a JSON number (a gRPC status) reaches the requester as its decimal string', async () => {
    const s = await docServe();
    const n = mkNode('cli');
    await n.connectTo('docsrv', s.path);
    const d = await s.peer;
    const p = n.sendTo('docsrv', 'q');
    const m = await d.nextOf(T.MESSAGE);
    d.send(T.ERROR, m.id, json({ name: 'RpcError', message: 'unavailable', code: 14 }), 0, E.JSON);
    await expect(p).rejects.toMatchObject({ code: 'ERR_IPC_REMOTE', remoteName: 'RpcError', remoteCode: '14' });
    const q = new Promise((resolve) => n.request$('docsrv', 'q').subscribe({ error: resolve }));
    const m2 = await d.nextOf(T.MESSAGE);
    d.send(T.STREAM_ERROR, m2.id, json({ name: 'RpcError', message: 'x', code: 5 }), 0, E.JSON);
    expect(await q).toMatchObject({ remoteCode: '5' });
    const r = n.sendTo('docsrv', 'q');
    const m3 = await d.nextOf(T.MESSAGE);
    d.send(T.ERROR, m3.id, json({ name: 'E', message: 'x', code: { not: 'a code' } }), 0, E.JSON);
    const e = (await r.catch((x: unknown) => x)) as { remoteCode?: string };
    expect(e.remoteCode).toBeUndefined();
  });

  test('HMAC keys and messages are UTF-8: a non-ASCII secret and names work both ways', async () => {
    const secret = 'sécret-ü-✓';
    const s = await docServe({ name: 'dôc', secret });
    const n = mkNode('clï', { auth: { secret } });
    await n.connectTo('dôc', s.path);
    const m = mkNode('sërv', { auth: { secret } });
    m.on('message', (x) => x.reply('ok'));
    const d = await peer(await serving(m));
    await d.clientHandshake({ name: 'dœc', server: 'sërv', secret });
    await alive(d, 1);
  });

  test('CLOSE with reconnect true: the Node dials again; with reconnect false it gives the peer up', async () => {
    const p = sockPath();
    const accepted: DocPeer[] = [];
    servers.push(await docServer(p, (d) => { peers.push(d); accepted.push(d); d.serverHandshake({ name: 'docsrv' }).catch(() => undefined); }));
    const n = mkNode('cli', { retryTime: 20 });
    await n.connectTo('docsrv', p);
    const again = new Promise((r) => n.once('connect', r));
    accepted[0].send(T.CLOSE, 0, json({ code: 'ERR_IPC_CLOSED', message: 'restarting', reconnect: true }), 0, E.JSON);
    accepted[0].end();
    await again;
    expect(accepted).toHaveLength(2);
    accepted[1].send(T.CLOSE, 0, json({ code: 'ERR_IPC_CLOSED', message: 'go away', reconnect: false }), 0, E.JSON);
    accepted[1].end();
    await waitFor(() => n.get('docsrv') === undefined);
    await expect(n.sendTo('docsrv', 'x')).rejects.toMatchObject({ code: 'ERR_IPC_NOT_CONNECTED' });
  });

  test('a closing Node sends CLOSE, ends its half, and destroys the socket when we never end ours (within 2 s; bound 6 s)', async () => {
    const p = sockPath();
    let d!: DocPeer;
    const server = net.createServer({ allowHalfOpen: true }, (s) => { d = new DocPeer(s); peers.push(d); d.serverHandshake({ name: 'docsrv' }).catch(() => undefined); });
    await new Promise<void>((r) => server.listen(p, r));
    servers.push(server);
    const n = mkNode('cli');
    await n.connectTo('docsrv', p);
    const ended = new Promise((r) => d.socket.once('end', r));
    const t0 = Date.now();
    await n.close();
    expect(Date.now() - t0).toBeLessThan(6000);
    await ended;
    expect(d.log.filter((f) => f.type === T.CLOSE).map(body)).toEqual([expect.objectContaining({ code: 'ERR_IPC_CLOSED' })]);
  });

  test('a server hello with another name: CLOSE ERR_IPC_HANDSHAKE, reconnect false', async () => {
    const s = await docServe({ name: 'impostor' });
    const n = mkNode('cli', { maxRetries: 0 });
    await expect(n.connectTo('docsrv', s.path)).rejects.toMatchObject({ code: 'ERR_IPC_HANDSHAKE' });
    const d = await s.peer;
    await d.closed;
    expect(d.log.filter((f) => f.type === T.CLOSE).map(body)).toEqual([expect.objectContaining({ code: 'ERR_IPC_HANDSHAKE', reconnect: false })]);
  });

  test('never sends a frame over our announced maxFrameSize: the send fails locally, the connection goes on', async () => {
    const s = await docServe({ maxFrameSize: 1024 });
    const n = mkNode('cli');
    await n.connectTo('docsrv', s.path);
    const d = await s.peer;
    await expect(n.sendTo('docsrv', 'x'.repeat(1025), { receptive: false })).rejects.toMatchObject({ code: 'ERR_IPC_FRAME_TOO_LARGE' });
    await expect(n.sendTo('docsrv', 'x'.repeat(1025))).rejects.toMatchObject({ code: 'ERR_IPC_FRAME_TOO_LARGE' });
    await n.sendTo('docsrv', 'x'.repeat(1024), { receptive: false });
    const m = await d.nextOf(T.MESSAGE);
    expect(m.payload).toHaveLength(1024);
    await d.sync();
    expect(d.log.every((f) => f.payload.length <= 1024)).toBe(true);
  });
});

describe('the doc\'s musts, limits and violations, against a Node', () => {
  /** Sets up a Node with a healthy doc peer, runs `bad` on a second connection, checks the outcome and the healthy one. */
  async function violation(
    bad: (d: DocPeer) => Promise<void> | void,
    expectCode: string,
    opts: { handshake?: boolean; nodeOptions?: ConstructorParameters<typeof Node>[1] } = {},
  ): Promise<{ bad: DocPeer; node: Node & { errors: Error[] } }> {
    const n = mkNode('srv', opts.nodeOptions);
    n.on('message', (m) => { if (m.receptive && m.data !== 'hold') m.reply('ok'); });
    const p = await serving(n);
    const good = await readyPeer(p, 'good', 'srv');
    const d = await peer(p);
    if (opts.handshake !== false) await d.clientHandshake({ name: 'bad', server: 'srv' });
    await bad(d);
    await d.closed;
    await waitFor(() => n.errors.length > 0);
    expect(n.errors.map((e) => (e as { code?: string }).code)).toContain(expectCode);
    await alive(good, 1000);
    await alive(good, 1001);
    if (opts.handshake !== false || expectCode !== 'ERR_IPC_HANDSHAKE') {
      // PROTOCOL.md "Frame header": the receiver says why in a CLOSE (reconnect false) before it ends the connection
      expect(d.log.filter((f) => f.type === T.CLOSE).map(body)).toEqual([expect.objectContaining({ code: expectCode, reconnect: false })]);
    }
    if (process.env.DOC_TRACE) console.log(expect.getState().currentTestName, JSON.stringify(d.log.filter((f) => f.type === T.CLOSE).map((f) => f.payload.toString())));
    return { bad: d, node: n };
  }
  const closes = (d: DocPeer): any[] => d.log.filter((f) => f.type === T.CLOSE).map(body);

  test('another version before the handshake: CLOSE ERR_IPC_PROTOCOL "Unsupported protocol version 3…", connection ends', async () => {
    const { bad } = await violation((d) => d.write(frame(T.HANDSHAKE, 1, json({}), 0, E.JSON, 3)), 'ERR_IPC_PROTOCOL', { handshake: false });
    expect(closes(bad)).toEqual([expect.objectContaining({ code: 'ERR_IPC_PROTOCOL', message: expect.stringContaining('Unsupported protocol version 3: this node speaks version 2') })]);
  });

  test('another magic before the handshake: CLOSE ERR_IPC_PROTOCOL, connection ends', async () => {
    const { bad } = await violation((d) => d.write(frame(T.HANDSHAKE, 1, json({}), 0, E.JSON, 2, 0x4142)), 'ERR_IPC_PROTOCOL', { handshake: false });
    expect(closes(bad)).toEqual([expect.objectContaining({ code: 'ERR_IPC_PROTOCOL' })]);
  });

  test('another version after the handshake ends the connection with ERR_IPC_PROTOCOL', async () => {
    await violation((d) => d.write(frame(T.MESSAGE, 0, str('x'), 0, E.STRING, 1)), 'ERR_IPC_PROTOCOL');
  });

  test('before the handshake: a declared payload over 16 KiB is refused before buffering it', async () => {
    const { bad } = await violation((d) => d.write(frame(T.HANDSHAKE, 1, Buffer.alloc(0), 0, E.JSON, 2, 0x494c, 16 * 1024 + 1)), 'ERR_IPC_FRAME_TOO_LARGE', { handshake: false });
    expect(closes(bad).map((c) => c.code)).not.toContain('ERR_IPC_HANDSHAKE');
  });

  test('after the handshake: a declared length over maxFrameSize ends the connection (ERR_IPC_FRAME_TOO_LARGE); exactly maxFrameSize is fine', async () => {
    await violation(async (d) => {
      d.send(T.MESSAGE, 0, Buffer.alloc(4096), 0, E.BUFFER);
      await d.sync();
      d.write(frame(T.MESSAGE, 0, Buffer.alloc(0), 0, E.BUFFER, 2, 0x494c, 4097));
    }, 'ERR_IPC_FRAME_TOO_LARGE', { nodeOptions: { maxFrameSize: 4096 } });
  });

  test('before the handshake only HANDSHAKE and CLOSE are accepted', async () => {
    await violation((d) => d.send(T.MESSAGE, 1, str('early'), F.RECEPTIVE, E.STRING), 'ERR_IPC_PROTOCOL', { handshake: false });
  });

  test.each([
    ['missing', undefined],
    ['below 1024', 1023],
    ['above 2^32-1', 2 ** 32],
    ['not whole', 1024.5],
    ['a string', '65536'],
  ])('a hello whose maxFrameSize is %s is refused', async (_what, value) => {
    const { bad } = await violation((d) => d.send(T.HANDSHAKE, 1, json({ protocol: 'ipc-link-core', version: 2, name: 'bad', maxFrameSize: value }), 0, E.JSON), 'ERR_IPC_HANDSHAKE', { handshake: false });
    expect(closes(bad)).toEqual([expect.objectContaining({ code: 'ERR_IPC_HANDSHAKE' })]);
  });

  test('the boundary maxFrameSize values 1024 and 2^32-1 are accepted', async () => {
    const n = mkNode('srv');
    n.on('message', (m) => m.reply('ok'));
    const p = await serving(n);
    await alive(await readyPeer(p, 'a', 'srv', { maxFrameSize: 1024 }), 1);
    await alive(await readyPeer(p, 'b', 'srv', { maxFrameSize: 2 ** 32 - 1 }), 1);
  });

  test.each([0x00, 0x0e, 0x7f, 0xff])('a reserved frame type %i after the handshake ends the connection with ERR_IPC_PROTOCOL', async (type) => {
    await violation((d) => d.send(type, 0), 'ERR_IPC_PROTOCOL');
  });

  test('a receptive MESSAGE whose id is already pending is a protocol error', async () => {
    await violation((d) => {
      d.send(T.MESSAGE, 5, str('hold'), F.RECEPTIVE, E.STRING);
      d.send(T.MESSAGE, 5, str('hold'), F.RECEPTIVE, E.STRING);
    }, 'ERR_IPC_PROTOCOL', { nodeOptions: {} });
  });

  test('REQUEST_N and CANCEL for ids not admitted, and answers for ids not awaited, are dropped', async () => {
    const n = mkNode('srv');
    n.on('message', (m) => m.reply('ok'));
    const d = await readyPeer(await serving(n), 'doc', 'srv');
    d.send(T.REQUEST_N, 77, u32(5));
    d.send(T.CANCEL, 78);
    d.send(T.REPLY, 79, str('x'), 0, E.STRING);
    d.send(T.ERROR, 80, json({ name: 'Error', message: 'x' }), 0, E.JSON);
    d.send(T.PONG, 81);
    d.send(T.NEXT, 82, str('x'), 0, E.STRING);
    d.send(T.COMPLETE, 83);
    d.send(T.STREAM_ERROR, 84, json({ name: 'Error', message: 'x' }), 0, E.JSON);
    await alive(d, 1);
    // ids: a one-way MESSAGE's id is not looked at; a receptive one with id 0 is answered as any other
    d.send(T.MESSAGE, 0, str('id0'), F.RECEPTIVE, E.STRING);
    await d.nextOf(T.REPLY, 0);
    d.send(T.MESSAGE, 5, str('one-way with an id'), F.NONE, E.STRING);
    await alive(d, 2);
    expect(n.errors).toEqual([]);
  });

  test.each([3, 5, 0])('a REQUEST_N with a %i-byte payload is a malformed control frame (ERR_IPC_PROTOCOL)', async (len) => {
    await violation(async (d) => {
      d.send(T.MESSAGE, 9, str('hold'), F.RECEPTIVE, E.STRING);
      d.send(T.REQUEST_N, 9, Buffer.alloc(len, 1));
    }, 'ERR_IPC_PROTOCOL', {});
  });

  test('a WINDOW request too short for its u32 is a malformed control frame', async () => {
    await violation((d) => d.send(T.MESSAGE, 9, Buffer.alloc(3), F.RECEPTIVE | F.WINDOW, E.STRING), 'ERR_IPC_PROTOCOL');
  });

  test('a CLOSE over 16 KiB is a protocol error, refused before it is parsed', async () => {
    await violation((d) => d.send(T.CLOSE, 0, json({ code: 'X', message: 'y'.repeat(17 * 1024), reconnect: false }), 0, E.JSON), 'ERR_IPC_PROTOCOL');
  });

  test('a CLOSE that is not JSON is a malformed control frame', async () => {
    await violation((d) => d.send(T.CLOSE, 0, str('{bad'), 0, E.JSON), 'ERR_IPC_PROTOCOL');
  });

  test('beyond maxPendingRequests: ERROR ERR_IPC_TOO_MANY_REQUESTS, not admitted; CANCEL frees a place', async () => {
    const n = mkNode('srv', { maxPendingRequests: 2 });
    n.on('message', (m) => { if (m.data === 'now') m.reply('ok'); });
    const d = await readyPeer(await serving(n), 'doc', 'srv');
    d.send(T.MESSAGE, 1, str('hold'), F.RECEPTIVE, E.STRING);
    d.send(T.MESSAGE, 2, str('hold'), F.RECEPTIVE, E.STRING);
    d.send(T.MESSAGE, 3, str('now'), F.RECEPTIVE, E.STRING);
    expect(body(await d.nextOf(T.ERROR, 3))).toMatchObject({ code: 'ERR_IPC_TOO_MANY_REQUESTS' });
    d.send(T.CANCEL, 1);
    d.send(T.MESSAGE, 3, str('now'), F.RECEPTIVE, E.STRING);
    expect((await d.nextOf(T.REPLY, 3)).payload.toString()).toBe('ok');
  });

  test('a reply over our maxFrameSize is an ERROR ERR_IPC_FRAME_TOO_LARGE instead, and an ERROR body is shortened to fit', async () => {
    const n = mkNode('srv');
    const thrown: unknown[] = [];
    n.on('message', (m) => {
      if (m.data === 'big') { try { m.reply('x'.repeat(2000)); } catch (e) { thrown.push(e); } } else m.error(Object.assign(new Error('y'.repeat(5000)), { code: 'E_LONG' }));
    });
    const d = await readyPeer(await serving(n), 'doc', 'srv', { maxFrameSize: 1024 });
    d.send(T.MESSAGE, 1, str('big'), F.RECEPTIVE, E.STRING);
    const e1 = await d.nextOf(T.ERROR, 1);
    expect(body(e1)).toMatchObject({ code: 'ERR_IPC_FRAME_TOO_LARGE' });
    expect(thrown).toEqual([expect.objectContaining({ code: 'ERR_IPC_FRAME_TOO_LARGE' })]);
    d.send(T.MESSAGE, 2, str('err'), F.RECEPTIVE, E.STRING);
    const e2 = await d.nextOf(T.ERROR, 2);
    expect(e2.payload.length).toBeLessThanOrEqual(1024);
    expect(body(e2)).toMatchObject({ name: 'Error', code: 'E_LONG' });
    expect(d.log.every((f) => f.payload.length <= 1024)).toBe(true);
  });

  test.each([
    ['an empty name', { name: '' }],
    ['a name of 257 UTF-16 units', { name: 'n'.repeat(257) }],
    ['a name that is not a string', { name: 5 }],
    ['an empty instance', { instance: '' }],
    ['an instance of 65 characters', { instance: 'i'.repeat(65) }],
  ])('a hello with %s is refused: CLOSE ERR_IPC_HANDSHAKE', async (_what, extra) => {
    await violation((d) => d.send(T.HANDSHAKE, 1, json({ protocol: 'ipc-link-core', version: 2, name: 'bad', maxFrameSize: 65536, ...extra }), 0, E.JSON), 'ERR_IPC_HANDSHAKE', { handshake: false });
  });

  test('a name of 256 UTF-16 units (not bytes) is admitted', async () => {
    const n = mkNode('srv');
    n.on('message', (m) => m.reply('ok'));
    await alive(await readyPeer(await serving(n), 'é'.repeat(256), 'srv'), 1);
  });

  test('a HANDSHAKE out of step (step 3 first, step 1 twice, one after the handshake) is ERR_IPC_PROTOCOL', async () => {
    const hello = json({ protocol: 'ipc-link-core', version: 2, name: 'bad', maxFrameSize: 65536 });
    await violation((d) => d.send(T.HANDSHAKE, 3, json({}), 0, E.JSON), 'ERR_IPC_PROTOCOL', { handshake: false });
    nodes.splice(0).forEach((n) => void n.close());
    await violation(async (d) => { d.send(T.HANDSHAKE, 1, hello, 0, E.JSON); await d.nextOf(T.HANDSHAKE, 2); d.send(T.HANDSHAKE, 1, hello, 0, E.JSON); }, 'ERR_IPC_PROTOCOL', { handshake: false });
    nodes.splice(0).forEach((n) => void n.close());
    await violation((d) => d.send(T.HANDSHAKE, 1, hello, 0, E.JSON), 'ERR_IPC_PROTOCOL');
  });

  test('flags: unknown bits are ignored; WINDOW without RECEPTIVE is a protocol error', async () => {
    const n = mkNode('srv');
    n.on('message', (m) => m.reply('ok'));
    const d = await readyPeer(await serving(n), 'doc', 'srv');
    d.send(T.MESSAGE, 1, str('x'), F.RECEPTIVE | 0x80 | 0x04, E.STRING);
    await d.nextOf(T.REPLY, 1);
    await violation((b) => b.send(T.MESSAGE, 0, Buffer.concat([u32(3), str('x')]), F.WINDOW, E.STRING), 'ERR_IPC_PROTOCOL');
  });

  test('a twin name: CLOSE ERR_IPC_NAME_IN_USE with reconnect true', async () => {
    const n = mkNode('srv');
    const p = await serving(n);
    await readyPeer(p, 'doc', 'srv');
    const twin = await peer(p);
    const err = await twin.clientHandshake({ name: 'doc', server: 'srv' }).catch((e) => e);
    expect(err.close).toMatchObject({ code: 'ERR_IPC_NAME_IN_USE', reconnect: true });
  });

  test('takeover: instance + that connection\'s resume token in the hello replaces the stale connection; instance alone is a twin', async () => {
    const n = mkNode('srv');
    n.on('message', (m) => m.reply('ok'));
    const p = await serving(n);
    const old = await peer(p);
    const { ack } = await old.clientHandshake({ name: 'doc', server: 'srv', instance: 'inst-1' });
    const noToken = await peer(p);
    expect((await noToken.clientHandshake({ name: 'doc', server: 'srv', instance: 'inst-1' }).catch((e) => e)).close).toMatchObject({ code: 'ERR_IPC_NAME_IN_USE' });
    const wrong = await peer(p);
    expect((await wrong.clientHandshake({ name: 'doc', server: 'srv', instance: 'inst-1', extra: { resume: Buffer.alloc(32).toString('base64') } }).catch((e) => e)).close).toMatchObject({ code: 'ERR_IPC_NAME_IN_USE' });
    const back = await peer(p);
    const again = await back.clientHandshake({ name: 'doc', server: 'srv', instance: 'inst-1', extra: { resume: ack.resume } });
    expect(again.ack.resume).not.toBe(ack.resume);
    await old.closed;
    await alive(back, 1);
  });

  test('two clients racing for one name at step 3: exactly one is admitted', async () => {
    const n = mkNode('srv');
    const p = await serving(n);
    const hello = json({ protocol: 'ipc-link-core', version: 2, name: 'same', maxFrameSize: 65536 });
    const [a, b] = [await peer(p), await peer(p)];
    for (const d of [a, b]) d.send(T.HANDSHAKE, 1, hello, 0, E.JSON);
    await a.nextOf(T.HANDSHAKE, 2);
    await b.nextOf(T.HANDSHAKE, 2);
    for (const d of [a, b]) d.send(T.HANDSHAKE, 3, json({}), 0, E.JSON);
    const outcomes = await Promise.all([a, b].map((d) => d.next((f) => f.type === T.CLOSE || (f.type === T.HANDSHAKE && f.id === 4)).then((f) => (f.type === T.CLOSE ? body(f).code : 'admitted'))));
    expect(outcomes.sort()).toEqual(['ERR_IPC_NAME_IN_USE', 'admitted']);
  });

  test('a handshake that does not complete within handshakeTimeout is closed (ERR_IPC_HANDSHAKE)', async () => {
    const { bad } = await violation(() => undefined, 'ERR_IPC_HANDSHAKE', { handshake: false, nodeOptions: { handshakeTimeout: 200 } });
    expect(closes(bad).map((c) => c.code)).toEqual(['ERR_IPC_HANDSHAKE']);
  });

  test('a hello of another protocol or JSON version is refused', async () => {
    const { bad } = await violation((d) => d.send(T.HANDSHAKE, 1, json({ protocol: 'other', version: 2, name: 'bad', maxFrameSize: 65536 }), 0, E.JSON), 'ERR_IPC_HANDSHAKE', { handshake: false });
    expect(closes(bad)).toHaveLength(1);
  });

  test('an unknown encoding tag fails that one message (ERR_IPC_DECODE), reserved header bytes are ignored', async () => {
    const n = mkNode('srv');
    n.on('message', (m) => m.reply('ok'));
    const d = await readyPeer(await serving(n), 'doc', 'srv');
    d.send(T.MESSAGE, 1, str('x'), F.RECEPTIVE, 0x07);
    expect(body(await d.nextOf(T.ERROR, 1))).toMatchObject({ code: 'ERR_IPC_DECODE' });
    const f = frame(T.MESSAGE, 2, str('x'), F.RECEPTIVE, E.STRING);
    f[6] = 0xab; f[7] = 0xcd;
    d.write(f);
    await d.nextOf(T.REPLY, 2);
  });

  test('a stream that ends inside a frame is a peer that went away, not a protocol error', async () => {
    const n = mkNode('srv');
    const p = await serving(n);
    const d = await readyPeer(p, 'doc', 'srv');
    const gone = new Promise((r) => n.once('socketClose', r));
    d.write(frame(T.MESSAGE, 0, Buffer.alloc(0), 0, E.STRING, 2, 0x494c, 100));
    d.write(Buffer.alloc(10));
    d.end();
    await gone;
    expect(n.errors.filter((e) => (e as { code?: string }).code === 'ERR_IPC_PROTOCOL')).toEqual([]);
  });
});
