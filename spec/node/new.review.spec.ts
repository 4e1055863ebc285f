// Review of the latest features (GOAWAY drain, resume tokens, read yielding, tail slabs, exit flush, TLS checks),
// as careless and hostile users would use them. Each test marked "(was broken)" failed before its fix.
import { type NodeSocket } from '../../src';
import { closeAll, node, serveTcp, until } from '../helpers/net';

afterEach(closeAll);

/** Every socket of `n` (dialled and accepted), through the node's own accessor. */
const socketsOf = (n: object) => (n as { sockets(): NodeSocket[] }).sockets();

describe('close({ drain }) and GOAWAY', () => {
  it('(was broken) a peer connected both ways may still call back the draining node it owes an answer to', async () => {
    const x = node('x');
    const y = node('y');
    const portX = await serveTcp(x);
    const portY = await serveTcp(y);
    await x.connectTo('y', portY, '127.0.0.1');
    await y.connectTo('x', portX, '127.0.0.1');
    await until(() => socketsOf(x).length === 2 && socketsOf(y).length === 2);
    x.on('message', (m) => m.reply(`inner ${String(m.data)}`));
    y.on('message', async (m) => {
      // x drains now: its GOAWAY has reached every connection before y calls back, as its answer needs x's.
      await until(() => socketsOf(y).every((s) => s.connection?.goingAway === true), 5000, 'the GOAWAY');
      m.reply(await y.sendTo('x', 'call back').catch((e: Error) => `failed: ${(e as { code?: string }).code}`));
    });
    const outer = x.sendTo('y', 'outer');
    await until(() => socketsOf(y).some((s) => (s.connection?.inbound.size ?? 0) > 0));
    const closing = x.close({ drain: 10_000 });
    await expect(outer).resolves.toBe('inner call back');
    await closing;
  });
});
