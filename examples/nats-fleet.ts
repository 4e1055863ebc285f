// A fleet over NATS: three instances of the service "worker" and one client, in one process for the demo (in real
// life, one process each, on any host of the cluster). Starts no server: give it one with NATS_URL, e.g.
//   nats-server -p 4222 &  NATS_URL=nats://127.0.0.1:4222 npx ts-node examples/nats-fleet.ts
import { once } from 'node:events';
import { Node } from 'ipc-link-core';
import { natsTransport } from 'ipc-link-core/nats';

const servers = process.env.NATS_URL;
if (!servers) {
  console.error('Set NATS_URL to a NATS server, e.g. NATS_URL=nats://127.0.0.1:4222');
  process.exit(2);
}

async function main(): Promise<void> {
  // Each instance: a node named after its service, serving that name. No host, no port.
  const workers = ['a', 'b', 'c'].map((label) => {
    const worker = new Node('worker', { transport: natsTransport({ servers }) });
    worker.on('message', (message) => message.reply({ by: label, square: (message.data as number) ** 2 }));
    worker.serve('worker');
    return worker;
  });
  await Promise.all(workers.map((worker) => once(worker, 'listening')));

  // The client links to every live instance; each sendTo goes to the least busy one.
  const api = new Node('api', { transport: natsTransport({ servers }) });
  let linked = 0;
  api.on('connect', () => linked++); // once per instance
  await api.connectTo('worker');
  while (linked < workers.length) await new Promise((resolve) => setTimeout(resolve, 10));

  const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
  for (let job = 1; job <= 30; job++) {
    const { by, square } = await api.sendTo<{ by: string; square: number }>('worker', job);
    if (square !== job * job) throw new Error(`wrong answer for ${job}: ${square}`);
    counts[by]++;
  }
  console.log(`3 instances answered 30 jobs: ${counts.a} / ${counts.b} / ${counts.c}`);

  await api.close();
  await Promise.all(workers.map((worker) => worker.close()));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
