/**
 * The floor any framing library pays at least: bare node:net, a 4-byte length prefix, linear reassembly (a list
 * of chunks, one copy per frame that spans chunks), a Map for reply matching, and per-tick write coalescing
 * (cork on the first write of a tick, uncork on the next tick). Strings as UTF-8 and objects as JSON, each written
 * behind its header in one buffer; Buffers raw, never copied.
 * No timeouts, no handshake, no error handling: it is a measuring stick, not a library.
 */
import * as net from 'node:net';
import { connectArgs, type Address, type BenchClient, type Contender, type ServerHandlers } from '../types';

const REQUEST = 1;
const REPLY = 2;
const ONE_WAY = 3;
const KIND_BUFFER = 0;
const KIND_STRING = 1;
const KIND_JSON = 2;
/** length (u32, of what follows) | type (u8) | kind (u8) | id (u32) */
const HEADER = 10;

function decode(kind: number, payload: Buffer): unknown {
  if (kind === KIND_BUFFER) return payload;
  if (kind === KIND_STRING) return payload.toString();
  return JSON.parse(payload.toString());
}

class Wire {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private corked = false;

  constructor(
    readonly socket: net.Socket,
    onFrame: (type: number, kind: number, id: number, payload: Buffer) => void,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      while (this.buffered >= 4) {
        const length = this.peekLength();
        if (this.buffered < 4 + length) break;
        const frame = this.take(4 + length);
        onFrame(frame[4], frame[5], frame.readUInt32BE(6), frame.subarray(HEADER));
      }
    });
  }

  write(type: number, id: number, value: unknown): boolean {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    if (Buffer.isBuffer(value)) {
      // Zero-copy: the header, then the Buffer itself.
      this.socket.write(this.header(type, KIND_BUFFER, id, value.length, Buffer.allocUnsafe(HEADER)));
      return this.socket.write(value);
    }
    // Strings and JSON are written straight behind their header: one buffer, one write per frame.
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    const kind = typeof value === 'string' ? KIND_STRING : KIND_JSON;
    const frame = Buffer.allocUnsafe(HEADER + Buffer.byteLength(text));
    frame.write(text, HEADER);
    return this.socket.write(this.header(type, kind, id, frame.length - HEADER, frame));
  }

  private header(type: number, kind: number, id: number, length: number, target: Buffer): Buffer {
    target.writeUInt32BE(HEADER - 4 + length, 0);
    target[4] = type;
    target[5] = kind;
    target.writeUInt32BE(id, 6);
    return target;
  }

  private peekLength(): number {
    const first = this.chunks[0];
    if (first.length >= 4) return first.readUInt32BE(0);
    return this.take(4, true).readUInt32BE(0);
  }

  /** The next `n` bytes: a view when they lie in the first chunk, else one copy. */
  private take(n: number, peek = false): Buffer {
    const first = this.chunks[0];
    if (first.length >= n) {
      if (!peek) {
        if (first.length === n) this.chunks.shift();
        else this.chunks[0] = first.subarray(n);
        this.buffered -= n;
      }
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    let i = 0;
    while (at < n) {
      const chunk = this.chunks[i++];
      const used = Math.min(chunk.length, n - at);
      chunk.copy(out, at, 0, used);
      at += used;
    }
    if (!peek) {
      this.buffered -= n;
      let left = n;
      while (left > 0) {
        const chunk = this.chunks[0];
        if (chunk.length <= left) {
          left -= chunk.length;
          this.chunks.shift();
        } else {
          this.chunks[0] = chunk.subarray(left);
          left = 0;
        }
      }
    }
    return out;
  }
}

export const baseline: Contender = {
  name: 'baseline',
  skip: { 'stream-small': 'no streamed replies (a measuring stick for request/reply)' },
  server: () => ({
    listen(address: Address, handlers: ServerHandlers) {
      const server = net.createServer((socket) => {
        const wire = new Wire(socket, (type, kind, id, payload) => {
          const data = decode(kind, payload);
          if (type === REQUEST) wire.write(REPLY, id, handlers.request(data));
          else handlers.message(data);
        });
      });
      return new Promise<Address>((resolve) => {
        const args = connectArgs(address);
        server.listen(...(args as [number, string]), () => {
          const bound = server.address();
          resolve(typeof bound === 'string' ? { path: bound } : { port: bound!.port, host: '127.0.0.1' });
        });
      });
    },
  }),
  async client(address: Address): Promise<BenchClient> {
    const socket = net.connect(...(connectArgs(address) as [number, string]));
    await new Promise((resolve) => socket.once('connect', resolve));
    const pending = new Map<number, (value: unknown) => void>();
    let nextId = 0;
    const wire = new Wire(socket, (_type, kind, id, payload) => {
      const resolve = pending.get(id)!;
      pending.delete(id);
      resolve(decode(kind, payload));
    });
    return {
      request(data) {
        const id = (nextId = (nextId + 1) >>> 0);
        return new Promise((resolve) => {
          pending.set(id, resolve);
          wire.write(REQUEST, id, data);
        });
      },
      send(data) {
        wire.write(ONE_WAY, 0, data);
      },
      flush() {
        return socket.writableNeedDrain ? new Promise((resolve) => socket.once('drain', resolve)) : Promise.resolve();
      },
      async close() {
        socket.end();
      },
    };
  },
};
