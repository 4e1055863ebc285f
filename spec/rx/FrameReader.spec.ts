import { once } from 'node:events';
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
