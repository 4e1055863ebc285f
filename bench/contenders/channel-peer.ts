/**
 * The peer of the channel contenders (channel.ts): a forked child (`node channel-peer.js fork`) or a worker thread
 * (argv `worker`) that answers requests and counts one-way messages with the bench's own `serverHandlers`.
 */
import { parentPort } from 'node:worker_threads';
import { serverHandlers } from '../scenarios';
import type { Contender } from '../types';
import { asBuffer, type ChannelMessage } from './channel';

const handlers = serverHandlers({ asBuffer } as Contender);

function serve(post: (message: ChannelMessage) => void): (message: ChannelMessage) => void {
  return ([id, data]) => {
    if (id === 0) handlers.message(data);
    else post([id, handlers.request(data)]);
  };
}

if (process.argv.includes('worker') && parentPort) {
  const port = parentPort;
  port.on('message', serve((message) => port.postMessage(message)));
} else {
  process.on('message', serve((message) => process.send!(message)) as (message: unknown) => void);
  // The client was killed: nothing more will come.
  process.on('disconnect', () => process.exit(0));
}
