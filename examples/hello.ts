// This example must be run before interactive/world, since this serves the
// IPC server the other sockets connect to.
import { Node } from 'ipc-link-core';

const node = new Node('hello')
  .on('connection', (name, socket) => {
    console.log(`Connected to ${name}`);
    node
      .sendTo(socket, 'Hello')
      .then((reply) => console.log(`Hello ${reply}`))
      .catch((error) => console.error('Error', error.message));
  })
  .on('listening', console.log.bind(null, 'Listening'))
  .on('message', console.log.bind(null, 'Message'))
  .on('error', console.error.bind(null, 'Error'))
  .on('socketClose', console.log.bind(null, 'Closed Socket:'))
  .serve('hello', Number(process.env.PORT ?? 8001));

// Beyond the seed: answer requests (interactive.ts prints the answers).
node.on('message', (message) => message.reply(`hello received ${JSON.stringify(message.data)}`));
