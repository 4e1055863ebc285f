/**
 * `ipc-link-core/nats`: the same `Node` over a NATS cluster. Needs the optional peer dependency
 * `@nats-io/transport-node`.
 *
 * @example
 * const worker = new Node('worker', { transport: natsTransport({ servers: 'nats://127.0.0.1:4222' }) });
 * worker.on('message', (m) => m.reply(work(m.data)));
 * worker.serve('worker');
 */
export { natsTransport, type NatsTransportOptions } from './natsTransport';
export type { NodeTransport, TransportNode, TransportSession, Discovery } from '../node/NodeTransport';
