import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Observable } from 'rxjs';
import { createLinkPair, Node, type NodeMessage, type NodeOptions } from '../../src';

/** Nodes created by a test, closed by {@link closeAll}. */
const created: Node[] = [];

/** A node whose errors are collected instead of thrown; closed after the test by closeAll(). */
export function node(name: string, options: NodeOptions = {}): Node & { errors: Error[] } {
  const n = Object.assign(new Node(name, { maxRetries: 0, retryTime: 20, ...options }), { errors: [] as Error[] });
  n.on('error', (error) => n.errors.push(error));
  created.push(n);
  return n;
}

export async function closeAll(): Promise<void> {
  await Promise.all(created.splice(0).map((n) => n.close()));
}

/** Serves on a free TCP port of 127.0.0.1 and resolves with the port. */
export async function serveTcp(n: Node, label = n.name): Promise<number> {
  n.serve(label, 0, '127.0.0.1');
  await once(n, 'listening');
  return (n.server!.address() as AddressInfo).port;
}

const tempDirs: string[] = [];

/** A fresh Unix socket path in a temporary folder (removed at exit). */
export function socketPath(name = 'ipc.sock'): string {
  const dir = mkdtempSync(join(tmpdir(), 'ipc-link-core-'));
  if (tempDirs.push(dir) === 1) process.once('exit', () => tempDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  return join(dir, name);
}

/** Leaves a stale Unix socket file at `path`: a server process that dies (SIGKILL) without removing it. */
export async function staleSocket(path: string): Promise<void> {
  const code = `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`;
  await once(spawn(process.execPath, ['-e', code]), 'exit');
}

/** Resolves after `ms` milliseconds. */
/**
 * A value as compared: a Buffer or typed array as its class name and hex, anything else as it is. jest's toEqual
 * walks bytes one element at a time (a few hundred KB of Buffers took seconds); this compares the same things.
 */
export function bytesAsHex(value: unknown): unknown {
  return value instanceof Uint8Array ? `${value.constructor.name} ${Buffer.from(value.buffer, value.byteOffset, value.length).toString('hex')}` : value;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until `check()` is true, polling, or fails after `ms`. */
export async function until(check: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await delay(5);
  }
}

export { freePort } from '../../bench/freePort';

/** How a spec links two nodes: TCP on 127.0.0.1, or an in-memory `createLinkPair()` link. */
export type Transport = 'tcp' | 'link';

/** Connects `client` to `server` (serving it first over TCP, or linking them in memory). */
export async function link(server: Node, client: Node, transport: Transport): Promise<void> {
  if (transport === 'link') {
    const [a, b] = createLinkPair();
    server.acceptVia(a);
    await client.connectVia(server.name, b);
  } else {
    await client.connectTo(server.name, await serveTcp(server), '127.0.0.1');
  }
}

/** A hub and a client linked over `transport`, both without heartbeat; `options` are the client's. */
export async function quietPair(transport: Transport, options: NodeOptions = {}): Promise<{ hub: Node & { errors: Error[] }; client: Node & { errors: Error[] } }> {
  const hub = node('hub', { heartbeatInterval: 0 });
  const client = node('client', { heartbeatInterval: 0, ...options });
  await link(hub, client, transport);
  return { hub, client };
}

/** Every value of `source` and how it ended (the error's code, if it failed). */
export function outcome(source: Observable<unknown>): Promise<{ values: unknown[]; code?: string }> {
  const values: unknown[] = [];
  return new Promise((resolve) =>
    source.subscribe({
      next: (v) => values.push(v),
      error: (e: { code?: string }) => resolve({ values, code: e.code }),
      complete: () => resolve({ values }),
    }),
  );
}

/**
 * A TCP proxy whose current connections can be frozen: from then on nothing crosses them, not even a close — as
 * a network that silently dropped the path — or dropped (both ends destroyed: a disconnect). It keeps listening:
 * new connections are forwarded as usual.
 */
export async function freezableProxy(port: number): Promise<{ port: number; freeze(): void; drop(): void; close(): Promise<void> }> {
  const pairs: Array<{ client: Socket; upstream: Socket; frozen: boolean }> = [];
  const server: Server = createServer((client) => {
    const pair = { client, upstream: createConnection(port, '127.0.0.1'), frozen: false };
    pairs.push(pair);
    const forward = (from: Socket, to: Socket) => {
      from.on('data', (chunk) => {
        if (!pair.frozen) to.write(chunk);
      });
      from.on('close', () => {
        if (!pair.frozen) to.destroy();
      });
      from.on('error', () => undefined);
    };
    forward(client, pair.upstream);
    forward(pair.upstream, client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    freeze: () => pairs.forEach((pair) => (pair.frozen = true)),
    drop: () => pairs.splice(0).forEach(({ client, upstream }) => (client.destroy(), upstream.destroy())),
    close: async () => {
      pairs.splice(0).forEach(({ client, upstream }) => (client.destroy(), upstream.destroy()));
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A responder streaming `count` numbers from a generator, counting what it produced and whether it finished. */
export function counting(count = Infinity) {
  const state = { produced: 0, finished: false };
  const handle = (m: NodeMessage) =>
    m.stream(
      (async function* () {
        try {
          for (let i = 0; i < count; i++) {
            state.produced++;
            yield i;
          }
        } finally {
          state.finished = true;
        }
      })(),
    );
  return { state, handle };
}
