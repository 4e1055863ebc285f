/**
 * White-box review of the public API of Node (sendTo, broadcast, request$, iterate, pingTo, connect/disconnect,
 * close…) and of the responder's side (NodeMessage, InboundRequests, StreamResponder): one test per bug found,
 * each failing before its fix.
 */
import { ErrorCode, RemoteError, type IterateOptions, type NodeMessage } from '../../src';
import type { NodeTransport } from '../../src/node/NodeTransport';
import { firstValueFrom, lastValueFrom, toArray } from 'rxjs';
import { closeAll, freezableProxy, node, serveTcp, until } from '../helpers/net';

afterEach(closeAll);

/** A client connected over TCP to a server that answers with `handler`. */
async function pair(handler: (message: NodeMessage) => void) {
  const server = node('server');
  const client = node('client');
  server.on('message', handler);
  await client.connectTo('server', await serveTcp(server), '127.0.0.1');
  await until(() => server.get('client') !== undefined);
  return { server, client };
}

describe('api review', () => {
  it("message.error(err) carries a numeric err.code (gRPC status, HTTP status…) as remoteCode, not dropped", async () => {
    // sendErrorIfOpen kept `code` only when it was a string: `{ code: 404 }` reached the requester with no
    // remoteCode at all, though README says the RemoteError carries err.code.
    const { client } = await pair((m) => {
      m.error(Object.assign(new Error('no such row'), { code: 404 }));
    });
    const error = (await client.sendTo('server', 'row 7').catch((e: unknown) => e)) as RemoteError;
    expect(error).toBeInstanceOf(RemoteError);
    expect(error.code).toBe(ErrorCode.REMOTE);
    expect(error.remoteCode).toBe('404');
    expect(error.message).toBe('no such row');
  });

  it("iterate's options type refuses receptive: false, which the runtime refuses (TypeError at the first next())", async () => {
    // iterate took RequestStreamOptions, whose receptive is a boolean: `iterate(t, d, { receptive: false })`
    // type-checked, then failed at run time. The type line below fails `tsc` (an unused @ts-expect-error) before the fix.
    // @ts-expect-error receptive: false leaves nothing to iterate
    const refused: IterateOptions = { receptive: false };
    const accepted: IterateOptions = { receptive: true, timeout: 1000, idleTimeout: 1000, window: 4 };
    const { client } = await pair((m) => {
      m.stream(['a', 'b']);
    });
    await expect(client.iterate('server', 'go', refused).next()).rejects.toThrow(/options\.receptive must not be false/);
    const values: unknown[] = [];
    for await (const value of client.iterate('server', 'go', accepted)) values.push(value);
    expect(values).toEqual(['a', 'b']);
  });

  it('stats$ subscribed while close({ drain }) drains gives its first snapshot at once, and completes once closed', async () => {
    // stats$ completed at once, with no snapshot, as soon as close() was called: during a drain — when watching
    // pendingRequests fall to 0 is the point — a new subscriber got nothing, while an older one went on ticking.
    let answer!: () => void;
    const { client } = await pair((m) => {
      answer = () => m.reply('done');
    });
    const reply = client.sendTo('server', 'slow');
    await until(() => answer !== undefined);
    const closing = client.close({ drain: 10_000 });
    const snapshot = await firstValueFrom(client.stats$);
    expect(snapshot.pendingRequests).toBe(1);
    const all = lastValueFrom(client.stats$.pipe(toArray()));
    answer();
    await expect(reply).resolves.toBe('done');
    await closing;
    expect((await all).length).toBeGreaterThanOrEqual(1);
    // Once closed, a subscriber gets no snapshot: it completes at once.
    await expect(lastValueFrom(client.stats$, { defaultValue: 'none' })).resolves.toBe('none');
  });

  it('a transport whose session fails to close: close() still ends the node (timers, streams, \'close\'), the failure reported', async () => {
    const failing: NodeTransport = {
      attach: () => ({
        serve: () => new Promise<string>(() => undefined),
        discover: () => ({ refresh: () => Promise.resolve(undefined), stop: () => undefined }),
        open: () => Promise.reject(new Error('no links here')),
        maxInstances: 1,
        close: () => Promise.reject(new Error('the broker would not let go')),
      }),
    };
    const n = node('lonely', { transport: failing });
    let completed = false;
    n.messages$.subscribe({ complete: () => (completed = true) });
    let closedEvent = false;
    n.on('close', () => (closedEvent = true));
    await n.close();
    expect(closedEvent).toBe(true);
    expect(completed).toBe(true);
    expect(n.errors.map((e) => e.message)).toContain('the broker would not let go');
    // A stats$ subscribed now completes at once (no timer left ticking).
    expect(await lastValueFrom(n.stats$.pipe(toArray()))).toEqual([]);
  });

  it('get(name) gives the socket sendTo(name) would use: a live connection of our server while the one we dialled reconnects', async () => {
    const a = node('a', { maxRetries: Infinity, retryTime: 20 });
    const b = node('b');
    b.on('message', (m) => m.reply('from b'));
    const proxy = await freezableProxy(await serveTcp(b));
    await a.connectTo('b', proxy.port, '127.0.0.1');
    await b.connectTo('a', await serveTcp(a), '127.0.0.1');
    await until(() => a.get('b')?.connected === true);
    await proxy.close(); // a's own connection to b is gone; b's to a stays
    await until(() => (a as unknown as { dialled: Map<string, { socket: { connected: boolean } }> }).dialled.get('b')?.socket.connected === false);
    await expect(a.sendTo('b', 'x')).resolves.toBe('from b');
    expect(a.get('b')?.connected).toBe(true);
    await expect(a.get('b')!.send('x')).resolves.toBe('from b');
  });
});
