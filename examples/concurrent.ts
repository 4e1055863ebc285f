// 10,000 requests in parallel between two nodes over loopback TCP; prints how long they took.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Node } from 'ipc-link-core';

const COUNT = Number(process.env.COUNT ?? 10_000);

async function main(): Promise<void> {
  const server = new Node('server').on('message', (message) => message.reply(message.data));
  server.serve('server', 0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.server!.address() as AddressInfo;

  const client = new Node('client');
  await client.connectTo('server', port, '127.0.0.1');

  const started = process.hrtime.bigint();
  const replies = await Promise.all(Array.from({ length: COUNT }, (_, i) => client.sendTo<number>('server', i)));
  const ms = Number(process.hrtime.bigint() - started) / 1e6;

  const wrong = replies.filter((reply, i) => reply !== i).length;
  console.log(`${COUNT} concurrent requests: ${ms.toFixed(1)} ms (${Math.round(COUNT / (ms / 1000))} req/s), ${wrong} wrong replies`);
  await Promise.all([client.close(), server.close()]);
  if (wrong > 0) process.exitCode = 1;
}

void main();
