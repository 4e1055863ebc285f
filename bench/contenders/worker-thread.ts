import { channelContender } from './channel';

/** A `worker_threads` Worker and `postMessage` (structured clone, Buffers copied, not transferred). */
export const workerThread = channelContender('worker', { via: 'worker' }, {});
