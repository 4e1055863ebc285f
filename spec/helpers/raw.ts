import { connect, type Socket } from 'node:net';
import { DEFAULT_MAX_FRAME_SIZE, encodeFrame, FrameDecoder, FrameType, PROTOCOL_NAME, PROTOCOL_VERSION, type Frame, type NodeMessage, type NodeOptions, type NodeSocket } from '../../src';
import { jsonFrame } from '../../src/internal';
import { node, serveTcp, until } from './net';

/** A plain TCP client that reads (and discards) what it receives, so it sees the server's FIN. */
export function rawClient(port: number): Socket {
  return connect(port, '127.0.0.1').on('error', () => undefined).resume();
}

export function bytes(frame: Omit<Frame, 'payload'> & { payload: Uint8Array }): Buffer {
  return Buffer.concat(encodeFrame(frame));
}

/** The client's side of a complete handshake (hello then ack), as bytes: a valid start for hostile input. */
export function handshakeBytes(name: string): Buffer {
  return Buffer.concat([
    bytes(jsonFrame(FrameType.HANDSHAKE, 1, { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name, maxFrameSize: DEFAULT_MAX_FRAME_SIZE })),
    bytes(jsonFrame(FrameType.HANDSHAKE, 3, {})),
  ]);
}

/** Resolves when the socket is closed (by the other side). */
export function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));
}

/** A hub answering with `handle`, a raw client that did the handshake as `name`, and the frames it got. */
export async function rawPeer(handle: (m: NodeMessage) => void, options: NodeOptions = {}, name = 'raw') {
  const server = node('hub', { heartbeatInterval: 0, ...options });
  server.on('message', handle);
  const port = await serveTcp(server);
  const raw = rawClient(port);
  const received: Frame[] = [];
  const decoder = new FrameDecoder((f) => received.push(f));
  raw.on('data', (chunk: Buffer) => decoder.push(chunk));
  raw.write(handshakeBytes(name));
  await until(() => server.get(name) !== undefined);
  return { server, port, raw, received, peer: server.get(name) as NodeSocket };
}
