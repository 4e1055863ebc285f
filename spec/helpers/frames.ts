import { encodeFrame, IpcError, ProtocolError, type Frame } from '../../src';

/** A frame with sensible defaults for tests. */
export function frame(overrides: Partial<Frame> = {}): Frame {
  return { type: 0x01, flags: 0, id: 1, encoding: 0, payload: Buffer.alloc(0), ...overrides };
}

/** The wire bytes of one or more frames, as one buffer. */
export function wire(...frames: Frame[]): Buffer {
  return Buffer.concat(frames.flatMap((f) => encodeFrame(f)));
}

/** Cuts `bytes` at the given offsets. */
export function cut(bytes: Buffer, offsets: number[]): Buffer[] {
  const points = [0, ...offsets.filter((o) => o > 0 && o < bytes.length).sort((a, b) => a - b), bytes.length];
  const chunks: Buffer[] = [];
  for (let i = 1; i < points.length; i++) if (points[i] > points[i - 1]) chunks.push(bytes.subarray(points[i - 1], points[i]));
  return chunks;
}

/** Compares frames by value (payload bytes, not identity). */
export function plain(f: Frame): object {
  return { type: f.type, flags: f.flags, id: f.id, encoding: f.encoding, payload: Buffer.from(f.payload).toString('hex') };
}

/** The error of class `type` (default ProtocolError) `fn` throws (fails the test when it throws nothing, or something else). */
export function thrown(fn: () => void, type: new (...args: never[]) => IpcError = ProtocolError): IpcError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(type);
    return error as IpcError;
  }
  throw new Error(`expected a ${type.name}`);
}
