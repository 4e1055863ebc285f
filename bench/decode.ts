/**
 * Micro-benchmark of the frame decoder (not a test): MB/s for many small frames and for 16 MiB frames.
 * Run: npm run bench:decode
 */
import { cpus } from 'node:os';
import { FrameDecoder, encodeFrame, type Frame } from 'ipc-link-core';

function wire(frames: Frame[]): Buffer {
  return Buffer.concat(frames.flatMap((f) => encodeFrame(f)));
}

function chunked(bytes: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
  return chunks;
}

function measure(name: string, chunks: Buffer[], expectedFrames: number, rounds: number): void {
  const bytes = chunks.reduce((n, c) => n + c.length, 0);
  const results: number[] = [];
  for (let round = 0; round < rounds; round++) {
    let frames = 0;
    const decoder = new FrameDecoder(() => frames++, { maxFrameSize: 64 * 1024 * 1024 });
    const start = process.hrtime.bigint();
    for (const chunk of chunks) decoder.push(chunk);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (frames !== expectedFrames) throw new Error(`${name}: decoded ${frames} frames, expected ${expectedFrames}`);
    results.push(bytes / seconds / 1e6);
  }
  results.sort((a, b) => a - b);
  const median = results[Math.floor(results.length / 2)];
  console.log(`${name.padEnd(44)} ${median.toFixed(0).padStart(8)} MB/s  (median of ${rounds})`);
}

const small: Frame[] = Array.from({ length: 200_000 }, (_, i) => ({
  type: 1,
  flags: 0,
  id: i + 1,
  encoding: 2,
  payload: Buffer.alloc(64, 0x61),
}));
const smallWire = wire(small);
measure('200k x 64 B frames, 64 KiB chunks', chunked(smallWire, 65536), small.length, 9);
measure('200k x 64 B frames, 1 KiB chunks (split)', chunked(smallWire, 1000), small.length, 9);

const big: Frame[] = Array.from({ length: 4 }, (_, i) => ({
  type: 1,
  flags: 0,
  id: i + 1,
  encoding: 0,
  payload: Buffer.alloc(16 * 1024 * 1024, i),
}));
const bigWire = wire(big);
measure('4 x 16 MiB frames, 64 KiB chunks', chunked(bigWire, 65536), big.length, 7);
measure('4 x 16 MiB frames, one chunk each (views)', [bigWire], big.length, 7);
console.log(`node ${process.version}, ${cpus().length} cores`);
