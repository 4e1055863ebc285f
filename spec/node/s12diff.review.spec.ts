import { Observable } from 'rxjs';
import { ErrorCode, type NodeMessage } from '../../src';
import { closeAll, outcome, quietPair, until, type Transport } from '../helpers/net';

afterEach(closeAll);

const TRANSPORTS: Transport[] = ['tcp', 'link'];

const pair = quietPair;

async function drain(it: AsyncIterableIterator<unknown>): Promise<{ values: unknown[]; code?: string }> {
  const values: unknown[] = [];
  try {
    for await (const v of it) values.push(v);
    return { values };
  } catch (e) {
    return { values, code: (e as { code?: string }).code };
  }
}

describe.each(TRANSPORTS)('idleTimeout 0 (%s): iterate as request$', (transport) => {
  it('values written together all pass through iterate, every time (it failed over the in-memory link after the first)', async () => {
    const { hub, client } = await pair(transport);
    hub.on('message', (m: NodeMessage) => m.stream([1, 2, 3]));
    for (let i = 0; i < 10; i++) {
      expect(await outcome(client.request$('hub', 'x', { timeout: 5000, idleTimeout: 0 }))).toEqual({ values: [1, 2, 3] });
      expect(await drain(client.iterate('hub', 'x', { timeout: 5000, idleTimeout: 0 }))).toEqual({ values: [1, 2, 3] });
    }
    await until(() => hub.stats().openStreams === 0 && client.stats().pendingRequests === 0, 2000, 'no slot left');
  });

  it('a value a turn later still fails iterate with ERR_IPC_TIMEOUT, and the responder is cancelled', async () => {
    const { hub, client } = await pair(transport);
    let torn = 0;
    hub.on('message', (m: NodeMessage) =>
      m.stream(
        new Observable<number>((subscriber) => {
          subscriber.next(0);
          const t = setTimeout(() => subscriber.next(1), 20);
          return () => {
            clearTimeout(t);
            torn++;
          };
        }),
      ),
    );
    for (let i = 0; i < 5; i++) {
      expect(await drain(client.iterate('hub', 'x', { timeout: 5000, idleTimeout: 0 }))).toEqual({ values: [0], code: ErrorCode.TIMEOUT });
    }
    await until(() => torn === 5 && hub.stats().openStreams === 0 && client.stats().pendingRequests === 0, 2000, 'no slot left');
  });
});
