import { Client, Server } from 'net-ipc';
import { socketAddress, type Address, type BenchClient, type Contender, type ServerHandlers } from '../types';

/** net-ipc encodes with JSON: a Buffer arrives as { type: 'Buffer', data: [...] }. */
function asBuffer(data: unknown): Buffer {
  if (Buffer.isBuffer(data)) return data;
  const json = data as { type?: string; data?: number[] };
  if (json && json.type === 'Buffer' && Array.isArray(json.data)) return Buffer.from(json.data);
  throw new TypeError('not a Buffer');
}

export const netIpc: Contender = {
  name: 'net-ipc',
  asBuffer,
  skip: {
    'stream-small': 'net-ipc has no streamed replies',
    'bulk-1mib': 'net-ipc sends Buffers as JSON arrays of numbers: 200 MiB did not finish within 3 minutes' },
  server: () => ({
    async listen(address: Address, handlers: ServerHandlers) {
      const socket = socketAddress(address);
      const options = 'path' in socket ? { path: socket.path } : { port: socket.port || 0, host: socket.host };
      const server = new Server(options as ConstructorParameters<typeof Server>[0]);
      server.on('message', (data: unknown) => handlers.message(data));
      server.on('request', (data: unknown, respond: (reply: unknown) => Promise<void>) => {
        void respond(handlers.request(data));
      });
      await server.start();
      const bound = (server as unknown as { server: import('node:net').Server }).server.address();
      return typeof bound === 'string' ? { path: bound } : { port: bound!.port, host: '127.0.0.1' };
    },
  }),
  async client(address: Address): Promise<BenchClient> {
    const socket = socketAddress(address);
    const options = 'path' in socket ? { path: socket.path } : { port: socket.port, host: socket.host };
    const client = new Client({ ...options, reconnect: false } as ConstructorParameters<typeof Client>[0]);
    await client.connect();
    let last: Promise<unknown> = Promise.resolve();
    return {
      request: (data) => client.request(data, 60_000),
      send(data) {
        last = client.send(data);
      },
      flush: () => last.then(() => undefined),
      async close() {
        await client.close();
      },
    };
  },
};
