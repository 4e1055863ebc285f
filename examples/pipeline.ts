// RxJS on a node's streams: connections$ drives work, messages$ is filtered, mapped and batched.
// A hub serves; three workers connect; each new worker gets a job as soon as it connects; the workers
// report progress as one-way messages, which the hub batches every 50 ms.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { bufferTime, filter, map, mergeMap, take, takeUntil, toArray, lastValueFrom, fromEvent } from 'rxjs';
import { Node } from 'ipc-link-core';

interface Progress {
  kind: 'progress';
  worker: string;
  done: number;
}

async function main(): Promise<void> {
  const hub = new Node('hub');
  hub.serve('hub', 0, '127.0.0.1');
  await once(hub, 'listening');
  const { port } = hub.server!.address() as AddressInfo;
  const closed$ = fromEvent(hub, 'close');

  // Progress reports, batched: one line every 50 ms at most.
  hub.messages$
    .pipe(
      map((message) => message.data as Progress),
      filter((data) => data.kind === 'progress'),
      bufferTime(50),
      filter((batch) => batch.length > 0),
      takeUntil(closed$),
    )
    .subscribe((batch) => console.log(`progress: ${batch.map((p) => `${p.worker}=${p.done}`).join(' ')}`));

  // Every worker that connects gets a job; collect the three results.
  const results = lastValueFrom(
    hub.connections$.pipe(
      mergeMap((socket) => hub.sendTo<number>(socket, { job: 'sum', upTo: 1000 }).then((sum) => `${socket.name}: ${sum}`)),
      take(3),
      toArray(),
    ),
  );

  const workers = ['w1', 'w2', 'w3'].map((name) => {
    const worker = new Node(name);
    worker.on('message', async (message) => {
      const { upTo } = message.data as { upTo: number };
      let sum = 0;
      for (let i = 1; i <= upTo; i++) {
        sum += i;
        if (i % 250 === 0) await worker.sendTo('hub', { kind: 'progress', worker: name, done: i }, { receptive: false });
      }
      message.reply(sum);
    });
    return worker;
  });
  await Promise.all(workers.map((worker) => worker.connectTo('hub', port, '127.0.0.1')));

  for (const line of (await results).sort()) console.log(`result ${line}`);
  await new Promise((resolve) => setTimeout(resolve, 60)); // let the last progress batch print
  await Promise.all([...workers.map((worker) => worker.close()), hub.close()]);
}

void main();
