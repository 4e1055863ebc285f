import { connect, type Socket } from 'node:net';
import { DEFAULT_MAX_FRAME_SIZE, encodeFrame, FrameType, PROTOCOL_NAME, PROTOCOL_VERSION, type Frame } from '../../src';
import { jsonFrame } from '../../src/internal';

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
