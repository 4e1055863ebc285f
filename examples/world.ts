// This example depends on hello.ts to be running in another process.
// This Node is a socket that replies to hello.ts with "world!" when it receives "Hello".
import { Node } from 'ipc-link-core';

const node = new Node('world')
  .on('message', (message) => {
    console.log(`Received data from ${message.from}:`, message);
    if (message.data === 'Hello') message.reply('world!');
  })
  .on('error', console.error)
  .on('connect', () => console.log('Connected!'));

node.connectTo('hello', Number(process.env.PORT ?? 8001)).catch(() => console.log('Disconnected!'));
