// A review of servers and sockets that come and go, as daemons and their CLIs do, over TCP, Unix sockets and TLS:
// daemons restarted under a client that keeps sending, socket paths that are no socket, ports in use, short-lived
// CLI processes by the hundred, serve/close cycles. Each test marked "(was broken)" failed before its fix; the
// others pin down what held.
import { once } from 'node:events';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { ErrorCode, type IpcError, type Node, type NodeMessage, type NodeOptions } from '../../src';
import { cleanUp, exitWithin, ROOT, spawnNode, type Child } from '../helpers/child';
import { delay, node, socketPath, staleSocket, until } from '../helpers/net';

afterEach(cleanUp);

const unix = process.platform === 'win32' ? describe.skip : describe;
const pem = (file: string) => readFileSync(join(__dirname, '..', 'fixtures', 'tls', file));
const ca = pem('ca.pem');
const serverTls = { key: pem('server-key.pem'), cert: pem('server-cert.pem') };
/** Another certificate for the same names (localhost, 127.0.0.1), signed by another CA (`ca2.pem`). */
const serverTls2 = { key: pem('server2-key.pem'), cert: pem('server2-cert.pem') };
const fds = () => readdirSync('/proc/self/fd').length;

/** spec/fixtures/churn-review.js in a child process. */
const fixture = (...args: string[]): Child =>
  spawnNode([...(args[0] === 'daemon' ? ['--expose-gc'] : []), join(ROOT, 'spec', 'fixtures', 'churn-review.js'), ...args]);

/** The JSON lines a fixture printed. */
const events = (child: Child): Array<Record<string, unknown>> =>
  child
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

type Kind = 'tcp' | 'unix' | 'tls';

/** A daemon node: serves `where` (a path, or a port: 0 for any) and resolves with the address to dial. */
async function daemon(kind: Kind, where: string | number, options: NodeOptions = {}): Promise<{ node: Node & { errors: Error[] }; address: [string] | [number, string] }> {
  const n = node('daemon', { heartbeatInterval: 0, ...(kind === 'tls' ? { tls: serverTls } : {}), ...options });
  n.serve('daemon', ...(typeof where === 'string' ? [where] : [where, '127.0.0.1']));
  await once(n, 'listening');
  const address: [string] | [number, string] = typeof where === 'string' ? [where] : [(n.server!.address() as AddressInfo).port, '127.0.0.1'];
  return { node: n, address };
}

/** A client that reconnects quickly, counting its events. */
function reconnecting(name: string, options: NodeOptions = {}) {
  const n = node(name, { maxRetries: Infinity, retryTime: 10, maxRetryTime: 50, heartbeatInterval: 0, ...options });
  const seen = { connect: 0, disconnect: 0 };
  n.on('connect', () => seen.connect++);
  n.on('disconnect', () => seen.disconnect++);
  return Object.assign(n, { seen });
}

const codeOf = (error: unknown) => (error as IpcError).code ?? String(error);

