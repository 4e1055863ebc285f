/**
 * What `firstValueFrom` itself costs in the 10,000-at-once row (issue 13): the burst measured through `sendTo`,
 * through `firstValueFrom(node.request$(…))`, through `firstValueFrom` over the smallest Observable one can wrap
 * around `sendTo`, and through one extra Promise around `sendTo`. If `request$` costs what the wrapped `sendTo`
 * costs, its own work is as small as an Observable's can be, and the rest of the gap is RxJS's subscription and
 * Promise machinery (`SafeSubscriber`, its observer, finalizers, a Promise), kept alive by 10,000 requests at once
 * through every young-generation GC.
 *
 *   npm run build && npx tsc -p bench/tsconfig.json && node .bench-build/rx-floor.js [--rounds 25]
 *
 * One server process (an echo `Node` on loopback TCP) and this client; the four forms alternate, 10,000 requests
 * of a 64-character string per round, the first 5 rounds of each are warm-up; medians.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { firstValueFrom, Observable } from 'rxjs';
import { Node } from 'ipc-link-core';
import { freePort } from './freePort';

const BURST = 10_000;
const WARMUP = 5;

async function serve(port: number): Promise<void> {
  const server = new Node('rx-floor-server');
  server.on('message', (message) => message.reply(message.data));
  server.serve('rx-floor-server', port, '127.0.0.1');
  await once(server, 'listening');
  process.send!('ready');
  process.once('disconnect', () => void server.close());
}

async function measure(port: number, rounds: number): Promise<void> {
  const client = new Node('rx-floor-client', { maxRetries: 0, requestTimeout: 60_000 });
  const server = await client.connectTo('rx-floor-server', port, '127.0.0.1');
  const text = 'x'.repeat(64);
  const forms: Record<string, () => Promise<unknown>> = {
    sendTo: () => client.sendTo(server, text),
    'firstValueFrom(request$)': () => firstValueFrom(client.request$(server, text)),
    'firstValueFrom(Observable around sendTo)': () =>
      firstValueFrom(
        new Observable((subscriber) => {
          client.sendTo(server, text).then(
            (reply) => {
              subscriber.next(reply);
              subscriber.complete();
            },
            (error: unknown) => subscriber.error(error),
          );
        }),
      ),
    'Promise around sendTo': () => new Promise((resolve, reject) => client.sendTo(server, text).then(resolve, reject)),
  };
  const times = new Map(Object.keys(forms).map((name) => [name, [] as number[]]));
  for (let round = 0; round < rounds + WARMUP; round++) {
    for (const [name, form] of Object.entries(forms)) {
      const start = process.hrtime.bigint();
      const replies = await Promise.all(Array.from({ length: BURST }, form));
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (replies.some((reply) => reply !== text)) throw new Error(`${name}: a wrong reply`);
      if (round >= WARMUP) times.get(name)!.push(ms);
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];
  const base = median(times.get('sendTo')!);
  console.log(`${BURST.toLocaleString('en-US')} requests at once over TCP, median of ${rounds} rounds each:`);
  for (const [name, values] of times) {
    console.log(`  ${name.padEnd(42)} ${median(values).toFixed(1).padStart(7)} ms  ${(median(values) / base).toFixed(2)}× sendTo`);
  }
  await client.close();
}

if (process.argv[2] === 'server') {
  void serve(Number(process.argv[3]));
} else {
  const at = process.argv.indexOf('--rounds');
  const rounds = at >= 0 ? Number(process.argv[at + 1]) : 25;
  void (async () => {
    const port = await freePort();
    const server = fork(__filename, ['server', String(port)]);
    await once(server, 'message');
    try {
      await measure(port, rounds);
    } finally {
      server.disconnect();
    }
  })();
}
