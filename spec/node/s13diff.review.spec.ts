// Review of the s13 changes (maxHandshaking, iterators cancelled once garbage-collected): a failing case fixed,
// and guards for what could have gone wrong (established TLS clients counted, iterators in use cancelled by GC).
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { from, lastValueFrom, map, timer, toArray } from 'rxjs';
import { pullEach } from '../../src';
import { closeAll, counting, delay, link, node, serveTcp, type Transport } from '../helpers/net';
import { closed, rawClient } from '../helpers/raw';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

afterEach(closeAll);
const opened: Socket[] = [];
afterEach(() => opened.splice(0).forEach((s) => s.destroy()));

const pem = (file: string) => readFileSync(join(__dirname, '..', 'fixtures', 'tls', file));

/** GC often while `work` runs. */
async function gcWhile<T>(work: Promise<T>): Promise<T> {
  let done = false;
  const result = work.finally(() => (done = true));
  while (!done) {
    gc();
    await delay(5);
  }
  return result;
}

describe('maxHandshaking: peers that break the handshake', () => {
  it('garbage senders that never read (their connection closing, its FIN awaited): dropped at once, not held for the close grace', async () => {
    const hub = node('hub', { maxHandshaking: 2, handshakeTimeout: 60_000, heartbeatInterval: 0 });
    const port = await serveTcp(hub);
    for (let i = 0; i < 20; i++) {
      // Paused: it never reads the server's CLOSE nor its FIN, so the server's socket waits for ours (2 s).
      const s = connect(port, '127.0.0.1').on('error', () => undefined).pause();
      opened.push(s);
      await once(s, 'connect');
      s.write(Buffer.alloc(64, 0xff));
      await delay(5);
    }
    await delay(200);
    const held = await new Promise<number>((resolve) => (hub.server as Server).getConnections((_error, n) => resolve(n)));
    // Before: all 20 held (each for 2 s) under a cap of 2, and stats().handshaking said 2.
    expect(held).toBeLessThanOrEqual(2);
    expect(hub.stats().handshaking).toBeLessThanOrEqual(2);
  });
});

describe('maxHandshaking over TLS', () => {
  it('clients that finished their TLS handshake never count: 6 connect one after the other under a cap of 1, then silent ones come', async () => {
    const ca = pem('ca.pem');
    const hub = node('hub', { maxHandshaking: 1, handshakeTimeout: 60_000, tls: { key: pem('server-key.pem'), cert: pem('server-cert.pem'), ca } });
    hub.on('message', (m) => m.reply(m.from));
    const port = await serveTcp(hub);
    const clients = Array.from({ length: 6 }, (_, i) => node(`c${i}`, { tls: { ca }, heartbeatInterval: 0 }));
    for (const c of clients) await c.connectTo('hub', port, '127.0.0.1');
    const silent = Array.from({ length: 5 }, () => rawClient(port));
    opened.push(...silent);
    await Promise.all(silent.slice(0, 4).map(closed));
    expect(await Promise.all(clients.map((c) => c.sendTo('hub', 'who')))).toEqual(clients.map((c) => c.name));
    expect(clients.flatMap((c) => c.errors)).toEqual([]);
  });
});

describe('iterators in use are never cancelled by a collection', () => {
  /** A hub streaming `count` values to whoever asks (`counting`), and a client linked to it over `transport`. */
  async function countingPair(count: number, transport: Transport) {
    const hub = node('hub', { heartbeatInterval: 0 });
    const { state, handle } = counting(count);
    hub.on('message', handle);
    const client = node('client', { heartbeatInterval: 0 });
    await link(hub, client, transport);
    return { client, state };
  }

  it('for await with a slow body, GC all along', async () => {
    const { client, state } = await countingPair(40, 'tcp');
    const got = await gcWhile(
      (async () => {
        const out: number[] = [];
        for await (const v of client.iterate<number>('hub', 'go', { window: 2 })) {
          out.push(v);
          await delay(3);
        }
        return out;
      })(),
    );
    expect(got).toHaveLength(40);
    expect(state.finished).toBe(true);
  });

  it('pullEach with slow work, GC all along', async () => {
    const { client } = await countingPair(30, 'tcp');
    const got = await gcWhile(lastValueFrom(pullEach(client.iterate<number>('hub', 'go', { window: 2 }), (v) => timer(3).pipe(map(() => v))).pipe(toArray())));
    expect(got).toHaveLength(30);
  });

  it('rxjs from(), GC all along', async () => {
    const { client } = await countingPair(30, 'link');
    const got = await gcWhile(lastValueFrom(from(client.iterate<number>('hub', 'go', { window: 1 })).pipe(toArray())));
    expect(got).toHaveLength(30);
  });
});
