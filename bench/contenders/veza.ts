import { Client, Server } from 'veza';
import { connectArgs, type Address, type BenchClient, type Contender, type ServerHandlers } from '../types';

export const veza: Contender = {
  name: 'veza',
  skip: { 'stream-small': 'veza has no streamed replies' },
  // binarytf delivers Buffers as Uint8Arrays.
  asBuffer: (data) => (data instanceof Uint8Array ? Buffer.from(data.buffer, data.byteOffset, data.length) : (data as Buffer)),
  server: () => ({
    async listen(address: Address, handlers: ServerHandlers) {
      const server = new Server('bench-server');
      // veza emits 'error' on the server for frames it fails to parse: without a listener the process dies.
      server.on('error', (error) => {
        process.stderr.write(`veza server error: ${error.message}\n`);
        process.exit(1);
      });
      server.on('message', (message) => {
        if (message.receptive) message.reply(handlers.request(message.data));
        else handlers.message(message.data);
      });
      await server.listen(...(connectArgs(address) as [number, string]));
      const bound = server.server.address();
      return typeof bound === 'string' ? { path: bound } : { port: bound!.port, host: '127.0.0.1' };
    },
  }),
  async client(address: Address): Promise<BenchClient> {
    const client = new Client('bench-client', { maximumRetries: 0 });
    const socket = await client.connectTo(...(connectArgs(address) as [number, string]));
    let last: Promise<unknown> = Promise.resolve();
    return {
      request: (data) => socket.send(data, { receptive: true, timeout: 60_000 }),
      send(data) {
        last = socket.send(data, { receptive: false });
      },
      flush: () => last.then(() => undefined),
      async close() {
        socket.disconnect();
      },
    };
  },
};
