/**
 * Where a server listens: a TCP port on loopback, a Unix socket path, or (transport `nats`) the URL of the
 * nats-server that run.ts started for the run — client and server both connect to it.
 */
export type Address = SocketAddress | { nats: string };
export type SocketAddress = { port: number; host: string } | { path: string };

/** What a server does with what it receives (the same logic for every contender). */
export interface ServerHandlers {
  /** A request: returns the reply. */
  request(data: unknown): unknown;
  /** A one-way message. */
  message(data: unknown): void;
}

/** One library's server side. */
export interface BenchServer {
  /** Listens on `address` (port 0: any) and resolves with the address actually used. */
  listen(address: Address, handlers: ServerHandlers): Promise<Address>;
}

/** One library's client side, connected to a BenchServer. */
export interface BenchClient {
  request(data: unknown): Promise<unknown>;
  /** Sends a one-way message (fire and forget). */
  send(data: unknown): void;
  /** Resolves once everything sent so far was handed to the socket (lets the writer respect backpressure). */
  flush(): Promise<void>;
  /** Streams `count` small items from the server (request/stream); resolves with how many arrived in order. */
  stream?(count: number): Promise<number>;
  close(): Promise<void>;
}

/** A contender: a library under test (or the baseline). */
export interface Contender {
  name: string;
  server(): BenchServer;
  client(address: Address): Promise<BenchClient>;
  /** Turns what the library delivers back into a Buffer where it cannot carry Buffers natively. */
  asBuffer?(data: unknown): Buffer;
  /** Scenarios not run for this contender, with the reason printed under the table. */
  skip?: Record<string, string>;
  /** The transports this contender runs on (run.ts's `--transports` names); default `['tcp', 'unix']`. */
  transports?: string[];
}

/** Whether `contender` runs on `transport` (contenders that declare no transports run on TCP and Unix sockets). */
export function supports(contender: Contender, transport: string): boolean {
  return (contender.transports ?? ['tcp', 'unix']).includes(transport);
}

/** The socket address, for contenders that only run over sockets (throws for a NATS address). */
export function socketAddress(address: Address): SocketAddress {
  if ('nats' in address) throw new TypeError(`a NATS address (${address.nats}) has no socket to connect to`);
  return address;
}

export function connectArgs(address: Address): [number, string] | [string] {
  const socket = socketAddress(address);
  return 'path' in socket ? [socket.path] : [socket.port, socket.host];
}
