// A command-line tool: asks the hello.ts daemon one thing, prints the answer, exits (1 when the daemon is down).
//   PORT=8001 npx ts-node examples/hello.ts           (terminal 1, the daemon)
//   PORT=8001 npx ts-node examples/cli.ts status      (terminal 2, as often as you like, several at once)
import { Node } from 'ipc-link-core';

async function main(): Promise<void> {
  // A name of its own (copies of one CLI would wait for each other), and no retries: fail at once when the daemon is down.
  const cli = new Node(`cli-${process.pid}`, { maxRetries: 0 });
  cli.on('message', (message) => message.reply('a CLI')); // hello.ts greets every peer and waits for an answer
  try {
    await cli.connectTo('hello', Number(process.env.PORT ?? 8001));
    console.log(await cli.sendTo('hello', process.argv[2] ?? 'status', { timeout: 5000 }));
  } finally {
    await cli.close(); // a connected node keeps the process alive, as any open socket does
  }
}

main().catch((error) => {
  console.error('cli:', error.message);
  process.exitCode = 1;
});
