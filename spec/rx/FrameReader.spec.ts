import { EventEmitter, once } from 'node:events';
import * as net from 'node:net';
import { firstValueFrom, toArray } from 'rxjs';
import { ErrorCode, FrameReader, ProtocolError, type Frame } from '../../src';
import { frame, plain, wire } from '../helpers/frames';

/** A server that writes `bytes` to whoever connects (cut in `pieces`, one per tick), then ends. */
async function sender(bytes: Buffer, pieces = 1): Promise<{ port: number; server: net.Server }> {
  const server = net.createServer(async (socket) => {
    const size = Math.ceil(bytes.length / pieces);
    for (let at = 0; at < bytes.length; at += size) {
      socket.write(bytes.subarray(at, at + size));
      await new Promise((resolve) => setImmediate(resolve));
    }
    socket.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, server };
}

describe('FrameReader (a net socket read straight into frames)', () => {
  const servers: net.Server[] = [];
  afterEach(() => servers.splice(0).forEach((s) => s.close()));

  it('delivers small and large frames in order, reports every byte, and completes when the socket closes', async () => {
    const frames = [
      frame({ id: 1, payload: Buffer.from('small') }),
      frame({ id: 2, payload: Buffer.alloc(3 * 1024 * 1024, 0x5a) }),
      frame({ id: 3, encoding: 2, payload: Buffer.from('after the large one') }),
      frame({ id: 4, payload: Buffer.alloc(70_000, 0x11) }),
    ];
    const bytes = wire(...frames);
    const { port, server } = await sender(bytes, 7);
    servers.push(server);
    const reader = new FrameReader();
    const socket = net.connect({ port, host: '127.0.0.1', onread: reader.onread });
    const chunks: Buffer[] = [];
    const received = await firstValueFrom(reader.frames(socket, {}, (chunk) => chunks.push(Buffer.from(chunk))).pipe(toArray()));
    expect(received.map(plain)).toEqual(frames.map(plain));
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
  });

  it("decodes 'data' chunks when the socket ignores onread (a socket created without it)", async () => {
    const frames = [frame({ id: 1, payload: Buffer.from('one') }), frame({ id: 2, payload: Buffer.alloc(200_000, 3) })];
    const { port, server } = await sender(wire(...frames), 5);
    servers.push(server);
    const reader = new FrameReader();
    const socket = net.connect(port, '127.0.0.1');
    const received = await firstValueFrom(reader.frames(socket).pipe(toArray()));
    expect(received.map(plain)).toEqual(frames.map(plain));
  });

  it('errors with ERR_IPC_FRAME_TOO_LARGE from the limit it was given', async () => {
    const { port, server } = await sender(wire(frame({ payload: Buffer.alloc(2000) })));
    servers.push(server);
    const reader = new FrameReader();
    const socket = net.connect({ port, host: '127.0.0.1', onread: reader.onread });
    const error = await firstValueFrom(reader.frames(socket, { maxFrameSize: () => 1000 })).catch((e: unknown) => e);
    socket.destroy();
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).code).toBe(ErrorCode.FRAME_TOO_LARGE);
  });

  it('errors with ERR_IPC_PROTOCOL when the socket closes inside a frame', async () => {
    const bytes = wire(frame({ payload: Buffer.alloc(100_000) }));
    const { port, server } = await sender(bytes.subarray(0, 50_000));
    servers.push(server);
    const reader = new FrameReader();
    const socket = net.connect({ port, host: '127.0.0.1', onread: reader.onread });
    const seen: Frame[] = [];
    const error = await new Promise((resolve) => reader.frames(socket).subscribe({ next: (f) => seen.push(f), error: resolve }));
    expect(seen).toHaveLength(0);
    expect((error as ProtocolError).code).toBe(ErrorCode.PEER_DISCONNECTED);
  });
});

describe('FrameReader: the read buffer every reader of the process shares', () => {
  /** `count` frames of 1 KiB (header included) with ids from `first` on, payloads filled with `fill`. */
  const kib = (first: number, count: number, fill: number) => wire(...Array.from({ length: count }, (_, i) => frame({ id: first + i, payload: Buffer.alloc(1024 - 16, fill) })));

  it("a read that lands in it while another is copied out fails that other connection, never hands it the new read's bytes", () => {
    const a = new FrameReader();
    const b = new FrameReader();
    const scratch = a.onread.buffer as Buffer;
    expect(b.onread.buffer).toBe(scratch);
    const ofA: Array<{ id: number; fill: number[] }> = [];
    const ofB: number[] = [];
    let errorOfA: unknown = null;
    const fills = (f: Frame) => [...new Set(f.payload)];
    // B's read arrives (as if re-entered) while A's frame 50 is handled: A's read still had 6 frames to copy out.
    a.frames(new EventEmitter()).subscribe({
      next: (f) => {
        ofA.push({ id: f.id, fill: fills(f) });
        if (f.id !== 50) return;
        const ofTheOther = kib(100, 20, 0xbb);
        ofTheOther.copy(scratch);
        b.onread.callback(ofTheOther.length, scratch);
      },
      error: (error: unknown) => (errorOfA = error),
    });
    b.frames(new EventEmitter()).subscribe((f) => ofB.push(f.id));
    // 50 KiB first: the decoder's slab then has 14 KiB of room, so A's next read of 20 KiB is copied in two parts.
    for (const read of [kib(0, 50, 0xaa), kib(50, 20, 0xaa)]) {
      read.copy(scratch);
      a.onread.callback(read.length, scratch);
    }
    expect(ofB).toEqual(Array.from({ length: 20 }, (_, i) => 100 + i));
    // A got its own frames up to the part copied before B's read, then an error: never B's frames as its own.
    expect(ofA.map((f) => f.id)).toEqual(Array.from({ length: 64 }, (_, i) => i));
    expect(ofA.every((f) => f.fill.length === 1 && f.fill[0] === 0xaa)).toBe(true);
    expect(errorOfA).toBeInstanceOf(ProtocolError);
    expect(errorOfA).toMatchObject({ code: ErrorCode.PROTOCOL, message: expect.stringMatching(/overwrote the rest of this read/) });
  });
});
