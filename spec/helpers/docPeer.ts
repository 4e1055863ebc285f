// An implementation of PROTOCOL.md written from the document alone (no import from src/): node:net + node:crypto.
import * as crypto from 'node:crypto';
import * as net from 'node:net';

export const T = {
  MESSAGE: 0x01, REPLY: 0x02, ERROR: 0x03, HANDSHAKE: 0x04, PING: 0x05, PONG: 0x06, CLOSE: 0x07,
  NEXT: 0x08, COMPLETE: 0x09, STREAM_ERROR: 0x0a, CANCEL: 0x0b, REQUEST_N: 0x0c, GOAWAY: 0x0d,
} as const;
export const F = { NONE: 0, RECEPTIVE: 1, WINDOW: 2 } as const;
export const E = { BUFFER: 0, UINT8ARRAY: 1, STRING: 2, NUMBER: 3, V8: 4, JSON: 5, ERROR: 6 } as const;

export interface Frame { magic: number; version: number; type: number; flags: number; encoding: number; id: number; payload: Buffer }

export function frame(type: number, id: number, payload: Buffer = Buffer.alloc(0), flags = 0, encoding = 0, version = 2, magic = 0x494c, declaredLength?: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt16BE(magic, 0);
  h[2] = version; h[3] = type; h[4] = flags; h[5] = encoding;
  h.writeUInt32BE(id >>> 0, 8);
  h.writeUInt32BE(declaredLength ?? payload.length, 12);
  return Buffer.concat([h, payload]);
}
export const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), 'utf8');
export const str = (s: string): Buffer => Buffer.from(s, 'utf8');
export const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return b; };

export function proof(secret: string, role: 'client' | 'server', nc: string, ns: string, client: string, server: string): string {
  return crypto.createHmac('sha256', secret).update(`ipc-link-core/${role}\n${nc}\n${ns}\n${client}\n${server}`).digest('base64');
}
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a); const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

