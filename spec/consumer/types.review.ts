// Type-level checks of the published typings (dist), compiled by spec/surface.spec.ts with spec/consumer/consumer.ts:
// a call the runtime refuses is marked `// @ts-expect-error` (the file fails to compile if the typings accept it),
// a call that works is written plainly (it fails to compile if the typings refuse it). Never run.
import type { NatsConnection } from '@nats-io/transport-node';
import {
  ErrorCode,
  IpcError,
  Node,
  NodeMessage,
  NodeSocket,
  type BroadcastOutcome,
  type IterateOptions,
  type NodeOptions,
  type TlsSettings,
} from 'ipc-link-core';
import { natsTransport, type NatsTransportOptions } from 'ipc-link-core/nats';
import type { Observable } from 'rxjs';

/** True when A and B are the same type (not merely assignable). */
type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;

export async function types(node: Node, socket: NodeSocket, nc: NatsConnection): Promise<void> {
  // NodeSocket and NodeMessage are made by the node only: their constructors are not part of the API (a hand-made
  // one has no node behind it). With the constructor stripped as internal, the typings declared an implicit public
  // `new NodeSocket()`.
  // @ts-expect-error private constructor
  new NodeSocket();
  // @ts-expect-error private constructor
  new NodeMessage();
  const isSocket: boolean = (socket as unknown) instanceof NodeSocket;

  // The type of NodeOptions.tls can be named (it was used in NodeOptions but not exported).
  const tls: TlsSettings = { ca: 'PEM', requestCert: true, servername: 'svc' };
  const options: NodeOptions = { tls, heartbeatInterval: Infinity, maxRetryTime: Infinity, requestTimeout: Infinity };
  void options;

  // A one-way send resolves with undefined, and its type says so; a receptive one resolves with the reply.
  // (No annotation on the variable: from one, `sendTo<T>` would infer T and prove nothing.)
  const oneWay = await node.sendTo('peer', 'x', { receptive: false });
  const oneWayBySocket = await socket.send('x', { receptive: false, timeout: 10 });
  const oneWayIsUndefined: [Equal<typeof oneWay, undefined>, Equal<typeof oneWayBySocket, undefined>] = [true, true];
  void oneWayIsUndefined;
  const reply: string = await node.sendTo<string>('peer', 'x');
  const replyBySocket: number = await socket.send<number>('x', { timeout: 10 });
  const maybe: unknown = await node.sendTo(socket, 'x', { receptive: Math.random() > 0.5 });
  // @ts-expect-error a one-way send's undefined is not a reply
  const notAReply: string = await node.sendTo('peer', 'x', { receptive: false });
  // @ts-expect-error receptive is a boolean (the runtime throws a TypeError)
  void node.sendTo('peer', 'x', { receptive: 'no' });
  void [isSocket, oneWay, oneWayBySocket, reply, replyBySocket, maybe, notAReply];
  // So do one-way broadcasts and request$ (they were typed T: a string[] of undefineds).
  const oneWayAll = await node.broadcast('x', { receptive: false });
  const oneWaySettled = await node.broadcastSettled('x', { receptive: false, timeout: 10 });
  const oneWay$ = node.request$('peer', 'x', { receptive: false });
  const allUndefined: [Equal<typeof oneWayAll, undefined[]>, Equal<typeof oneWaySettled, BroadcastOutcome<undefined>[]>, Equal<typeof oneWay$, Observable<undefined>>] = [true, true, true];
  const replies: string[] = await node.broadcast<string>('x');
  // @ts-expect-error a one-way broadcast has no replies
  const noReplies: string[] = await node.broadcast('x', { receptive: false });
  void [allUndefined, replies, noReplies];

  // iterate always awaits the answers: receptive: false is refused by the type as by the runtime.
  // @ts-expect-error receptive: false leaves nothing to iterate
  node.iterate('peer', 'x', { receptive: false });
  const iterateOptions: IterateOptions = { receptive: true, window: 4, idleTimeout: 100, timeout: 1000 };
  for await (const row of node.iterate<number>('peer', 'x', iterateOptions)) void (row + 1);

  // Event listeners get what is emitted.
  node
    .on('message', (message) => {
      const data: unknown = message.data;
      const from: string = message.from;
      const answered: boolean = message.reply(data) || message.error(new Error(from)) || message.stream([1, 2]);
      void answered;
    })
    .on('connection', (name, peer) => void [name.length, peer.role])
    .on('connect', (name, peer) => void [name.length, peer.connected])
    .on('disconnect', (name, peer) => void [name.length, peer.name])
    .on('socketClose', (name) => void name.length)
    .on('listening', (address) => void (typeof address === 'string' ? address : address?.port))
    .on('error', (error) => void error.message)
    .on('raw', (name, peer, data) => void [name, peer, data.length])
    .on('close', () => undefined);
  // @ts-expect-error 'close' carries no argument
  node.on('close', (why: string) => void why);
  // @ts-expect-error 'socketClose' carries the name only, not a socket
  node.on('socketClose', (name: string, peer: NodeSocket) => void [name, peer]);

  // Every documented code is an ErrorCode, and there are no others.
  const codes: Record<ErrorCode, true> = {
    ERR_IPC_TIMEOUT: true,
    ERR_IPC_NOT_CONNECTED: true,
    ERR_IPC_PEER_DISCONNECTED: true,
    ERR_IPC_CONNECT: true,
    ERR_IPC_HANDSHAKE: true,
    ERR_IPC_NAME_IN_USE: true,
    ERR_IPC_AUTH: true,
    ERR_IPC_TLS: true,
    ERR_IPC_TRANSPORT: true,
    ERR_IPC_TOO_MANY_REQUESTS: true,
    ERR_IPC_WRITE_BUFFER_FULL: true,
    ERR_IPC_STREAM_OVERFLOW: true,
    ERR_IPC_PROTOCOL: true,
    ERR_IPC_FRAME_TOO_LARGE: true,
    ERR_IPC_EMPTY_REPLY: true,
    ERR_IPC_CLOSED: true,
    ERR_IPC_ENCODE: true,
    ERR_IPC_DECODE: true,
    ERR_IPC_REMOTE: true,
    ERR_IPC_ALREADY_CONNECTED: true,
  };
  const code: ErrorCode = new IpcError(ErrorCode.CLOSED, 'closed').code;
  void [codes, code];

  // natsTransport: what its runtime refuses, its type refuses.
  natsTransport({ servers: 'nats://127.0.0.1:4222', noEcho: false, prefix: 'fleet' });
  natsTransport({ connection: nc, prefix: 'fleet', maxInstances: 2, openTimeout: 100, discoveryInterval: 500 });
  // @ts-expect-error noEcho: true is a TypeError (nodes sharing the connection would never see each other)
  natsTransport({ servers: 'nats://127.0.0.1:4222', noEcho: true });
  // @ts-expect-error connection options beside a connection are a TypeError (they would be ignored)
  natsTransport({ connection: nc, user: 'u' });
  const natsOptions: NatsTransportOptions = { connection: nc };
  void new Node('worker', { transport: natsTransport(natsOptions) });
}
