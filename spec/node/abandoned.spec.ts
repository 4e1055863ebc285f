// An iterator of `node.iterate` dropped without return(): once garbage-collected, its request is cancelled. Before,
// `await node.iterate(…).next()` (a careless way to take the first value) left the request pending on the client
// and the responder's stream open, for the life of the connection.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { closeAll, link, node, until, type Transport } from '../helpers/net';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

afterEach(closeAll);

/** Collects until `check` holds: finalization callbacks run in a later task than the GC that found their target. */
async function collectUntil(check: () => boolean, what: string): Promise<void> {
  for (let round = 0; round < 50 && !check(); round++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect({ what, done: check() }).toEqual({ what, done: true });
}

describe.each<Transport>(['tcp', 'link'])('an iterator dropped without return() (%s)', (transport) => {
  /** A hub streaming 0, 1, 2… for ever (pulled: at most `window` ahead), and a client linked to it. */
  async function endless(answerAfterMs = 0) {
    const hub = node('hub', { heartbeatInterval: 0 });
    const state = { pulled: 0, finished: false };
    hub.on('message', (m) => {
      setTimeout(() => {
        m.stream(
          (function* () {
            try {
              for (;;) yield state.pulled++;
            } finally {
              state.finished = true;
            }
          })(),
        );
      }, answerAfterMs);
    });
    const client = node('client', { heartbeatInterval: 0 });
    await link(hub, client, transport);
    return { hub, client, state };
  }

  it('is cancelled once collected: the responder stream ends, no request stays pending on either side', async () => {
    const { hub, client, state } = await endless();
    expect((await client.iterate<number>('hub', 'go', { window: 4 }).next()).value).toBe(0);
    expect(client.stats().pendingRequests).toBe(1);
    await collectUntil(() => state.finished && client.stats().pendingRequests === 0 && hub.stats().openStreams === 0, 'cancelled');
    expect(state.pulled).toBeLessThanOrEqual(1 + 4 + 1);
    expect(client.errors).toEqual([]);
    expect(hub.errors).toEqual([]);
  });

  it('dropped while its first next() still waits: that next() gets its value, then the request is cancelled', async () => {
    const { hub, client, state } = await endless(200);
    const first = client.iterate<number>('hub', 'go', { window: 4 }).next();
    for (let i = 0; i < 5; i++) gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(state.finished).toBe(false);
    expect(await first).toEqual({ value: 0, done: false });
    await collectUntil(() => state.finished && client.stats().pendingRequests === 0 && hub.stats().openStreams === 0, 'cancelled');
  });

  it('one still referenced is never cancelled by a collection: it goes on where it was', async () => {
    const { client, state } = await endless();
    const iterator = client.iterate<number>('hub', 'go', { window: 4 });
    expect((await iterator.next()).value).toBe(0);
    for (let i = 0; i < 10; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(state.finished).toBe(false);
    expect((await iterator.next()).value).toBe(1);
    await iterator.return!();
    await until(() => state.finished, 2000, 'return() cancels');
  });
});
