import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { Encoding, FrameDecoder, FrameType, type Frame } from '../../src';
import { FrameWriter } from '../../src/internal';

/** A socket stand-in that records each write the writer's stream hands down (one per writev). */
function sink() {
  const writes: Buffer[] = [];
  const stream = new Writable({
    writev(chunks, callback) {
      writes.push(Buffer.concat(chunks.map((c) => c.chunk as Buffer)));
      callback();
    },
    write(chunk: Buffer, _encoding, callback) {
      writes.push(chunk);
      callback();
    },
  });
  return { socket: stream as unknown as Socket, writes };
}

const nextTick = () => new Promise((resolve) => process.nextTick(resolve));

function decode(writes: Buffer[]): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((frame) => frames.push(frame));
  for (const bytes of writes) decoder.push(bytes);
  return frames;
}

describe('FrameWriter', () => {
  const reply = Buffer.alloc(1000, 'x'); // 1,016 bytes with its header

  it('hands one tick of frames to the socket in one write', async () => {
    const { socket, writes } = sink();
    const writer = new FrameWriter(socket);
    for (let id = 0; id < 40; id++) writer.write(FrameType.REPLY, 0, id, Encoding.JSON, reply);
    expect(writes).toHaveLength(0);
    await nextTick();
    expect(writes).toHaveLength(1);
    expect(decode(writes).map((f) => f.id)).toEqual(Array.from({ length: 40 }, (_, id) => id));
  });

  it('sendEarly: frames leave in pieces of at least 16 KiB, in order, the rest when the tick ends', async () => {
    const { socket, writes } = sink();
    const writer = new FrameWriter(socket);
    for (let id = 0; id < 40; id++) {
      writer.write(FrameType.REPLY, 0, id, Encoding.JSON, reply);
      writer.sendEarly();
    }
    // 17 frames make 17,272 bytes ≥ 16 KiB: two pieces of 17 have left during the tick.
    expect(writes.map((w) => w.length)).toEqual([17 * 1016, 17 * 1016]);
    await nextTick();
    expect(writes.map((w) => w.length)).toEqual([17 * 1016, 17 * 1016, 6 * 1016]);
    const frames = decode(writes);
    expect(frames.map((f) => f.id)).toEqual(Array.from({ length: 40 }, (_, id) => id));
    expect(frames.every((f) => f.payload.equals(reply))).toBe(true);
  });

  it('sendEarly: below 16 KiB, or with nothing written this tick, nothing happens', async () => {
    const { socket, writes } = sink();
    const writer = new FrameWriter(socket);
    writer.sendEarly();
    for (let id = 0; id < 16; id++) {
      writer.write(FrameType.REPLY, 0, id, Encoding.JSON, reply);
      writer.sendEarly();
    }
    expect(writes).toHaveLength(0);
    await nextTick();
    expect(writes).toHaveLength(1);
    writer.sendEarly();
    await nextTick();
    expect(writes).toHaveLength(1);
  });

  it("sendEarly: a stream's own earlySend (a NATS link's 64 KiB) replaces 16 KiB, frames still in order", async () => {
    const { socket, writes } = sink();
    Object.defineProperty(socket, 'earlySend', { value: 64 * 1024 });
    const writer = new FrameWriter(socket);
    for (let id = 0; id < 150; id++) {
      writer.write(FrameType.REPLY, 0, id, Encoding.JSON, reply);
      writer.sendEarly();
    }
    // 65 frames make 66,040 bytes ≥ 64 KiB: two pieces of 65 have left during the tick (none at 16 KiB).
    expect(writes.map((w) => w.length)).toEqual([65 * 1016, 65 * 1016]);
    await nextTick();
    expect(writes.map((w) => w.length)).toEqual([65 * 1016, 65 * 1016, 20 * 1016]);
    const frames = decode(writes);
    expect(frames.map((f) => f.id)).toEqual(Array.from({ length: 150 }, (_, id) => id));
    expect(frames.every((f) => f.payload.equals(reply))).toBe(true);
  });

  it('sendEarly keeps Buffers uncopied and in order with packed frames', async () => {
    const { socket, writes } = sink();
    const writer = new FrameWriter(socket);
    const big = Buffer.alloc(20_000, 'b');
    writer.write(FrameType.MESSAGE, 0, 1, Encoding.STRING, Buffer.from('before'));
    writer.write(FrameType.MESSAGE, 0, 2, Encoding.BUFFER, big);
    writer.sendEarly();
    writer.write(FrameType.MESSAGE, 0, 3, Encoding.STRING, Buffer.from('after'));
    expect(writes).toHaveLength(1);
    await nextTick();
    const frames = decode(writes);
    expect(frames.map((f) => f.id)).toEqual([1, 2, 3]);
    expect(frames[1].payload.equals(big)).toBe(true);
  });

  it('a tick that reaches the high-water mark goes through the stream buffer: a stream that takes it at once still emits drain', async () => {
    // A stream whose writes complete synchronously (a NATS link): written straight, 16 KiB+ would return true and
    // never emit 'drain' for a sender that FrameWriter#write told to wait.
    const stream = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    const socket = stream as unknown as Socket;
    const writer = new FrameWriter(socket);
    let accepted = true;
    for (let id = 0; accepted; id++) accepted = writer.write(FrameType.MESSAGE, 0, id, Encoding.JSON, reply);
    const drained = new Promise((resolve) => stream.once('drain', resolve));
    await nextTick();
    await expect(drained).resolves.toBeUndefined();
  });

  it('a tick of small frames is one plain write: the socket is never corked', async () => {
    const { socket, writes } = sink();
    const cork = jest.spyOn(socket, 'cork');
    const writer = new FrameWriter(socket);
    writer.write(FrameType.MESSAGE, 0, 1, Encoding.STRING, Buffer.from('ping'));
    writer.write(FrameType.REPLY, 0, 2, Encoding.JSON, reply);
    expect(writes).toHaveLength(0);
    await nextTick();
    expect(cork).not.toHaveBeenCalled();
    expect(writes).toHaveLength(1);
    expect(decode(writes).map((f) => f.id)).toEqual([1, 2]);
  });

  it('a large payload corks the socket until the tick ends: packed frames, its header and it leave in one writev', async () => {
    const { socket, writes } = sink();
    const writer = new FrameWriter(socket);
    const big = Buffer.alloc(20_000, 'b');
    writer.write(FrameType.MESSAGE, 0, 1, Encoding.STRING, Buffer.from('before'));
    writer.write(FrameType.MESSAGE, 0, 2, Encoding.BUFFER, big);
    writer.write(FrameType.MESSAGE, 0, 3, Encoding.STRING, Buffer.from('after'));
    expect(socket.writableCorked).toBe(1);
    expect(writes).toHaveLength(0);
    await nextTick();
    expect(socket.writableCorked).toBe(0);
    expect(writes).toHaveLength(1);
    const frames = decode(writes);
    expect(frames.map((f) => f.id)).toEqual([1, 2, 3]);
    expect(frames[1].payload.equals(big)).toBe(true);
  });

  it('a full slab corks the socket: one tick of more than 64 KiB still leaves in one writev, in order', async () => {
    const { socket, writes } = sink();
    const writer = new FrameWriter(socket);
    for (let id = 0; id < 100; id++) writer.write(FrameType.REPLY, 0, id, Encoding.JSON, reply);
    expect(writes).toHaveLength(0);
    await nextTick();
    expect(writes).toHaveLength(1);
    expect(writes[0].length).toBe(100 * 1016);
    expect(decode(writes).map((f) => f.id)).toEqual(Array.from({ length: 100 }, (_, id) => id));
  });

  describe('text payloads (encoded straight into the slab)', () => {
    const texts = ['', 'plain ascii', 'é à ü — ∑ 日本語 🎉', 'x'.repeat(2730), '€'.repeat(2730)];

    it('arrive byte for byte as Buffer.from(text) would have sent them, with or without a window', async () => {
      const { socket, writes } = sink();
      const writer = new FrameWriter(socket);
      texts.forEach((text, id) => writer.write(FrameType.MESSAGE, 0, id, Encoding.STRING, text, id % 2 === 0 ? -1 : 7));
      await nextTick();
      const frames = decode(writes);
      expect(frames.map((f) => f.id)).toEqual(texts.map((_, id) => id));
      frames.forEach((frame, id) => {
        const payload = id % 2 === 0 ? frame.payload : frame.payload.subarray(4);
        if (id % 2 === 1) expect(frame.payload.readUInt32BE(0)).toBe(7);
        expect(payload.equals(Buffer.from(texts[id]))).toBe(true);
      });
      const bytes = texts.reduce((sum, text, id) => sum + 16 + (id % 2 === 0 ? 0 : 4) + Buffer.byteLength(text), 0);
      expect(writer.bytesOut).toBe(bytes);
      expect(writes.reduce((sum, w) => sum + w.length, 0)).toBe(bytes);
    });

    it('a text that does not fit what is left of the slab starts a new one, in order with the rest', async () => {
      const { socket, writes } = sink();
      const writer = new FrameWriter(socket);
      const wide = '€'.repeat(2730); // 8,190 bytes
      const sent: Buffer[] = [];
      for (let id = 0; id < 20; id++) {
        const payload = id % 3 === 0 ? reply : wide;
        writer.write(FrameType.REPLY, 0, id, Encoding.STRING, payload);
        sent.push(Buffer.from(payload));
      }
      await nextTick();
      const frames = decode(writes);
      expect(frames.map((f) => f.id)).toEqual(Array.from({ length: 20 }, (_, id) => id));
      frames.forEach((frame, id) => expect(frame.payload.equals(sent[id])).toBe(true));
    });

    it('on an in-memory link (immediate), text leaves as one fresh buffer at once', () => {
      const { socket, writes } = sink();
      const writer = new FrameWriter(socket, true);
      writer.write(FrameType.MESSAGE, 0, 1, Encoding.STRING, 'ünïcode');
      expect(writes).toHaveLength(1);
      expect(decode(writes)[0].payload.toString()).toBe('ünïcode');
    });
  });
});
