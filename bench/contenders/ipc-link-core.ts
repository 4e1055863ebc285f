import { once } from 'node:events';
import { firstValueFrom, lastValueFrom, tap } from 'rxjs';
import { Node, type NodeSocket } from 'ipc-link-core';
import { small } from '../scenarios';

/** The streamed items: pulled (AsyncIterable), so the producer runs at the consumer's pace. */
async function* smallItems(count: number): AsyncGenerator<string> {
  for (let i = 0; i < count; i++) yield small(i);
}
import { connectArgs, type Address, type BenchClient, type Contender, type ServerHandlers } from '../types';

/** The bench server's handling, over any transport: streamed items, echoed requests, counted one-way messages. */
export function handleBench(node: Node, handlers: ServerHandlers): void {
  node.on('message', (message) => {
    const streamed = (message.data as { streamSmall?: number } | null)?.streamSmall;
    if (typeof streamed === 'number') message.stream(smallItems(streamed));
    else if (message.receptive) message.reply(handlers.request(message.data));
    else handlers.message(message.data);
  });
}

export const ipcLinkCore: Contender = {
  name: 'ipc-link-core',
  server: () => ({
    async listen(address: Address, handlers: ServerHandlers) {
      const node = new Node('bench-server', { requestTimeout: Infinity });
      handleBench(node, handlers);
      node.serve('bench', ...connectArgs(address));
      await once(node, 'listening');
      const bound = node.server!.address();
      return typeof bound === 'string' ? { path: bound } : { port: bound!.port, host: '127.0.0.1' };
    },
  }),
  client: (address) => client(address, 'promise'),
};

/**
 * The reactive path, measured against `sendTo` in the same run (issue 13): the same server, a client whose requests
 * are `firstValueFrom(node.request$(…))` and whose one-way sends go through `request$` with `receptive: false`.
 */
export const ipcLinkCoreRx: Contender = {
  name: 'ipc-link-core-rx',
  server: ipcLinkCore.server,
  skip: { 'bulk-1mib': 'same path as ipc-link-core for large one-way sends', 'echo-16mib': 'same path as ipc-link-core' },
  client: (address) => client(address, 'rx'),
};

/** A bench client asking through `sendTo` (`'promise'`) or through `request$` (`'rx'`). */
async function client(address: Address, path: 'promise' | 'rx'): Promise<BenchClient> {
  const node = new Node('bench-client', { maxRetries: 0, requestTimeout: 60_000 });
  return benchClient(node, await node.connectTo('bench-server', ...connectArgs(address)), path);
}

/** The bench client over `node`, connected to `server` (any transport). */
export function benchClient(node: Node, server: NodeSocket, path: 'promise' | 'rx' = 'promise'): BenchClient {
  let last: Promise<unknown> = Promise.resolve();
  const oneWay =
    path === 'rx'
      ? (data: unknown) => lastValueFrom(node.request$(server, data, { receptive: false }), { defaultValue: undefined })
      : (data: unknown) => node.sendTo(server, data, { receptive: false });
  return {
    request: path === 'rx' ? (data) => firstValueFrom(node.request$(server, data)) : (data) => node.sendTo(server, data),
    send(data) {
      last = oneWay(data);
    },
    flush: () => last.then(() => undefined),
    async stream(count) {
      let inOrder = 0;
      await lastValueFrom(
        node.request$<string>(server, { streamSmall: count }, { window: 1024 }).pipe(
          tap((item) => {
            if (item === small(inOrder)) inOrder++;
          }),
        ),
        { defaultValue: undefined },
      );
      return inOrder;
    },
    close: () => node.close(),
  };
}
