// Review as an RxJS power user (and a careless one): Observable contracts of request$/messages$/stream(), and
// callbacks that re-enter the node. Every probe here once failed. Over the in-memory link and a real TCP connection.
import { asyncScheduler, config, firstValueFrom, type Observable, from, lastValueFrom, share, shareReplay, toArray } from 'rxjs';
import { createLinkPair, ErrorCode, type NodeMessage } from '../../src';
import { testScheduler } from '../helpers/marbles';
import { closeAll, link, node, until, type Transport } from '../helpers/net';

afterEach(closeAll);

async function pair(kind: Transport, handle?: (m: NodeMessage) => void) {
  const server = node('hub', { heartbeatInterval: 0 });
  const client = node('client', { heartbeatInterval: 0 });
  if (handle) server.on('message', handle);
  await link(server, client, kind);
  return { server, client };
}

describe.each<Transport>(['link', 'tcp'])('message.stream() of one value that happens to be iterable (%s)', (kind) => {
  // A string is an iterable of its characters, a Buffer or typed array one of its bytes: streamed as such, the
  // requester got 'h', 'e'… (sendTo: 'h') or 104, 105… (sendTo: 104) — a silently changed value, one frame per byte.
  const values: Array<[string, unknown]> = [
    ['a string', 'hello'],
    ['a Buffer', Buffer.from('hi')],
    ['a Uint8Array', new Uint8Array([1, 2])],
    ['a Float64Array', new Float64Array([1.5])],
  ];
  it.each(values)('%s is refused with a TypeError (the requester gets it), not split into characters or bytes', async (_, value) => {
    const thrown: unknown[] = [];
    const { client } = await pair(kind, (m) => {
      try {
        m.stream(value as Iterable<unknown>);
      } catch (error) {
        thrown.push(error);
      }
    });
    const expected = { code: ErrorCode.REMOTE, remoteName: 'TypeError', message: expect.stringContaining('reply(value)') };
    await expect(lastValueFrom(client.request$('hub', 'x').pipe(toArray()))).rejects.toMatchObject(expected);
    await expect(client.sendTo('hub', 'x')).rejects.toMatchObject(expected);
    expect(thrown).toEqual([expect.any(TypeError), expect.any(TypeError)]);
  });

  it('an explicit stream of them still works: from(string) (an Observable), an array of Buffers', async () => {
    const { client } = await pair(kind, (m) => m.stream(m.data === 'chars' ? from('hi') : [Buffer.from('a'), Buffer.from('b')]));
    await expect(lastValueFrom(client.request$('hub', 'chars').pipe(toArray()))).resolves.toEqual(['h', 'i']);
    await expect(lastValueFrom(client.request$('hub', 'buffers').pipe(toArray()))).resolves.toEqual([Buffer.from('a'), Buffer.from('b')]);
  });
});

