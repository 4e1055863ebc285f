// Nodes over the NATS transport, for the specs in spec/nats (real nats-server processes: see natsServer.ts).
import { once } from 'node:events';
import type { NodeOptions } from '../../src';
import { natsTransport, type NatsTransportOptions } from '../../src/nats';
import { node } from './net';

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
