// A review of the node as a daemon and the short-lived CLIs that talk to it use it, carelessly: each CLI a real
// child process. Each test marked "(was broken)" failed before its fix; the others pin down what held.
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { ErrorCode, type IpcError, type NodeMessage } from '../../src';
import { cleanUp, exitWithin, ROOT, spawnNode, type Child } from '../helpers/child';
import { node, serveTcp, socketPath, until } from '../helpers/net';

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

describe('a daemon serving on a Unix socket path', () => {
  const unix = process.platform === 'win32' ? describe.skip : describe;

  unix('in a folder that does not exist', () => {
    /** The first 'error' of a node serving on `path`. */
    const serveError = async (path: string) => {
      const daemon = node('daemon');
      daemon.serve('daemon', path);
      await until(() => daemon.errors.length > 0, 5000, "serve's error");
      return daemon.errors[0] as NodeJS.ErrnoException;
    };

    it('(was broken) is an ENOENT error naming the folder (it was EACCES, "permission denied", even for root)', async () => {
      const folder = join(dirname(socketPath()), 'missing');
      const error = await serveError(join(folder, 'daemon.sock'));
      expect(error.code).toBe('ENOENT');
      expect(error.message).toContain(`the folder ${folder} does not exist`);
      expect((error.cause as NodeJS.ErrnoException).code).toBe('EACCES');
    });

    it("(was broken) a path starting with '~' says that '~' is not expanded", async () => {
      const error = await serveError('~/no-such-folder-for-ipc-link-core/daemon.sock');
      expect(error.code).toBe('ENOENT');
      expect(error.message).toMatch(/'~' is not expanded: use os\.homedir\(\)/);
    });
  });

  it("(was broken, child process) a daemon without an 'error' listener that cannot listen dies of the error (it exited 0 in silence)", async () => {
    const path = socketPath();
    const first = node('daemon');
    first.serve('daemon', path);
    await once(first, 'listening');
    for (const where of [path, join(dirname(path), 'missing', 'daemon.sock')]) {
      const second = fixture('serve-quiet', where);
      expect(await exitWithin(second, 10_000)).toEqual({ code: 1, signal: null });
      expect(second.output()).toMatch(where === path ? /EADDRINUSE/ : /the folder .* does not exist/);
      expect(second.output()).not.toContain('"listening"');
    }
  });

  it('a daemon started twice on one path: the second gets EADDRINUSE, the first keeps serving', async () => {
    const path = socketPath();
    const first = node('daemon');
    first.on('message', (m: NodeMessage) => m.reply('first'));
    first.serve('daemon', path);
    await once(first, 'listening');
    const second = fixture('serve', path);
    await second.waitFor('"error"');
    expect(second.output()).toContain('"code":"EADDRINUSE"');
    expect(await exitWithin(second, 10_000)).toEqual({ code: 0, signal: null });
    const cli = node('cli');
    await cli.connectTo('daemon', path);
    await expect(cli.sendTo('daemon', 'x')).resolves.toBe('first');
  });
});

describe('CLIs that all call themselves "cli"', () => {
  it('(was broken) the refusal says what to do: give each process a name of its own', async () => {
    const daemon = node('daemon');
    const port = await serveTcp(daemon);
    await node('cli').connectTo('daemon', port, '127.0.0.1');
    const error = (await node('cli').connectTo('daemon', port, '127.0.0.1').catch((e: unknown) => e)) as IpcError;
    expect(error.code).toBe(ErrorCode.NAME_IN_USE);
    expect(error.message).toContain('A peer named "cli" is already connected to "daemon"');
    expect(error.message).toMatch(/give each process a name of its own \(say, `cli-\$\{process\.pid\}`\)/);
  });
});
