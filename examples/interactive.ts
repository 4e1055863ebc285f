// Type lines, get replies. Depends on hello.ts running in another process:
//   PORT=8001 npx ts-node examples/hello.ts     (terminal 1)
//   PORT=8001 npx ts-node examples/interactive.ts  (terminal 2)
import { createInterface } from 'node:readline';
import { Node } from 'ipc-link-core';

async function main(): Promise<void> {
  const node = new Node('interactive', { maxRetries: 3 });
  node.on('error', (error) => console.error('Error:', error.message));
  // hello greets every peer that connects and waits for the answer.
  node.on('message', (message) => message.reply('interactive!'));
  await node.connectTo('hello', Number(process.env.PORT ?? 8001));
  console.log('Connected to hello. Type a line and press enter (Ctrl+D to quit).');

  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    try {
      console.log('>', await node.sendTo('hello', line, { timeout: 2000 }));
    } catch (error) {
      console.log('!', (error as Error).message);
    }
  }
  await node.close();
}

main().catch((error) => {
  console.error('Could not connect to hello:', error.message);
  process.exitCode = 1;
});
