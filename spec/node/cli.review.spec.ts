// A review of the node as a daemon and the short-lived CLIs that talk to it use it, carelessly: each CLI a real
// child process. Each test marked "(was broken)" failed before its fix; the others pin down what held.
import { join } from 'node:path';
import { type NodeMessage } from '../../src';
import { cleanUp, exitWithin, ROOT, spawnNode, type Child } from '../helpers/child';
import { node, serveTcp, until } from '../helpers/net';

afterEach(cleanUp);

/** spec/fixtures/cli-review.js in a child process. */
const fixture = (...args: string[]): Child => spawnNode([join(ROOT, 'spec', 'fixtures', 'cli-review.js'), ...args]);

describe('a CLI that exits at once', () => {
  it('(was broken) `await sendTo(…, { receptive: false })` then process.exit(): the message reaches the daemon (it was lost: still packed for the end of the tick)', async () => {
    const daemon = node('daemon');
    const received: unknown[] = [];
    daemon.on('message', (message: NodeMessage) => received.push(message.data));
    const port = await serveTcp(daemon);
    const clis = [fixture('send-exit', String(port), 'one'), fixture('send-exit', String(port), 'two')];
    for (const cli of clis) expect(await exitWithin(cli, 10_000)).toEqual({ code: 0, signal: null });
    await until(() => received.length === 2, 5000, 'both messages');
    expect(received.sort()).toEqual(['one', 'two']);
  });

  it('(was broken) a responder that calls process.exit() right after message.reply(): the requester gets the reply (it got ERR_IPC_PEER_DISCONNECTED)', async () => {
    const daemon = node('daemon');
    const port = await serveTcp(daemon);
    const worker = fixture('reply-exit', String(port));
    await worker.waitFor('"connected"');
    await expect(daemon.sendTo('worker', 7, { timeout: 5000 })).resolves.toBe('done 7');
    expect(await exitWithin(worker, 10_000)).toEqual({ code: 0, signal: null });
  });
});
