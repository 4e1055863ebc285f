// maxHandshaking: a flood of connections that never say hello costs at most that many, and a real client still
// gets in. Before it, each silent connection was held until handshakeTimeout (10 s by default), without a cap, over
// TCP, Unix sockets and acceptVia (a transport's links were capped, by refusing the new ones).
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { createLinkPair, ErrorCode, HandshakeError } from '../../src';
import { closeAll, node, serveTcp, until } from '../helpers/net';
import { closed, rawClient } from '../helpers/raw';

afterAll(closeAll);

const opened: Socket[] = [];
afterEach(() => opened.splice(0).forEach((s) => s.destroy()));

/** `n` TCP connections to `port` that send nothing, each open once this resolves. */
async function silent(port: number, n: number): Promise<Socket[]> {
  const sockets = Array.from({ length: n }, () => rawClient(port));
  opened.push(...sockets);
  await Promise.all(sockets.map((s) => (s.connecting ? once(s, 'connect') : undefined)));
  return sockets;
}

describe('maxHandshaking', () => {
  it('a flood of silent TCP connections: at most maxHandshaking wait, the longest-waiting are dropped at once, a real client gets in', async () => {
    const hub = node('hub', { maxHandshaking: 8, handshakeTimeout: 60_000, heartbeatInterval: 0 });
    hub.on('message', (m) => m.reply(`hi ${m.from}`));
    const port = await serveTcp(hub);
    const first = await silent(port, 8);
    await until(() => hub.stats().handshaking === 8);
    const more = await silent(port, 42);
    // The 42 that came later each dropped one that waited longer: the first 8, then the first 34 of themselves.
    await Promise.all([...first, ...more.slice(0, 34)].map(closed));
    await until(() => hub.stats().handshaking === 8);
    expect(more.slice(34).every((s) => !s.destroyed)).toBe(true);
    // One error per dropped connection, once its socket closed: a retryable ERR_IPC_HANDSHAKE that says why.
    await until(() => hub.errors.length === 42, 2000, '42 errors');
    for (const error of hub.errors) {
      expect(error).toBeInstanceOf(HandshakeError);
      expect(error).toMatchObject({ code: ErrorCode.HANDSHAKE, retryable: true });
      expect(error.message).toMatch(/dropped before its handshake .*8 peers already waited for their handshake with "hub" \(maxHandshaking/);
    }

    // A real client while silent connections keep coming: its handshake takes milliseconds, it is not the longest
    // waiting one for long.
    let flooding = true;
    const flood = (async () => {
      while (flooding) await silent(port, 4);
    })();
    const client = node('client');
    await client.connectTo('hub', port, '127.0.0.1');
    expect(await client.sendTo('hub', 'x')).toBe('hi client');
    flooding = false;
    await flood;
    expect(hub.stats().handshaking).toBeLessThanOrEqual(8);
    expect(client.errors).toEqual([]);
  });

  it('connections that finish their handshake never count: 20 clients connect one after the other under a cap of 2', async () => {
    const hub = node('hub', { maxHandshaking: 2 });
    hub.on('message', (m) => m.reply(m.from));
    const port = await serveTcp(hub);
    const clients = Array.from({ length: 20 }, (_, i) => node(`c${i}`));
    for (const c of clients) await c.connectTo('hub', port, '127.0.0.1');
    expect(await Promise.all(clients.map((c) => c.sendTo('hub', 'who')))).toEqual(clients.map((c) => c.name));
    expect(hub.errors).toEqual([]);
    expect(hub.stats().handshaking).toBe(0);
  });

  it('acceptVia links count too: the silent one makes room for a real client', async () => {
    const hub = node('hub', { maxHandshaking: 1, handshakeTimeout: 60_000 });
    hub.on('message', (m) => m.reply('ok'));
    // A link whose other end stays silent, then a real client over a second link: it drops the silent one.
    const [silentEnd, other] = createLinkPair();
    other.resume(); // it reads (and so sees its end), but never speaks
    hub.acceptVia(silentEnd);
    expect(hub.stats().handshaking).toBe(1);
    const [a, b] = createLinkPair();
    hub.acceptVia(a);
    await until(() => other.destroyed, 2000, 'the silent link dropped');
    const client = node('client');
    await client.connectVia('hub', b);
    expect(await client.sendTo('hub', 'x')).toBe('ok');
    expect(hub.errors.map((e) => (e as HandshakeError).code)).toEqual([ErrorCode.HANDSHAKE]);
  });

  it('close() while dropped connections are still closing: it waits for them, nothing is reported after close', async () => {
    const hub = node('hub', { maxHandshaking: 1, handshakeTimeout: 60_000 });
    const port = await serveTcp(hub);
    await silent(port, 30);
    await until(() => hub.errors.length >= 1, 2000, 'a first drop');
    let afterClose = 0;
    await hub.close();
    hub.on('error', () => afterClose++);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(afterClose).toBe(0);
    expect(hub.stats().handshaking).toBe(0);
  });

  it('over TLS, clients silent in their TLS handshake count as well: the longest-waiting are dropped, a real client gets in', async () => {
    const pem = (file: string) => readFileSync(join(__dirname, '..', 'fixtures', 'tls', file));
    const ca = pem('ca.pem');
    const hub = node('hub', { maxHandshaking: 4, handshakeTimeout: 60_000, tls: { key: pem('server-key.pem'), cert: pem('server-cert.pem'), ca } });
    hub.on('message', (m) => m.reply('secure'));
    const port = await serveTcp(hub);
    const sockets = await silent(port, 24);
    await Promise.all(sockets.slice(0, 20).map(closed));
    expect(sockets.slice(20).every((s) => !s.destroyed)).toBe(true);
    await until(() => hub.errors.length === 20, 2000, '20 errors');
    for (const error of hub.errors) {
      expect(error).toMatchObject({ code: ErrorCode.HANDSHAKE, retryable: true, message: expect.stringMatching(/dropped in its TLS handshake .*4 peers already waited/) });
    }
    const client = node('client', { tls: { ca } });
    await client.connectTo('hub', port, '127.0.0.1');
    expect(await client.sendTo('hub', 'x')).toBe('secure');
  });

  it('Infinity: no cap (every silent connection waits for its handshakeTimeout)', async () => {
    const hub = node('hub', { maxHandshaking: Infinity, handshakeTimeout: 60_000 });
    const port = await serveTcp(hub);
    await silent(port, 40);
    await until(() => hub.stats().handshaking === 40);
    expect(hub.errors).toEqual([]);
  });
});
