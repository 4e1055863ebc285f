/** Where a server listens: a TCP port on loopback, or a Unix socket path. */
export type Address = { port: number; host: string } | { path: string };

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
}

export function connectArgs(address: Address): [number, string] | [string] {
  return 'path' in address ? [address.path] : [address.port, address.host];
}
