import type { Socket } from 'node:net';
import { encodeHeader } from '../protocol/FrameEncoder';

/**
 * The one place frames are written. Header and payload go out as two buffers (the payload is never copied);
 * the socket is corked on the first write of a tick and uncorked on the next tick, so every frame written in
 * the same tick leaves in one `writev` system call.
 */
export class FrameWriter {
  private corked = false;
  private readonly uncork = () => {
    this.corked = false;
    this.socket.uncork();
  };

  constructor(private readonly socket: Socket) {}

  /**
   * Writes one frame. `callback` runs once the frame has been handed to the kernel (with an error when the
   * socket died first). Returns false when the socket's buffer is above its high-water mark.
   */
  write(
    type: number,
    flags: number,
    id: number,
    encoding: number,
    payload: Uint8Array,
    callback?: (error?: Error | null) => void,
  ): boolean {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    const header = encodeHeader(type, flags, id, encoding, payload.length);
    if (payload.length === 0) return this.socket.write(header, callback);
    this.socket.write(header);
    return this.socket.write(payload, callback);
  }
}
