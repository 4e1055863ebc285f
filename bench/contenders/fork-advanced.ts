import { channelContender } from './channel';

/** `child_process.fork({ serialization: 'advanced' })` + `process.send` (structured clone): the client and its forked child. */
export const forkAdvanced = channelContender('fork-advanced', { via: 'fork', serialization: 'advanced' }, {});
