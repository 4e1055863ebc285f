// A marble test of your own protocol logic, with no socket: two nodes joined by an in-memory link, a responder
// that streams, and RxJS's TestScheduler driving virtual time. Run: npx ts-node examples/marble.ts
import { deepStrictEqual } from 'node:assert';
import { interval, map, take } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { createLinkPair, Node } from 'ipc-link-core';

async function main(): Promise<void> {
  // The code under test: a price feed that quotes a symbol every 100 ms.
  const feed = new Node('feed', { heartbeatInterval: 0 });
  feed.on('message', (message) => {
    const symbol = message.data as string;
    message.stream(interval(100).pipe(map((i) => ({ symbol, price: 100 + i }))));
  });

  const trader = new Node('trader', { heartbeatInterval: 0 });
  const [a, b] = createLinkPair();
  feed.acceptVia(a);
  await trader.connectVia('feed', b);

  const scheduler = new TestScheduler((actual, expected) => deepStrictEqual(actual, expected));
  scheduler.run(({ expectObservable }) => {
    const quotes$ = trader.request$('feed', 'ACME').pipe(take(3));
    expectObservable(quotes$).toBe('100ms a 99ms b 99ms (c|)', {
      a: { symbol: 'ACME', price: 100 },
      b: { symbol: 'ACME', price: 101 },
      c: { symbol: 'ACME', price: 102 },
    });
  });
  console.log('marble test passed: three quotes at 100, 200 and 300 ms of virtual time, then cancelled');
  await Promise.all([trader.close(), feed.close()]);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