describe('a daemon restarted under a client that keeps sending', () => {
  it.each(['tcp', 'unix', 'tls'] as const)(
    '(%s) closed and served again 3 times on the same address: every request settles long before its timeout, none is handled twice, the events balance, the slots are free',
    async (kind) => {
      const path = kind === 'unix' ? socketPath() : undefined;
      const handled = new Map<number, number>();
      const serveOnce = async (where: string | number) => {
        const d = await daemon(kind, where);
        d.node.on('message', (message: NodeMessage) => {
          handled.set(message.data as number, (handled.get(message.data as number) ?? 0) + 1);
          setTimeout(() => message.reply(message.data), 1);
        });
        return d;
      };
      let d = await serveOnce(path ?? 0);
      const where = path ?? (d.address[0] as number);
      const client = reconnecting('client', kind === 'tls' ? { tls: { ca } } : {});
      await client.connectTo('daemon', ...d.address);
      const outcomes: Record<string, number> = {};
      let slowest = 0;
      let sent = 0;
      let stop = false;
      const sending = (async () => {
        const all: Promise<void>[] = [];
        while (!stop) {
          const i = ++sent;
          const started = performance.now();
          all.push(
            client.sendTo('daemon', i, { timeout: 20_000 }).then(
              (reply) => {
                const key = reply === i ? 'answered' : `wrong answer ${String(reply)}`;
                outcomes[key] = (outcomes[key] ?? 0) + 1;
                slowest = Math.max(slowest, performance.now() - started);
              },
              (error) => {
                outcomes[codeOf(error)] = (outcomes[codeOf(error)] ?? 0) + 1;
                slowest = Math.max(slowest, performance.now() - started);
              },
            ),
          );
          if (i % 4 === 0) await delay(2);
        }
        await Promise.all(all);
      })();
      const serverErrors: Error[] = [];
      for (let restart = 0; restart < 3; restart++) {
        await delay(60);
        serverErrors.push(...d.node.errors);
        await d.node.close();
        d = await serveOnce(where);
        await until(() => client.seen.connect === restart + 2, 5000, `reconnection ${restart + 1}`);
      }
      await delay(60);
      stop = true;
      await sending;
      serverErrors.push(...d.node.errors);
      // Every request settled: answered, or refused at once (down), or lost with its connection — none waited for
      // its 20 s timeout, and nothing else happened to any.
      expect(Object.keys(outcomes).filter((o) => !['answered', ErrorCode.PEER_DISCONNECTED, ErrorCode.NOT_CONNECTED].includes(o))).toEqual([]);
      expect(Object.values(outcomes).reduce((a, b) => a + b, 0)).toBe(sent);
      expect(outcomes.answered).toBeGreaterThan(0);
      expect(slowest).toBeLessThan(5000);
      expect([...handled.values()].filter((times) => times > 1)).toEqual([]);
      expect(client.seen).toEqual({ connect: 4, disconnect: 3 });
      expect(client.errors).toEqual([]);
      expect(serverErrors).toEqual([]);
      expect(client.stats().pendingRequests).toBe(0);
      expect(d.node.stats()).toMatchObject({ pendingRequests: 0, handshaking: 0 });
      await expect(client.sendTo('daemon', -1)).resolves.toBe(-1);
    },
  );

  it.each(['tcp', 'unix'] as const)('(%s) the old daemon still draining (close({ drain })) when the new one serves on the same address: the new one listens at once, the client moves to it, the old one still answers what it had', async (kind) => {
    const old = await daemon(kind, kind === 'unix' ? socketPath() : 0);
    old.node.on('message', (message: NodeMessage) => setTimeout(() => message.reply(`old ${String(message.data)}`), 300));
    const client = reconnecting('client');
    await client.connectTo('daemon', ...old.address);
    const inFlight = client.sendTo('daemon', 'slow', { timeout: 10_000 });
    await delay(20);
    const draining = old.node.close({ drain: 10_000 });
    const fresh = node('daemon', { heartbeatInterval: 0 });
    fresh.on('message', (message: NodeMessage) => message.reply(`new ${String(message.data)}`));
    fresh.serve('daemon', ...old.address);
    await once(fresh, 'listening');
    await expect(inFlight).resolves.toBe('old slow');
    await draining;
    await until(() => client.get('daemon')?.connected === true, 5000, 'the client on the new daemon');
    await expect(client.sendTo('daemon', 'x')).resolves.toBe('new x');
    expect([client.errors, old.node.errors, fresh.errors]).toEqual([[], [], []]);
    expect(client.seen).toEqual({ connect: 2, disconnect: 1 });
  });

  it('(tls) served again with a new certificate: a client trusting its CA comes back; one that does not gives up once (ERR_IPC_TLS, one error event), its pending request rejected at once', async () => {
    for (const trusted of [true, false]) {
      const first = await daemon('tls', 0);
      first.node.on('message', () => undefined); // never answers: the request waits for the connection's end
      const client = reconnecting(`client-${String(trusted)}`, { tls: { ca: trusted ? [ca, pem('ca2.pem')] : ca } });
      await client.connectTo('daemon', ...first.address);
      const pending = client.sendTo('daemon', 'x', { timeout: 20_000 }).catch(codeOf);
      await delay(20);
      const closedAt = performance.now();
      await first.node.close();
      expect(await pending).toBe(ErrorCode.PEER_DISCONNECTED);
      expect(performance.now() - closedAt).toBeLessThan(3000);
      const second = await daemon('tls', first.address[0] as number, { tls: serverTls2 });
      second.node.on('message', (message: NodeMessage) => message.reply('renewed'));
      if (trusted) {
        await until(() => client.get('daemon')?.connected === true, 5000, 'the client back');
        await expect(client.sendTo('daemon', 'y')).resolves.toBe('renewed');
        expect(client.errors).toEqual([]);
      } else {
        await until(() => client.errors.length > 0, 5000, 'the refusal');
        await delay(300); // a storm would show here: the client retried every 10–50 ms
        expect(client.errors.map(codeOf)).toEqual([ErrorCode.TLS]);
        expect(client.get('daemon')).toBeUndefined();
        await expect(client.sendTo('daemon', 'y')).rejects.toMatchObject({ code: ErrorCode.NOT_CONNECTED });
      }
      expect(client.seen).toEqual({ connect: trusted ? 2 : 1, disconnect: 1 });
      expect(client.stats().pendingRequests).toBe(0);
      expect(second.node.errors).toEqual([]);
      await Promise.all([client.close(), second.node.close()]);
    }
  });
});

