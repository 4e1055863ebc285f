// Pull-based consumption: a slow consumer sets the pace, the producer never runs more than a window ahead —
// with RxJS operators kept, through pullEach. Run: npx ts-node examples/pull.ts
import { count, map, timer } from 'rxjs';
import { createLinkPair, Node, pullEach } from 'ipc-link-core';

async function main(): Promise<void> {
  let produced = 0;
  let taken = 0; // rows the consumer has started working on
  let mostAhead = 0;

  // The producer: yields rows as they are asked for (an async generator is pulled, never pushed).
  const db = new Node('db', { heartbeatInterval: 0 });
  db.on('message', (message) =>
    message.stream(
      (async function* () {
        for (let row = 0; row < 100; row++) {
          produced++;
          mostAhead = Math.max(mostAhead, produced - taken);
          yield { row };
        }
      })(),
    ),
  );

  const app = new Node('app', { heartbeatInterval: 0 });
  const [a, b] = createLinkPair();
  db.acceptVia(a);
  await app.connectVia('db', b);

  // The consumer: 2 ms of work per row; the next row is pulled only when that work is done.
  const rows = await new Promise<number>((resolve, reject) =>
    pullEach(app.iterate<{ row: number }>('db', 'SELECT * FROM rows', { window: 16 }), (value) => {
      taken++;
      return timer(2).pipe(map(() => value));
    })
      .pipe(count())
      .subscribe({ next: resolve, error: reject }),
  );
  console.log(`pulled ${rows} rows; the producer ran at most ${mostAhead} rows ahead of the consumer (window 16)`);
  await Promise.all([app.close(), db.close()]);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
