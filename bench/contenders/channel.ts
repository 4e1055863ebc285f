/**
 * What users pick instead of an IPC library on one machine: Node's own channels between a process and its forked
 * child (`child_process.fork` + `process.send`) or its worker thread (`postMessage`). Shared by the fork-json,
 * fork-advanced and worker-thread contenders.
 *
 * The bench spawns a server and a client process per run; here the client process starts its own peer (a forked
 * child, or a worker thread) that runs the same `serverHandlers` logic (channel-peer.ts), and the spawned server
 * does nothing. What a careful user would write, nothing more: requests are `[id, data]` (id ≥ 1) answered with
 * `[id, reply]` and matched in a Map; one-way messages are `[0, data]`. No timeouts, no checks.
 */
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Address, BenchClient, Contender } from '../types';

/** A message on the channel: `[id, data]`; id 0 is a one-way message. */
export type ChannelMessage = [id: number, data: unknown];

export type ChannelKind = { via: 'fork'; serialization: 'json' | 'advanced' } | { via: 'worker' };

/** The peer's entry point (compiled next to this file). */
export const PEER = join(__dirname, 'channel-peer.js');

/**
 * Structured clone (worker, advanced serialization) delivers a Buffer as a Uint8Array; JSON as
 * `{ type: 'Buffer', data: [...] }`.
 */
export function asBuffer(data: unknown): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.length);
  const json = data as { type?: string; data?: number[] };
  if (json && json.type === 'Buffer' && Array.isArray(json.data)) return Buffer.from(json.data);
  throw new TypeError('not a Buffer');
}

/** The two ends of a channel as the client sees them. */
interface Channel {
  post(message: ChannelMessage): void;
  /** Resolves once everything posted so far was handed over (the channel's own flow control, where it has one). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

function forkChannel(serialization: 'json' | 'advanced', onMessage: (message: ChannelMessage) => void): Promise<Channel> {
  const child = fork(PEER, ['fork'], { serialization, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.on('message', onMessage as (message: unknown) => void);
  // `send`'s callback is the flow control `process.send` offers: one shared function, a count of messages
  // not yet handed to the pipe.
  let unsent = 0;
  let drained: (() => void) | null = null;
  const sent = () => {
    if (--unsent === 0 && drained) {
      const resolve = drained;
      drained = null;
      resolve();
    }
  };
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', () =>
      resolve({
        post(message) {
          unsent++;
          child.send(message, sent);
        },
        flush: () => (unsent === 0 ? Promise.resolve() : new Promise<void>((r) => (drained = r))),
        async close() {
          child.kill();
        },
      }),
    );
  });
}

function workerChannel(onMessage: (message: ChannelMessage) => void): Promise<Channel> {
  const worker = new Worker(PEER, { argv: ['worker'] });
  worker.on('message', onMessage);
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('online', () =>
      resolve({
        post: (message) => worker.postMessage(message),
        // postMessage queues without limit and has no flow control.
        flush: () => Promise.resolve(),
        close: () => worker.terminate().then(() => undefined),
      }),
    );
  });
}

/** A contender talking to its own forked child or worker thread; the spawned bench server is left idle. */
export function channelContender(name: string, kind: ChannelKind, skip: Record<string, string>): Contender {
  return {
    name,
    asBuffer,
    skip: { 'stream-small': 'no streamed replies', ...skip },
    server: () => ({
      // The peer is started by the client process: this server only says where it "listens".
      listen: async (address: Address) => address,
    }),
    async client(): Promise<BenchClient> {
      const pending = new Map<number, (value: unknown) => void>();
      let nextId = 0;
      const onMessage = ([id, data]: ChannelMessage) => {
        const resolve = pending.get(id)!;
        pending.delete(id);
        resolve(data);
      };
      const channel = kind.via === 'fork' ? await forkChannel(kind.serialization, onMessage) : await workerChannel(onMessage);
      return {
        request(data) {
          nextId = nextId === 0x7fffffff ? 1 : nextId + 1;
          const id = nextId;
          return new Promise((resolve) => {
            pending.set(id, resolve);
            channel.post([id, data]);
          });
        },
        send(data) {
          channel.post([0, data]);
        },
        flush: () => channel.flush(),
        close: () => channel.close(),
      };
    },
  };
}