describe('addresses that are taken, or no socket', () => {
  it.each(['tcp', 'tls'] as const)('(%s) serve on a port in use: one EADDRINUSE error, no handle left, and the node serves on another port', async (kind) => {
    const squatter = createServer().listen(0, '127.0.0.1');
    await once(squatter, 'listening');
    const port = (squatter.address() as AddressInfo).port;
    try {
      const n = node('daemon', kind === 'tls' ? { tls: serverTls } : {});
      await delay(0);
      const before = fds();
      n.serve('daemon', port, '127.0.0.1');
      await until(() => n.errors.length > 0, 5000, 'the error');
      await delay(50);
      expect(n.errors.map((e) => [(e as NodeJS.ErrnoException).code, e.message])).toEqual([['EADDRINUSE', expect.stringContaining(`127.0.0.1:${port}`)]]);
      expect([n.server, n.serverName]).toEqual([null, null]);
      expect(fds()).toBeLessThanOrEqual(before);
      n.serve('daemon', 0, '127.0.0.1');
      const [address] = (await once(n, 'listening')) as [AddressInfo];
      const client = node('cli', kind === 'tls' ? { tls: { ca } } : {});
      n.on('message', (message: NodeMessage) => message.reply('here'));
      await client.connectTo('daemon', address.port, '127.0.0.1');
      await expect(client.sendTo('daemon', 'x')).resolves.toBe('here');
      expect(n.errors).toHaveLength(1);
    } finally {
      squatter.close();
    }
  });

  unix('Unix socket paths', () => {
    it('two nodes serving one fresh path at the same moment: one listens, the other gets EADDRINUSE; the winner takes the probe of the loser for nothing (no error, nothing handshaking) and serves', async () => {
      const path = socketPath();
      const [a, b] = [node('daemon'), node('daemon')];
      const listening: string[] = [];
      a.on('listening', () => listening.push('a'));
      b.on('listening', () => listening.push('b'));
      a.serve('daemon', path);
      b.serve('daemon', path);
      await until(() => listening.length + a.errors.length + b.errors.length === 2, 5000, 'both outcomes');
      await delay(100);
      expect(listening).toHaveLength(1);
      const [winner, loser] = listening[0] === 'a' ? [a, b] : [b, a];
      expect(winner.errors).toEqual([]);
      expect(loser.errors.map((e) => (e as NodeJS.ErrnoException).code)).toEqual(['EADDRINUSE']);
      expect(winner.stats()).toMatchObject({ handshaking: 0, peers: {} });
      winner.on('message', (message: NodeMessage) => message.reply('winner'));
      const client = node('cli');
      await client.connectTo('daemon', path);
      await expect(client.sendTo('daemon', 'x')).resolves.toBe('winner');
    });

    it('(was broken) a dangling symbolic link at the path: an error that says so (it was a bare EADDRINUSE, "address already in use", after 4 tries); link and target left alone', async () => {
      const path = socketPath();
      const target = join(dirname(path), 'gone.sock');
      symlinkSync(target, path);
      const n = node('daemon');
      n.serve('daemon', path);
      await until(() => n.errors.length > 0, 5000, 'the error');
      await delay(100);
      expect(n.errors).toHaveLength(1);
      expect(n.errors[0]).toMatchObject({ code: 'EADDRINUSE', message: expect.stringMatching(/it is a symbolic link \(to .*gone\.sock, where nothing is\), not a Unix socket/) });
      expect([lstatSync(path).isSymbolicLink(), readlinkSync(path), existsSync(target)]).toEqual([true, target, false]);
      expect(n.server).toBeNull();
    });

    it('(was broken) a symbolic link to a stale socket file: an error that says it is a link (it said "a file"); neither is removed', async () => {
      const path = socketPath();
      const target = join(dirname(path), 'stale.sock');
      await staleSocket(target);
      symlinkSync(target, path);
      const n = node('daemon');
      n.serve('daemon', path);
      await until(() => n.errors.length > 0, 5000, 'the error');
      expect(n.errors[0]).toMatchObject({ code: 'EADDRINUSE', message: expect.stringMatching(/it is a symbolic link \(to .*stale\.sock\), not a Unix socket/) });
      expect([lstatSync(path).isSymbolicLink(), lstatSync(target).isSocket()]).toEqual([true, true]);
    });

    it.each(['a file', 'a directory'] as const)('(was broken) connectTo a path that is %s, not a socket: ERR_IPC_CONNECT at once saying so, final even with maxRetries Infinity (it retried for ever, in silence: ECONNREFUSED)', async (what) => {
      const path = socketPath('daemon.sock');
      if (what === 'a file') writeFileSync(path, 'not a socket');
      else mkdirSync(path);
      const client = reconnecting('cli');
      const error = (await Promise.race([client.connectTo('daemon', path).catch((e: Error) => e), delay(3000).then(() => 'still retrying after 3 s')])) as IpcError;
      expect(error).toMatchObject({ code: ErrorCode.CONNECT, message: expect.stringContaining(`: it is ${what}, not a Unix socket (not retried)`) });
      expect((error.cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
      expect(client.get('daemon')).toBeUndefined();
      expect(client.errors).toEqual([]);
      expect(what === 'a file' ? readFileSync(path, 'utf8') : lstatSync(path).isDirectory()).toEqual(what === 'a file' ? 'not a socket' : true);
    });

    it("(was broken) a daemon whose socket file was deleted and taken by a new daemon (an init script's rm -f, then start) closes without removing the new one's file (it did: the new daemon, still listening, was unreachable)", async () => {
      const path = socketPath();
      const old = await daemon('unix', path);
      unlinkSync(path);
      const fresh = await daemon('unix', path);
      fresh.node.on('message', (message: NodeMessage) => message.reply('fresh'));
      const { ino } = lstatSync(path);
      await old.node.close();
      expect(existsSync(path) && lstatSync(path).ino).toBe(ino);
      const client = node('cli');
      await client.connectTo('daemon', path);
      await expect(client.sendTo('daemon', 'x')).resolves.toBe('fresh');
      await fresh.node.close();
      // The new daemon's own close still removes its file, as any server's does; nothing else is left in the folder.
      expect(readdirSync(dirname(path))).toEqual([]);
    });

    it("(was broken) a daemon whose socket file was replaced by a user's file closes without removing that file", async () => {
      const path = socketPath();
      const old = await daemon('unix', path);
      unlinkSync(path);
      writeFileSync(path, 'notes');
      await old.node.close();
      expect(readFileSync(path, 'utf8')).toBe('notes');
      expect(readdirSync(dirname(path))).toEqual([path.slice(dirname(path).length + 1)]);
    });

    it('(was broken, as above) a reconnecting client whose daemon left a file where its socket was: one ERR_IPC_CONNECT error, and it stops (it retried for ever, in silence)', async () => {
      const path = socketPath();
      const d = await daemon('unix', path);
      const client = reconnecting('cli');
      await client.connectTo('daemon', path);
      await d.node.close();
      writeFileSync(path, 'pid 1234');
      await until(() => client.errors.length > 0, 5000, 'the error');
      await delay(300);
      expect(client.errors.map((e) => [codeOf(e), e.message])).toEqual([[ErrorCode.CONNECT, expect.stringContaining('it is a file, not a Unix socket (not retried)')]]);
      expect(client.seen).toEqual({ connect: 1, disconnect: 1 });
      expect(client.get('daemon')).toBeUndefined();
    });

    it('a path of exactly 108 bytes serves and connects; 109 bytes is a TypeError, nothing created', async () => {
      const folder = dirname(socketPath());
      const path = (bytes: number) => join(folder, 'x'.repeat(bytes - folder.length - 1));
      const d = await daemon('unix', path(108));
      d.node.on('message', (message: NodeMessage) => message.reply('ok'));
      const client = node('cli');
      await client.connectTo('daemon', path(108));
      await expect(client.sendTo('daemon', 1)).resolves.toBe('ok');
      expect(() => node('other').serve('other', path(109))).toThrow(TypeError);
      await expect(client.connectTo('other', path(109))).rejects.toBeInstanceOf(TypeError);
      expect(readdirSync(folder).map((f) => f.length + folder.length + 1)).toEqual([108]);
    });

    it('a client started before its daemon, on a path whose folder does not exist yet: it retries quietly and links once the daemon serves', async () => {
      const path = join(dirname(socketPath()), 'run', 'daemon.sock');
      const client = reconnecting('cli');
      const linked = client.connectTo('daemon', path);
      await delay(300);
      expect(client.errors).toEqual([]);
      mkdirSync(dirname(path));
      const d = await daemon('unix', path);
      d.node.on('message', (message: NodeMessage) => message.reply('up'));
      await linked;
      await expect(client.sendTo('daemon', 'x')).resolves.toBe('up');
      expect(client.errors).toEqual([]);
      expect(client.seen).toEqual({ connect: 1, disconnect: 0 });
    });

    it('a daemon SIGKILLed on its path, then started again: the new one replaces the stale file; a client waiting for it links', async () => {
      const path = socketPath();
      await staleSocket(path);
      const client = reconnecting('cli');
      const linked = client.connectTo('daemon', path);
      await delay(200);
      const d = await daemon('unix', path);
      d.node.on('message', (message: NodeMessage) => message.reply('back'));
      await linked;
      await expect(client.sendTo('daemon', 'x')).resolves.toBe('back');
      expect([client.errors, d.node.errors]).toEqual([[], []]);
    });
  });
});

describe('short-lived processes', () => {
  it('(child processes) 40 CLIs, 4 at a time (closing, exiting at once, killed while they wait): the daemon is back to its descriptors, its heap stays flat, every connection has its end, no error', async () => {
    const d = fixture('daemon', '0');
    await d.waitFor('"listening"');
    const port = String(events(d)[0].port);
    const probe = async () => {
      const prober = node('prober');
      await prober.connectTo('daemon', Number(port), '127.0.0.1');
      const report = await prober.sendTo<{ fds: number; heap: number; [key: string]: unknown }>('daemon', 'probe', { timeout: 10_000 });
      await prober.close();
      return report;
    };
    const before = await probe();
    const replies: number[] = [];
    const outcomes: Record<string, number> = {};
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        (['close', 'exit', 'slow', 'close'] as const).map(async (how) => {
          const cli = fixture('cli', port, how);
          if (how === 'slow') {
            await cli.waitFor('"sending"');
            cli.process.kill('SIGKILL');
          }
          const exited = await exitWithin(cli, 15_000);
          const key = `${how} ${JSON.stringify(exited)}`;
          outcomes[key] = (outcomes[key] ?? 0) + 1;
          for (const line of events(cli)) if (line.event === 'reply') replies.push(line.ms as number);
        }),
      );
    }
    expect(outcomes).toEqual({
      [`close ${JSON.stringify({ code: 0, signal: null })}`]: 20,
      [`exit ${JSON.stringify({ code: 0, signal: null })}`]: 10,
      [`slow ${JSON.stringify({ code: null, signal: 'SIGKILL' })}`]: 10,
    });
    expect(replies).toHaveLength(30);
    await delay(200);
    const after = await probe();
    // 42 connections (40 CLIs, 2 probes), 41 gone: the second probe is the one asking.
    expect(after).toMatchObject({ fds: before.fds, pendingRequests: 0, openStreams: 0, handshaking: 0, peers: ['server:prober'], errors: [] });
    expect(after.counts).toEqual({ connection: 42, socketClose: 41, connections$: 42, disconnections$: 41 });
    expect(after.heap - before.heap).toBeLessThan(4 * 1024 * 1024);
    // Time to the first reply, from the CLI process's start: under a second, even on a loaded machine.
    expect(replies.sort((a, b) => a - b)[replies.length >> 1]).toBeLessThan(2000);
  }, 60_000);

  it('(child process) 200 serve/close cycles in one process (TCP on one port, a Unix path, TLS; a client every other cycle): no descriptor left, no socket file left, the process exits by itself', async () => {
    const path = socketPath();
    const cycles = fixture('cycles', path, '200');
    expect(await exitWithin(cycles, 30_000)).toEqual({ code: 0, signal: null });
    const [done] = events(cycles);
    expect(done).toEqual({ event: 'done', baseline: expect.any(Number), fds: done.baseline, errors: [] });
    expect(existsSync(path)).toBe(false);
  }, 40_000);
});
