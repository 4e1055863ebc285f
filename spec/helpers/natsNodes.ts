// Nodes over the NATS transport, for the specs in spec/nats (real nats-server processes: see natsServer.ts).
import { once } from 'node:events';
import type { NodeOptions } from '../../src';
import { natsTransport, type NatsTransportOptions } from '../../src/nats';
import { delay, node } from './net';
import type { NatsServer } from './natsServer';

/** A node (errors collected, closed by closeAll) over its own NATS transport to `servers`. */
export function natsNode(name: string, servers: string | string[], options: NodeOptions = {}, transport: Partial<NatsTransportOptions> = {}) {
  return node(name, { transport: natsTransport({ servers, ...transport } as NatsTransportOptions), ...options });
}

/** A node serving its name over NATS, once it is reachable. */
export async function serving(name: string, servers: string | string[], options: NodeOptions = {}, transport: Partial<NatsTransportOptions> = {}) {
  const n = natsNode(name, servers, options, transport);
  n.serve(name);
  await once(n, 'listening');
  return n;
}

/** `promise`, or a rejection saying it is still pending after `ms` (a generous bound: a hang, not a slow run). */
export function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)));
  return Promise.race([promise, pending]).finally(() => clearTimeout(timer));
}

/** `body` as a JSON message payload. */
export const json = (body: unknown) => Buffer.from(JSON.stringify(body));

/** Our subscriptions (`<prefix>…`) on `server`. */
export async function ours(server: NatsServer, prefix = 'ipc.'): Promise<string[]> {
  return (await server.clientSubscriptions()).map((s) => s.subject).filter((subject) => subject.startsWith(prefix));
}

/**
 * Expects none of our subscriptions left on `server`, waiting up to `ms` for it: the server drops a closed
 * connection's subscriptions once it has seen the connection go, a moment after `close()` resolved.
 */
export async function expectNoneOfOurs(server: NatsServer, prefix = 'ipc.', ms = 2000): Promise<void> {
  const deadline = performance.now() + ms;
  let left = await ours(server, prefix);
  while (left.length > 0 && performance.now() < deadline) {
    await delay(20);
    left = await ours(server, prefix);
  }
  expect(left).toEqual([]);
}
