import { asyncScheduler, finalize, interval, map, take } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { createLinkPair, ErrorCode } from '../../src';
import { closeAll, node } from '../helpers/net';

afterEach(closeAll);

async function linked() {
  const server = node('server', { heartbeatInterval: 0 });
  // request$ timeouts on RxJS's async scheduler, which TestScheduler#run turns into virtual time.
  const client = node('client', { heartbeatInterval: 0, scheduler: asyncScheduler });
  const [a, b] = createLinkPair();
  server.acceptVia(a);
  const socket = await client.connectVia('server', b);
  return { server, client, socket };
}

describe('in-memory links (createLinkPair)', () => {
  it('connects two nodes without a socket: handshake, requests both ways, events', async () => {
    const { server, client, socket } = await linked();
    expect(socket.name).toBe('server');
    expect(server.get('client')?.connected).toBe(true);
    server.on('message', (m) => m.reply(`server got ${m.data}`));
    client.on('message', (m) => m.reply(`client got ${m.data}`));
    await expect(client.sendTo('server', 1)).resolves.toBe('server got 1');
    await expect(server.sendTo('client', 2)).resolves.toBe('client got 2');
  });

  it('drives a streamed reply, its timeout and its cancellation in virtual time', async () => {
    const { server, client } = await linked();
    let finalized = false;
    server.on('message', (m) =>
      m.stream(
        interval(10).pipe(
          map((i) => `${m.data}-${i}`),
          finalize(() => (finalized = true)),
        ),
      ),
    );
    const scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    scheduler.run(({ expectObservable }) => {
      expectObservable(client.request$('server', 'tick').pipe(take(3))).toBe('10ms a 9ms b 9ms (c|)', {
        a: 'tick-0',
        b: 'tick-1',
        c: 'tick-2',
      });
    });
    expect(finalized).toBe(true);
    // A TestScheduler keeps its clock between runs: a fresh one starts at frame 0 again.
    new TestScheduler((actual, expected) => expect(actual).toEqual(expected)).run(({ expectObservable }) => {
      server.removeAllListeners('message');
      server.on('message', () => undefined); // never answers
      expectObservable(client.request$('server', 'silence', { timeout: 50 })).toBe(
        '50ms #',
        undefined,
        expect.objectContaining({ code: ErrorCode.TIMEOUT }),
      );
    });
  });

  it('closing one side disconnects the other; no reconnection', async () => {
    const { server, client } = await linked();
    const gone = new Promise((resolve) => client.once('disconnect', resolve));
    await server.close();
    await gone;
    expect(client.get('server')).toBeUndefined();
  });
});
