import * as stream from 'node:stream';
import { Duplex } from 'node:stream';
import { ErrorCode } from '../../src';
import { spawnNode } from '../helpers/child';
import { closeAll, node, until } from '../helpers/net';

afterEach(closeAll);

/**
 * Two plain Duplex ends wired crosswise through PassThroughs (no createLinkPair, no setNoDelay, no net.Socket):
 * what one writes, the other reads, a turn of the event loop later. Plain JavaScript, so that the child process
 * below can run the same source.
 */
const DUPLEX_PAIR = `(${String.raw`({ Duplex, PassThrough }) => {
  const ab = new PassThrough();
  const ba = new PassThrough();
  const end = (readable, writable) => {
    const duplex = new Duplex({
      read() {
        let chunk;
        while ((chunk = readable.read()) !== null) if (!this.push(chunk)) return;
      },
      write(chunk, _encoding, callback) {
        writable.write(chunk, callback);
      },
      final(callback) {
        writable.end();
        callback();
      },
      destroy(error, callback) {
        writable.end();
        callback(error);
      },
    });
    readable.on('readable', () => duplex._read(0));
    readable.on('end', () => duplex.push(null));
    return duplex;
  };
  return [end(ba, ab), end(ab, ba)];
}`})`;
const makePair = (0, eval)(DUPLEX_PAIR) as (streams: typeof stream) => [Duplex, Duplex];
const duplexPair = () => makePair(stream);

describe('connectVia / acceptVia over a plain stream.Duplex', () => {
  it('connects, carries requests both ways, closes', async () => {
    const [a, b] = duplexPair();
    expect('setNoDelay' in a).toBe(false);
    const server = node('server');
    const client = node('client');
    for (const n of [server, client]) n.on('message', (m) => m.reply(`${n.name} got ${m.data}`));
    server.acceptVia(a);
    const socket = await client.connectVia('server', b);
    expect(socket.name).toBe('server');
    await expect(client.sendTo('server', 'ping')).resolves.toBe('server got ping');
    await until(() => server.get('client') !== undefined);
    await expect(server.sendTo('client', 'pong')).resolves.toBe('client got pong');
    await client.close();
    await server.close();
    expect(client.errors).toEqual([]);
  });

  it('frees the name when connectVia fails to start, and the next connectVia works', async () => {
    const [a, b] = duplexPair();
    const server = node('server');
    const client = node('client');
    server.acceptVia(a);
    // A stream that throws as soon as it is used: the link cannot start.
    const broken = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
    broken.on = () => {
      throw new Error('this stream cannot be listened to');
    };
    await expect(client.connectVia('server', broken)).rejects.toThrow('this stream cannot be listened to');
    expect(client.get('server')).toBeUndefined();
    await expect(client.connectVia('server', b)).resolves.toMatchObject({ name: 'server' });
  });

  it('a peer that closes the link: pending requests reject, the name is free again', async () => {
    const [a, b] = duplexPair();
    const server = node('server');
    const client = node('client');
    server.acceptVia(a);
    await client.connectVia('server', b);
    const pending = client.sendTo('server', 'never answered');
    a.destroy();
    await expect(pending).rejects.toMatchObject({ code: ErrorCode.PEER_DISCONNECTED });
    await until(() => client.get('server') === undefined);
  });

  it('an error on the Duplex after close() does not crash the process (child process)', async () => {
    const script = `
      const { Node } = require('./dist');
      const duplexPair = () => ${DUPLEX_PAIR}(require('node:stream'));
      (async () => {
        const [a, b] = duplexPair();
        const server = new Node('server');
        const client = new Node('client');
        server.on('message', (m) => m.reply('ok'));
        server.acceptVia(a);
        await client.connectVia('server', b);
        console.log('reply', await client.sendTo('server', 'x'));
        await client.close();
        await server.close();
        a.destroy(new Error('late failure of a'));
        b.destroy(new Error('late failure of b'));
        setTimeout(() => console.log('survived'), 50);
      })().catch((error) => { console.error('failed', error); process.exit(2); });
    `;
    const child = spawnNode(['-e', script]);
    const { code } = await child.exited;
    expect(child.output()).toContain('reply ok');
    expect(child.output()).toContain('survived');
    expect(code).toBe(0);
  });
});
