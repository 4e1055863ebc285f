// A review of the node as fleets of cooperating processes use it — bot shards, workers, daemons and their CLIs —
// carelessly and with hostile peers. Each test marked "(was broken)" failed before its fix; the others pin down
// what held under the same attack.
import { once } from 'node:events';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Node, type IpcError } from '../../src';
import { cleanUp } from '../helpers/child';
import { node, socketPath } from '../helpers/net';

afterEach(cleanUp);

const codeOf = (error: unknown) => (error as IpcError).code;

describe('Unix socket paths', () => {
  /** The longest path the kernel takes whole (`sun_path`): 108 bytes on Linux, 104 on macOS and the BSDs. */
  const LIMIT = process.platform === 'linux' ? 108 : 104;
  /** A path of exactly `bytes` bytes in a fresh temporary folder. */
  const pathOf = (bytes: number) => {
    const dir = dirname(socketPath());
    return join(dir, 's'.repeat(bytes - dir.length - 1));
  };
  const unix = process.platform === 'win32' ? describe.skip : describe;

  unix('longer than the kernel takes', () => {
    it('(was broken) serve refuses a path Node would cut short (a restarted service then failed with EADDRINUSE for ever)', async () => {
      const path = pathOf(LIMIT + 20);
      const hub = node('hub');
      // Node silently bound the first LIMIT bytes: another file, which close() left behind (it unlinks the path it
      // was given), so the same service serving again found its own leftover: EADDRINUSE, never replaced.
      expect(() => hub.serve('hub', path)).toThrow(TypeError);
      expect(() => hub.serve('hub', path)).toThrow(new RegExp(`serve: path is ${LIMIT + 20} bytes long: a Unix socket path can be at most ${LIMIT} bytes`));
      expect(() => hub.serve('hub', { path })).toThrow(/serve: options\.path is \d+ bytes long/);
      expect(readdirSync(dirname(path))).toEqual([]);
      expect(hub.server).toBeNull();
      // Nothing was started: the node may serve again, on a path that fits.
      const fits = pathOf(LIMIT);
      hub.serve('hub', fits);
      await once(hub, 'listening');
      expect(existsSync(fits)).toBe(true);
    });

    it('(was broken) connectTo rejects a path Node would cut short with a TypeError (it dialled whatever the first bytes named)', async () => {
      // (It retried for ever, silently: ENOENT, or ECONNREFUSED from a file of the cut name.)
      const leaf = node('leaf', { maxRetries: 3, retryTime: 10 });
      const path = pathOf(LIMIT + 1);
      await expect(leaf.connectTo('hub', path)).rejects.toThrow(new RegExp(`connectTo: path is ${LIMIT + 1} bytes long: a Unix socket path can be at most ${LIMIT} bytes`));
      await expect(leaf.connectTo('hub', { path })).rejects.toThrow(TypeError);
      // Bytes, not characters: 'é' is two.
      await expect(leaf.connectTo('hub', pathOf(LIMIT - 1) + 'é')).rejects.toThrow(/bytes long/);
      expect(leaf.get('hub')).toBeUndefined();
    });

    it('a path of exactly the limit: serve, connect, close, and serve again after a restart', async () => {
      const path = pathOf(LIMIT);
      for (let round = 0; round < 2; round++) {
        const hub = new Node('hub');
        const errors: string[] = [];
        hub.on('error', (error) => errors.push(codeOf(error) ?? String(error)));
        hub.on('message', (m) => m.reply(`round ${round}`));
        hub.serve('hub', path);
        await once(hub, 'listening');
        const leaf = new Node('leaf', { maxRetries: 0 });
        await leaf.connectTo('hub', path);
        await expect(leaf.sendTo('hub', 'x')).resolves.toBe(`round ${round}`);
        await Promise.all([leaf.close(), hub.close()]);
        expect(errors).toEqual([]);
      }
    });
  });
});
