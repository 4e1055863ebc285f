// Review of the RxJS surface (messages$, stats$, request$, pullEach, the scheduler option) used as RxJS users do:
// every probe here once failed. Over the in-memory link and a real TCP connection.
import { lastValueFrom, toArray } from 'rxjs';
import type { NodeMessage } from '../../src';
import { closeAll, link, node, type Transport } from '../helpers/net';

afterEach(closeAll);
afterEach(() => jest.restoreAllMocks());

async function pair(kind: Transport, handle?: (m: NodeMessage) => void, clientOptions = {}) {
  const server = node('hub', { heartbeatInterval: 0 });
  const client = node('client', { heartbeatInterval: 0, ...clientOptions });
  if (handle) server.on('message', handle);
  await link(server, client, kind);
  return { server, client };
}

describe('stats$', () => {
  it('any number of subscribers adds no listener to the node: no MaxListenersExceededWarning, removeAllListeners() does not keep them ticking', async () => {
    const { client } = await pair('link');
    const warn = jest.spyOn(process, 'emitWarning');
    const all = Array.from({ length: 20 }, () => lastValueFrom(client.stats$.pipe(toArray())));
    expect(client.listenerCount('close')).toBe(0);
    client.removeAllListeners();
    await client.close();
    // Every subscriber completed with close().
    expect((await Promise.all(all)).length).toBe(20);
    expect(warn).not.toHaveBeenCalled();
  });
});