/** One connection: parses frames, queues them, answers PINGs (unless told not to). */
export class DocPeer {
  readonly frames: Frame[] = [];
  readonly log: Frame[] = [];
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  ended = false;
  autoPong = true;
  readonly closed: Promise<void>;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.closed = new Promise((resolve) => socket.on('close', () => { this.ended = true; this.wake(); resolve(); }));
    socket.on('error', () => undefined);
  }

  static connect(path: string): Promise<DocPeer> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path, () => resolve(new DocPeer(s)));
      s.once('error', reject);
    });
  }

  private wake(): void { const w = this.waiters; this.waiters = []; for (const f of w) f(); }

  private onData(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 16) {
      const len = this.buf.readUInt32BE(12);
      if (this.buf.length < 16 + len) break;
      const f: Frame = {
        magic: this.buf.readUInt16BE(0), version: this.buf[2], type: this.buf[3], flags: this.buf[4], encoding: this.buf[5],
        id: this.buf.readUInt32BE(8), payload: Buffer.from(this.buf.subarray(16, 16 + len)),
      };
      this.buf = this.buf.subarray(16 + len);
      this.log.push(f);
      if (this.autoPong && f.type === T.PING) {
        this.write(frame(T.PONG, f.id, f.payload.length <= 8 ? f.payload : Buffer.alloc(0)));
        continue;
      }
      this.frames.push(f);
    }
    this.wake();
  }

  write(b: Buffer): void { if (!this.socket.destroyed) this.socket.write(b); }
  send(type: number, id: number, payload?: Buffer, flags = 0, encoding = 0): void { this.write(frame(type, id, payload, flags, encoding)); }

  /** Next frame matching `pred` (frames before it that do not match stay queued). Rejects after `ms` or on close. */
  async next(pred: (f: Frame) => boolean = () => true, ms = 5000): Promise<Frame> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.ended) throw new Error(`connection closed; queued types: ${this.frames.map((f) => f.type).join(',')}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout; queued: ${this.frames.map((f) => `${f.type}#${f.id}`).join(',')}`);
      await new Promise<void>((resolve) => { const t = setTimeout(resolve, left); this.waiters.push(() => { clearTimeout(t); resolve(); }); });
    }
  }
  nextOf(type: number, id?: number, ms?: number): Promise<Frame> {
    return this.next((f) => f.type === type && (id === undefined || f.id === id), ms);
  }

  /** Round trip: everything the peer wrote before answering this PING has arrived once the PONG is back. */
  async sync(): Promise<void> {
    const id = 0x7fff0000 + Math.floor(Math.random() * 0xffff);
    this.send(T.PING, id);
    await this.nextOf(T.PONG, id);
  }

  end(): void { this.socket.end(); }
  destroy(): void { this.socket.destroy(); }

  // ---- client role ------------------------------------------------------------------------------------
  /** Steps 1–4 as the client. Returns the server's hello and its step 4 body. */
  async clientHandshake(o: { name: string; server: string; secret?: string; maxFrameSize?: number; instance?: string; extra?: object }): Promise<{ hello: any; ack: any }> {
    const nc = crypto.randomBytes(32).toString('base64');
    const hello: any = { protocol: 'ipc-link-core', version: 2, name: o.name, maxFrameSize: o.maxFrameSize ?? 67108864, ...o.extra };
    if (o.instance) hello.instance = o.instance;
    if (o.secret !== undefined) hello.nonce = nc;
    this.send(T.HANDSHAKE, 1, json(hello), 0, E.JSON);
    const f2 = await this.next((f) => f.type === T.HANDSHAKE || f.type === T.CLOSE);
    if (f2.type === T.CLOSE) throw Object.assign(new Error('refused at step 2'), { close: JSON.parse(f2.payload.toString()) });
    if (f2.id !== 2 || f2.encoding !== E.JSON) throw new Error(`step 2: id ${f2.id}, encoding ${f2.encoding}`);
    const sh = JSON.parse(f2.payload.toString());
    if (sh.protocol !== 'ipc-link-core' || sh.version !== 2 || sh.name !== o.server) throw new Error(`bad server hello ${JSON.stringify(sh)}`);
    if (!Number.isInteger(sh.maxFrameSize) || sh.maxFrameSize < 1024 || sh.maxFrameSize > 0xffffffff) throw new Error('bad maxFrameSize');
    const step3: any = {};
    if (o.secret !== undefined) {
      if (typeof sh.nonce !== 'string' || Buffer.from(sh.nonce, 'base64').length !== 32) throw new Error('server nonce missing');
      if ('proof' in sh) throw new Error('server proved at step 2');
      step3.proof = proof(o.secret, 'client', nc, sh.nonce, o.name, o.server);
    }
    this.send(T.HANDSHAKE, 3, json(step3), 0, E.JSON);
    const f4 = await this.next((f) => f.type === T.HANDSHAKE || f.type === T.CLOSE);
    if (f4.type === T.CLOSE) throw Object.assign(new Error('refused at step 4'), { close: JSON.parse(f4.payload.toString()) });
    if (f4.id !== 4) throw new Error(`step 4 id ${f4.id}`);
    const ack = JSON.parse(f4.payload.toString());
    if (o.secret !== undefined) {
      const want = proof(o.secret, 'server', nc, sh.nonce, o.name, o.server);
      if (typeof ack.proof !== 'string' || !safeEqual(ack.proof, want)) throw new Error('server proof wrong');
    }
    return { hello: sh, ack };
  }

  // ---- server role ------------------------------------------------------------------------------------
  async serverHandshake(o: { name: string; secret?: string; maxFrameSize?: number; badProof?: boolean }): Promise<{ hello: any; step3: any }> {
    const f1 = await this.nextOf(T.HANDSHAKE, 1);
    const ch = JSON.parse(f1.payload.toString());
    if (ch.protocol !== 'ipc-link-core' || ch.version !== 2) throw new Error('bad client hello');
    const ns = crypto.randomBytes(32).toString('base64');
    const hello: any = { protocol: 'ipc-link-core', version: 2, name: o.name, maxFrameSize: o.maxFrameSize ?? 67108864 };
    if (o.secret !== undefined) hello.nonce = ns;
    this.send(T.HANDSHAKE, 2, json(hello), 0, E.JSON);
    const f3 = await this.nextOf(T.HANDSHAKE, 3);
    const step3 = JSON.parse(f3.payload.toString());
    const ack: any = {};
    if (o.secret !== undefined) {
      const want = proof(o.secret, 'client', ch.nonce, ns, ch.name, o.name);
      if (typeof step3.proof !== 'string' || !safeEqual(step3.proof, want)) {
        this.send(T.CLOSE, 0, json({ code: 'ERR_IPC_AUTH', message: 'bad proof', reconnect: false }), 0, E.JSON);
        this.end();
        throw new Error('client proof wrong');
      }
      ack.proof = o.badProof ? proof('nope', 'server', ch.nonce, ns, ch.name, o.name) : proof(o.secret, 'server', ch.nonce, ns, ch.name, o.name);
    }
    if (typeof ch.instance === 'string') ack.resume = crypto.randomBytes(32).toString('base64');
    this.send(T.HANDSHAKE, 4, json(ack), 0, E.JSON);
    return { hello: ch, step3 };
  }
}

/** A server of DocPeers. */
export function docServer(path: string, onPeer: (p: DocPeer) => void): Promise<net.Server> {
  return new Promise((resolve) => {
    const server = net.createServer((s) => onPeer(new DocPeer(s)));
    server.listen(path, () => resolve(server));
  });
}
