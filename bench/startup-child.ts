/**
 * The child of the first-reply measurement (startup.ts). It loads only what its mode needs, then answers one
 * request from its parent:
 *   node startup-child.js ipc-link-core <socket path>   loads ipc-link-core, connects to the parent's node, replies
 *   node startup-child.js fork                          answers a `process.send` message (json or advanced)
 *   (worker thread, argv worker)                        answers a `postMessage`
 *   node startup-child.js require <module>              prints how long `require(module)` took, in ms
 */
const [mode, arg] = process.argv.slice(2);

if (mode === 'require') {
  const start = process.hrtime.bigint();
  require(arg);
  process.stdout.write(`${Number(process.hrtime.bigint() - start) / 1e6}\n`);
} else if (mode === 'ipc-link-core') {
  const { Node } = require('ipc-link-core') as typeof import('ipc-link-core');
  const node = new Node('child', { maxRetries: 0, heartbeatInterval: 0 });
  node.on('message', (message) => message.reply(message.data));
  node.connectTo('parent', arg).catch((error: Error) => {
    process.stderr.write(`startup child: ${error.message}\n`);
    process.exit(1);
  });
} else if (mode === 'worker') {
  const { parentPort } = require('node:worker_threads') as typeof import('node:worker_threads');
  parentPort!.once('message', (data: unknown) => parentPort!.postMessage(data));
} else {
  process.once('message', (data) => process.send!(data));
}
