/**
 * Review probes of the documentation: README.md, PROTOCOL.md, SECURITY.md, the TSDoc of the public API and
 * `examples/`, used as written — and with the mistakes careless users make (a host without a port, a node reused
 * after `close()`, a second `serve` after a failed one…). Each probe that failed when written is marked
 * `(was broken)` in its title.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { ErrorCode } from '../../src';
import { closeAll, node, serveTcp } from '../helpers/net';

afterEach(closeAll);

describe('serve', () => {
  it('(was broken) a serve whose listen failed (EADDRINUSE) leaves the node free to serve again', async () => {
    const busy = node('busy');
    const port = await serveTcp(busy);
    const server = node('server');
    server.serve('server', port, '127.0.0.1');
    await once(server, 'error');
    expect(server.server).toBeNull();
    expect(server.serverName).toBeNull();
    server.serve('server', 0, '127.0.0.1');
    const [address] = (await once(server, 'listening')) as [AddressInfo];
    expect(address.port).toBeGreaterThan(0);
    expect(server.serverName).toBe('server');
    expect(() => server.serve('server', 0)).toThrow(expect.objectContaining({ code: ErrorCode.ALREADY_CONNECTED }));
  });
});
