import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { ErrorCode, type Node } from '../../src';
import { closeAll, node, until } from '../helpers/net';

afterEach(closeAll);

const dir = join(__dirname, '..', 'fixtures', 'tls');
const pem = (file: string) => readFileSync(join(dir, file));
const ca = pem('ca.pem');
const server = { key: pem('server-key.pem'), cert: pem('server-cert.pem'), ca };
const client = { key: pem('client-key.pem'), cert: pem('client-cert.pem'), ca };

async function serveTls(n: Node): Promise<number> {
  n.serve(n.name, 0, '127.0.0.1');
  await once(n, 'listening');
  return (n.server!.address() as AddressInfo).port;
}

describe('TLS', () => {
  it('serves and connects over TLS with the same API', async () => {
    const hub = node('hub', { tls: server });
    hub.on('message', (m) => m.reply(`secure ${m.data}`));
    const port = await serveTls(hub);
    const leaf = node('leaf', { tls: { ca } });
    const socket = await leaf.connectTo('hub', port, '127.0.0.1');
    expect(socket.connection?.socket.constructor.name).toBe('TLSSocket');
    await expect(leaf.sendTo('hub', 'hello')).resolves.toBe('secure hello');
    await expect(hub.sendTo('leaf', 'x', { timeout: 200 })).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
  });

  it('carries large and small payloads both ways (the client reads TLS through its FrameReader)', async () => {
    const hub = node('hub', { tls: server });
    const leaf = node('leaf', { tls: { ca } });
    for (const n of [hub, leaf]) n.on('message', (m) => m.reply(m.data));
    const port = await serveTls(hub);
    await leaf.connectTo('hub', port, '127.0.0.1');
    const payloads = [0, 10, 40_000, 300_000, 3 * 1024 * 1024].map((size) => Buffer.alloc(size, size & 0xff));
    for (const [from, to] of [[leaf, 'hub'], [hub, 'leaf']] as const) {
      const replies = await Promise.all(payloads.map((p) => from.sendTo<Buffer>(to, p)));
      replies.forEach((reply, i) => expect(Buffer.compare(reply, payloads[i])).toBe(0));
    }
  });

  it('refuses a server whose certificate it does not trust, finally', async () => {
    const hub = node('hub', { tls: server });
    const port = await serveTls(hub);
    const leaf = node('leaf', { tls: { ca: pem('rogue-ca.pem') }, maxRetries: Infinity, retryTime: 10 });
    const error = await leaf.connectTo('hub', port, '127.0.0.1').catch((e: Error) => e);
    expect(String((error as NodeJS.ErrnoException).code)).toMatch(/CERT|SIGNATURE|UNABLE/);
    expect(leaf.get('hub')).toBeUndefined();
  });

  describe('mutual TLS (requestCert)', () => {
    const mtls = { ...server, requestCert: true, rejectUnauthorized: true };

    it('admits a client certificate signed by the CA', async () => {
      const hub = node('hub', { tls: mtls });
      hub.on('message', (m) => m.reply('mutual'));
      const port = await serveTls(hub);
      const leaf = node('leaf', { tls: client });
      await leaf.connectTo('hub', port, '127.0.0.1');
      await expect(leaf.sendTo('hub', 'x')).resolves.toBe('mutual');
    });

    it.each([
      ['no client certificate', { ca }],
      ['a certificate from another CA', { ca, key: pem('rogue-key.pem'), cert: pem('rogue-cert.pem') }],
    ])('refuses %s: no connection, the server goes on', async (_, tlsOptions) => {
      const hub = node('hub', { tls: mtls });
      const connections: string[] = [];
      hub.on('connection', (name) => connections.push(name));
      const port = await serveTls(hub);
      const leaf = node('intruder', { tls: tlsOptions, maxRetries: 2, retryTime: 10 });
      await expect(leaf.connectTo('hub', port, '127.0.0.1')).rejects.toBeDefined();
      await until(() => hub.errors.length > 0);
      expect(connections).toEqual([]);
      const good = node('leaf', { tls: client });
      await good.connectTo('hub', port, '127.0.0.1');
      await until(() => connections.length > 0);
      expect(connections).toEqual(['leaf']);
    });
  });
});
