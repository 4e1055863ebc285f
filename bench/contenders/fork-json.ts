import { channelContender } from './channel';

/** `child_process.fork` + `process.send`, default (JSON) serialization: the client talks to its forked child. */
export const forkJson = channelContender(
  'fork-json',
  { via: 'fork', serialization: 'json' },
  {
    'bulk-1mib': 'JSON carries a Buffer as an array of numbers (as net-ipc): not a way to move bytes',
    'echo-16mib': 'JSON carries a Buffer as an array of numbers (as net-ipc): not a way to move bytes',
  },
);
