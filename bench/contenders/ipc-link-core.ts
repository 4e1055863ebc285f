import { once } from 'node:events';
import { Node } from 'ipc-link-core';
import { connectArgs, type Address, type BenchClient, type Contender, type ServerHandlers } from '../types';

export const ipcLinkCore: Contender = {
  name: 'ipc-link-core',
  server: () => ({
    async listen(address: Address, handlers: ServerHandlers) {
      const node = new Node('bench-server', { requestTimeout: Infinity });
      node.on('message', (message) => {
        if (message.receptive) message.reply(handlers.request(message.data));
        else handlers.message(message.data);
      });
      node.serve('bench', ...connectArgs(address));
      await once(node, 'listening');
      const bound = node.server!.address();
      return typeof bound === 'string' ? { path: bound } : { port: bound!.port, host: '127.0.0.1' };
    },
  }),
  async client(address: Address): Promise<BenchClient> {
    const node = new Node('bench-client', { maxRetries: 0, requestTimeout: 60_000 });
    const server = await node.connectTo('bench-server', ...connectArgs(address));
    let last: Promise<unknown> = Promise.resolve();
    return {
      request: (data) => node.sendTo(server, data),
      send(data) {
        last = node.sendTo(server, data, { receptive: false });
      },
      flush: () => last.then(() => undefined),
      close: () => node.close(),
    };
  },
};
