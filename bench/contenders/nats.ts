/**
 * The NATS anchor (issue 14): raw nats.js through one local nats-server that run.ts starts for each run (address
 * `{ nats: url }`). Requests are `nc.request` (the client's shared reply-inbox subscription, `noAsyncTraces: true`
 * as the issue asks of us too), one-way messages `nc.publish`, and `flush()` is `nc.flush()` — a PING/PONG round
 * trip to the server, nats.js's only backpressure. Payloads are what a careful user would send: strings as UTF-8,
 * Buffers as they are (never copied), anything else as JSON; the kind rides in the subject (`bench.req.s|b|j`,
 * `bench.msg.s|b|j`) and, on a reply, in one leading byte.
 *
 * The server runs with nats-server's default `max_payload` (1 MiB): the bulk row's messages are exactly
 * 1,048,576 bytes, which the limit admits (nats.js throws only for a payload *over* it); the 16 MiB echo is over it
 * and not run — raw NATS has no chunking, and raising `max_payload` to 16 MiB is outside what nats-server
 * recommends (8 MiB max), so it would not measure NATS as deployed.
 */
import { once } from 'node:events';
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { Node } from 'ipc-link-core';
import { natsTransport } from 'ipc-link-core/nats';
import type { Address, BenchClient, Contender, ServerHandlers } from '../types';
import { benchClient, handleBench } from './ipc-link-core';

const KIND_STRING = 0x73; // 's'
const KIND_BUFFER = 0x62; // 'b'
const KIND_JSON = 0x6a; // 'j'
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function natsUrl(address: Address): string {
  if (!('nats' in address)) throw new TypeError('nats-raw runs on the NATS transports only (--transports nats or nats-cluster)');
  return address.nats;
}

function connectTo(address: Address, name: string): Promise<NatsConnection> {
  // No reconnect: a bench run that loses its server fails instead of measuring a reconnection.
  return connect({ servers: natsUrl(address), name, noAsyncTraces: true, maxReconnectAttempts: 0 });
}

function kindOf(value: unknown): number {
  return typeof value === 'string' ? KIND_STRING : Buffer.isBuffer(value) ? KIND_BUFFER : KIND_JSON;
}

/** A value as a NATS payload of its kind (a Buffer is passed as it is). */
function payload(kind: number, value: unknown): Uint8Array | string {
  if (kind === KIND_BUFFER) return value as Buffer;
  return kind === KIND_STRING ? (value as string) : JSON.stringify(value);
}

function decode(kind: number, data: Uint8Array): unknown {
  if (kind === KIND_BUFFER) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const text = decoder.decode(data);
  return kind === KIND_STRING ? text : JSON.parse(text);
}

/** A reply: its kind in one leading byte, then the payload (one copy, as nats.js's own string encoding makes). */
function encodeReply(value: unknown): Uint8Array {
  const kind = kindOf(value);
  if (kind === KIND_BUFFER) {
    const buffer = value as Buffer;
    const out = new Uint8Array(1 + buffer.length);
    out[0] = kind;
    out.set(buffer, 1);
    return out;
  }
  const text = kind === KIND_STRING ? (value as string) : JSON.stringify(value);
  const out = new Uint8Array(1 + Buffer.byteLength(text));
  out[0] = kind;
  encoder.encodeInto(text, out.subarray(1));
  return out;
}

const subject = (base: 'req' | 'msg', kind: number) => `bench.${base}.${String.fromCharCode(kind)}`;

export const natsRaw: Contender = {
  name: 'nats-raw',
  transports: ['nats', 'nats-cluster'],
  skip: {
    'stream-small': 'no streamed replies in core NATS (a measuring stick for request/reply and publish)',
    'echo-16mib': 'over max_payload (1 MiB): raw NATS has no chunking',
  },
  server: () => ({
    async listen(address: Address, handlers: ServerHandlers) {
      const nc = await connectTo(address, 'bench-server');
      for (const kind of [KIND_STRING, KIND_BUFFER, KIND_JSON]) {
        nc.subscribe(subject('req', kind), { callback: (_error, m: Msg) => void m.respond(encodeReply(handlers.request(decode(kind, m.data)))) });
        nc.subscribe(subject('msg', kind), { callback: (_error, m: Msg) => handlers.message(decode(kind, m.data)) });
      }
      await nc.flush(); // the server has our subscriptions: a client may start at once
      return address;
    },
  }),
  async client(address: Address): Promise<BenchClient> {
    const nc = await connectTo(address, 'bench-client');
    return {
      async request(data) {
        const kind = kindOf(data);
        const reply = await nc.request(subject('req', kind), payload(kind, data), { timeout: 60_000 });
        return decode(reply.data[0], reply.data.subarray(1));
      },
      send(data) {
        const kind = kindOf(data);
        nc.publish(subject('msg', kind), payload(kind, data));
      },
      flush: () => nc.flush(),
      close: () => nc.close(),
    };
  },
};

// ─── ipc-link-core over NATS (issue 14): the same Node, with natsTransport; measured against nats-raw ─────────────

/** The server node: one instance of the service "bench-server" (over NATS a node serves under its own name). */
export const ipcLinkCoreNats: Contender = {
  name: 'ipc-link-core-nats',
  transports: ['nats', 'nats-cluster'],
  skip: { 'echo-16mib': 'as nats-raw (the NATS rows compare with raw nats.js)' },
  server: () => ({
    async listen(address: Address, handlers: ServerHandlers) {
      const node = new Node('bench-server', { requestTimeout: Infinity, transport: natsTransport({ servers: natsUrl(address) }) });
      handleBench(node, handlers);
      node.serve('bench-server');
      await once(node, 'listening');
      return address;
    },
  }),
  async client(address: Address): Promise<BenchClient> {
    const node = new Node('bench-client', { maxRetries: 0, requestTimeout: 60_000, transport: natsTransport({ servers: natsUrl(address) }) });
    return benchClient(node, await node.connectTo('bench-server'));
  },
};