describe('what the README says of subscribers (documented behaviour, pinned)', () => {
  afterEach(() => {
    config.onUnhandledError = null;
  });

  it.each<Transport>(['link', 'tcp'])('a throwing messages$ subscriber goes to RxJS (onUnhandledError), its requester is not answered; a throwing listener is (%s)', async (kind) => {
    const unhandled: unknown[] = [];
    config.onUnhandledError = (error) => unhandled.push(error);
    const { server, client } = await pair(kind);
    const subscription = server.messages$.subscribe(() => {
      throw new Error('subscriber threw');
    });
    await expect(client.sendTo('hub', 'x', { timeout: 100 })).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
    await until(() => unhandled.length === 1);
    expect(unhandled).toEqual([expect.objectContaining({ message: 'subscriber threw' })]);
    expect(server.errors).toEqual([]);
    subscription.unsubscribe();
    server.on('message', () => {
      throw new Error('listener threw');
    });
    await expect(client.sendTo('hub', 'x', { timeout: 1000 })).rejects.toMatchObject({ code: ErrorCode.REMOTE, message: 'listener threw' });
    expect(server.errors).toEqual([expect.objectContaining({ message: 'listener threw' })]);
  });

  it('over a link an answer ready at once arrives within subscribe(): share() asks again, shareReplay keeps it; over TCP share() shares', async () => {
    for (const [kind, shared] of [['link', [1, 2]], ['tcp', [1, 1]]] as const) {
      let n = 0;
      const { client } = await pair(kind, (m) => m.reply(++n));
      const s$ = client.request$('hub', 'q').pipe(share());
      expect(await Promise.all([firstValueFrom(s$), firstValueFrom(s$)])).toEqual(shared);
      const r$ = client.request$('hub', 'q').pipe(shareReplay(1));
      const next = n + 1;
      expect(await Promise.all([firstValueFrom(r$), firstValueFrom(r$)])).toEqual([next, next]);
      expect(n).toBe(next);
      await closeAll();
    }
  });

  it('the streams are hot: a late subscriber sees what comes next only; after close() it is completed at once', async () => {
    const { server, client } = await pair('link', (m) => m.reply('ok'));
    const late: string[] = [];
    server.connections$.subscribe((socket) => late.push(socket.name));
    await client.sendTo('hub', 'x');
    expect(late).toEqual([]);
    expect(server.get('client')?.connected).toBe(true);
    await server.close();
    const done: string[] = [];
    const streams: Array<[string, Observable<unknown>]> = [['messages$', server.messages$], ['connections$', server.connections$], ['disconnections$', server.disconnections$]];
    for (const [name, stream$] of streams) stream$.subscribe({ complete: () => done.push(name) });
    expect(done).toEqual(['messages$', 'connections$', 'disconnections$']);
  });
});

describe('an in-memory link whose reader throws into the writer', () => {
  // The throw unwound out of LinkSocket#_write before its callback: that Writable stayed 'writing' for ever, every
  // later frame queued behind it — a link that still looked connected, where every request timed out, silently.
  async function linked() {
    const server = node('hub', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0 });
    server.on('message', (m) => m.reply('pong'));
    const [a, b] = createLinkPair();
    server.acceptVia(a);
    await client.connectVia('hub', b);
    return { server, client, a, b };
  }

  it('a data listener that throws once: the link ends, loudly (disconnect, then NOT_CONNECTED), instead of hanging', async () => {
    const { server, client, b } = await linked();
    let thrown = false;
    b.on('data', () => {
      if (thrown) return;
      thrown = true;
      throw new Error('reader threw');
    });
    let disconnected = false;
    client.once('disconnect', () => (disconnected = true));
    // The listener runs after the node's own: this answer got through, the link is broken after it.
    await expect(client.sendTo('hub', 'ping', { timeout: 2000 })).resolves.toBe('pong');
    await until(() => disconnected, 5000, "the client's 'disconnect'");
    await expect(client.sendTo('hub', 'ping', { timeout: 2000 })).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED });
    await until(() => server.get('client') === undefined);
    // Not swallowed: the reader's error is the cause of the end, reported on both sides.
    expect(client.errors.concat(server.errors).map((e) => (e as Error & { cause?: Error }).cause?.message ?? e.message)).toContain('reader threw');
  });
});

describe('the scheduler option (marble tests) and one-way request$', () => {
  // Without the option a one-way request$ the socket takes at once emits and completes synchronously; with it
  // (the mode marble tests use) it went through a Promise: emitted on a microtask, after TestScheduler#run had
  // flushed — the same marble passed or failed depending on the option.
  it.each([
    ['without', undefined],
    ['with', asyncScheduler],
  ])('%s the scheduler option, request$(…, { receptive: false }) over a link is "(a|)" in virtual time', async (_, scheduler) => {
    const server = node('hub', { heartbeatInterval: 0 });
    const client = node('client', { heartbeatInterval: 0, scheduler });
    const received: unknown[] = [];
    server.on('message', (m) => received.push(m.data));
    await link(server, client, 'link');
    testScheduler().run(({ expectObservable }) => {
      expectObservable(client.request$('hub', 'fire', { receptive: false })).toBe('(a|)', { a: undefined });
    });
    expect(received).toEqual(['fire']);
  });
});
