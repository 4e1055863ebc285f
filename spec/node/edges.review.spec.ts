// Edge values that are accepted (the smallest, the largest, 1 where 1 is special) and whether each does exactly
// what the README and TSDoc promise, deterministically: races show as flakiness, so what timing could sway runs
// 20 times, over TCP and over the in-memory link.
import { Observable } from 'rxjs';
import { ErrorCode, type Node, type NodeMessage } from '../../src';
import { closeAll, link, node, until, type Transport } from '../helpers/net';

afterEach(closeAll);

const TRANSPORTS: Transport[] = ['tcp', 'link'];

/** Every value of `source` and how it ended. */
function outcome(source: Observable<unknown>): Promise<{ values: unknown[]; code?: string }> {
  const values: unknown[] = [];
  return new Promise((resolve) =>
    source.subscribe({
      next: (v) => values.push(v),
      error: (e: { code?: string }) => resolve({ values, code: e.code }),
      complete: () => resolve({ values }),
    }),
  );
}

async function pair(transport: Transport, options = {}): Promise<{ hub: Node & { errors: Error[] }; client: Node & { errors: Error[] } }> {
  const hub = node('hub', { heartbeatInterval: 0 });
  const client = node('client', { heartbeatInterval: 0, ...options });
  await link(hub, client, transport);
  return { hub, client };
}

describe.each(TRANSPORTS)('idleTimeout 0 (%s): no time at all between two values', (transport) => {
  it('a second value written a turn of the event loop after the first was delivered fails the stream, every time', async () => {
    const { hub, client } = await pair(transport);
    let delivered: () => void = () => undefined;
    let torn = 0;
    hub.on('message', (m: NodeMessage) =>
      m.stream(
        new Observable<number>((subscriber) => {
          subscriber.next(0);
          void new Promise<void>((resolve) => (delivered = resolve)).then(() =>
            setImmediate(() => {
              subscriber.next(1);
              subscriber.complete();
            }),
          );
          return () => torn++;
        }),
      ),
    );
    const seen: string[] = [];
    for (let i = 0; i < 20; i++) {
      const source = new Observable<unknown>((subscriber) =>
        client.request$('hub', 'x', { timeout: 5000, idleTimeout: 0 }).subscribe({
          next: (v) => {
            subscriber.next(v);
            delivered();
          },
          error: (e) => subscriber.error(e),
          complete: () => subscriber.complete(),
        }),
      );
      const { values, code } = await outcome(source);
      seen.push(`${JSON.stringify(values)} ${code ?? 'completed'}`);
    }
    expect(new Set(seen)).toEqual(new Set([`[0] ${ErrorCode.TIMEOUT}`]));
    await until(() => torn === 20 && hub.stats().openStreams === 0 && client.stats().pendingRequests === 0, 2000, 'no slot left');
  });

  it('values that come together (one write) all pass, every time', async () => {
    const { hub, client } = await pair(transport);
    hub.on('message', (m: NodeMessage) => m.stream([1, 2, 3]));
    for (let i = 0; i < 20; i++) {
      expect(await outcome(client.request$('hub', 'x', { timeout: 5000, idleTimeout: 0 }))).toEqual({ values: [1, 2, 3] });
    }
    await until(() => hub.stats().openStreams === 0 && client.stats().pendingRequests === 0, 2000, 'no slot left');
  });
});
