/**
 * Real `nats-server` processes on free loopback ports, for the specs (`spec/helpers/natsServer.ts` re-exports this
 * module) and for the bench's NATS transport (`bench/run.ts`). It lives in bench/ because the bench is compiled on
 * its own (`bench/tsconfig.json`, rootDir bench/) and must not import from spec/; `src/` never imports it.
 *
 * Every server binds 127.0.0.1 only (`-a`), gets a client port and an HTTP monitoring port (`-m`), runs with a
 * fresh temp dir as its working directory (the only place a config file is written; no log, pid or store files),
 * and is killed by pid: `stop()`, `stopAllNatsServers()`, or, as a last resort, when this process exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { delimiter, join } from 'node:path';
import { tmpdir } from 'node:os';
import { freePort } from './freePort';

export { freePort };

/** How long a server may take to say "Server is ready", and a cluster to connect its routes (generous bounds). */
const READY_MS = 10_000;
const ROUTES_MS = 15_000;

/**
 * The nats-server executable: `$NATS_SERVER` when set (only that one: set it to a path that does not exist to see
 * the specs skip), else the first on PATH, else /usr/sbin, /usr/local/sbin, /usr/local/bin, /usr/bin (Debian's
 * package installs /usr/sbin/nats-server, which is not on a non-root user's PATH).
 */
export function natsServerPath(): string | undefined {
  const candidates = process.env.NATS_SERVER
    ? [process.env.NATS_SERVER]
    : [
        ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, 'nats-server')),
        '/usr/sbin/nats-server',
        '/usr/local/sbin/nats-server',
        '/usr/local/bin/nats-server',
        '/usr/bin/nats-server',
      ];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not there, or not executable: try the next one
    }
  }
  return undefined;
}

/** Whether a nats-server executable is installed (see {@link natsServerPath}). */
export function natsAvailable(): boolean {
  return natsServerPath() !== undefined;
}

export interface NatsServerOptions {
  /** Client port (default: a free one). */
  port?: number;
  /** HTTP monitoring port (default: a free one). */
  httpPort?: number;
  /** `server_name` (default: `n-<client port>`). */
  name?: string;
  /** `max_payload` in bytes (nats-server's default is 1 MiB, its maximum 64 MiB); written to a config file. */
  maxPayload?: number;
  /** Cluster membership: our route port, the cluster's name, and the route URLs to solicit. */
  cluster?: { port: number; name: string; routes: string[] };
  /** More configuration, as nats-server config text (e.g. an `authorization { … }` block); written to a config file. */
  config?: string;
  /** More command-line arguments, appended as they are (e.g. `['-D']`). */
  args?: string[];
}

/** The fields of `/varz` the specs and the bench read (the server sends many more). */
export interface Varz {
  server_id: string;
  server_name: string;
  version: string;
  connections: number;
  total_connections: number;
  subscriptions: number;
  in_msgs: number;
  out_msgs: number;
  in_bytes: number;
  out_bytes: number;
  slow_consumers: number;
  max_payload: number;
  [key: string]: unknown;
}

/** `/subsz?subs=1`: the subscriptions of every connection (clients and routes). */
export interface Subsz {
  num_subscriptions: number;
  num_cache: number;
  total: number;
  subscriptions_list?: Array<{ subject: string; qgroup?: string; sid: string; msgs: number; cid: number; account?: string }>;
  [key: string]: unknown;
}

/** `/connz`: client connections. */
export interface Connz {
  num_connections: number;
  total: number;
  connections: Array<{ cid: number; name?: string; ip: string; port: number; subscriptions: number; in_msgs: number; out_msgs: number; pending_bytes: number; [key: string]: unknown }>;
  [key: string]: unknown;
}

/** `/routez`: routes to the other servers of the cluster. */
export interface Routez {
  num_routes: number;
  routes?: Array<{ rid: number; remote_id: string; ip: string; port: number; [key: string]: unknown }>;
  [key: string]: unknown;
}

/** GETs `http://127.0.0.1:<port><path>` and parses the JSON body (no keep-alive: no socket outlives the call). */
export function getJson<T>(port: number, path: string, timeoutMs = 5000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const request = get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        if (response.statusCode !== 200) return reject(new Error(`GET ${path} on :${port}: HTTP ${response.statusCode} ${body.slice(0, 200)}`));
        try {
          resolve(JSON.parse(body) as T);
        } catch (error) {
          reject(new Error(`GET ${path} on :${port}: not JSON (${(error as Error).message})`));
        }
      });
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${path} on :${port}: no answer within ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

/** Polls `check` every `everyMs` until it returns true (or a value other than false/undefined); rejects after `ms`. */
export async function waitUntil<T>(what: string, check: () => Promise<T | false | undefined> | T | false | undefined, ms = 5000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== false && value !== undefined) return value as T;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Every server this module created and has not stopped: stopped by stopAllNatsServers(), killed at process exit. */
const created = new Set<NatsServer>();
/** Their processes that have not exited yet. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const child of live) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const server of created) rmSync(server.dir, { recursive: true, force: true });
  };
  process.on('exit', killAll);
  // A signal would end this process without 'exit': kill the servers, then die of the same signal (the
  // listener is removed first, so the re-raised signal takes its default action). Only when nobody else
  // listens: a runner with its own handler (jest's) keeps its behaviour and reaches 'exit' itself.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    if (process.listenerCount(signal) > 0) continue;
    process.once(signal, () => {
      killAll();
      process.kill(process.pid, signal);
    });
  }
}

/** One nats-server process; `kill()`/`restart()` keep its ports, so clients can find it again. */
export class NatsServer {
  readonly name: string;
  readonly port: number;
  readonly httpPort: number;
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  /** The route port when the server is part of a cluster. */
  readonly clusterPort?: number;
  /** The working directory (holds the config file, if any); removed by `stop()`. */
  readonly dir: string;
  private child?: ChildProcess;
  private exited?: Promise<unknown>;
  private log = '';
  private readonly argv: string[];

  constructor(
    readonly executable: string,
    readonly options: Required<Pick<NatsServerOptions, 'port' | 'httpPort'>> & NatsServerOptions,
  ) {
    this.port = options.port;
    this.httpPort = options.httpPort;
    this.name = options.name ?? `n-${options.port}`;
    this.url = `nats://127.0.0.1:${options.port}`;
    this.clusterPort = options.cluster?.port;
    this.dir = mkdtempSync(join(tmpdir(), 'ipc-nats-'));
    created.add(this);
    const argv = ['-a', '127.0.0.1', '-p', String(options.port), '-m', String(options.httpPort), '--server_name', this.name];
    const config = [options.maxPayload === undefined ? '' : `max_payload: ${options.maxPayload}\n`, options.config ?? ''].join('');
    if (config !== '') {
      writeFileSync(join(this.dir, 'server.conf'), config);
      argv.push('-c', join(this.dir, 'server.conf'));
    }
    if (options.cluster) {
      argv.push('--cluster', `nats://127.0.0.1:${options.cluster.port}`, '--cluster_name', options.cluster.name);
      if (options.cluster.routes.length > 0) argv.push('--routes', options.cluster.routes.join(','));
    }
    argv.push(...(options.args ?? []));
    this.argv = argv;
  }

  /** The process id while running. */
  get pid(): number | undefined {
    return this.running ? this.child!.pid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The server's log (its stderr and stdout) since it was (re)started. */
  output(): string {
    return this.log;
  }

  /** Starts the process and resolves once it says "Server is ready" (rejects, with its log, if it exits first). */
  async start(): Promise<this> {
    if (this.running) throw new Error(`nats-server ${this.name} is already running (pid ${this.child!.pid})`);
    installExitHook();
    this.log = '';
    const child = spawn(this.executable, this.argv, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    live.add(child);
    this.exited = new Promise((resolve) => {
      child.once('close', resolve);
      child.once('error', resolve); // could not be spawned: there is nothing to wait for
    });
    child.once('exit', () => live.delete(child));
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server ${this.name} not ready within ${READY_MS} ms:\n${this.log}`)), READY_MS);
      const collect = (chunk: Buffer) => {
        this.log += chunk.toString();
        if (this.log.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', collect);
      child.stderr!.on('data', collect);
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`nats-server ${this.name} exited (${code ?? signal}) before it was ready:\n${this.log}`));
      });
    });
    try {
      await ready;
    } catch (error) {
      await this.kill();
      throw error;
    }
    return this;
  }

  /** `kill -9` and wait until the process is gone (no-op when not running). Ports and dir are kept for `restart()`. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await this.exited;
  }

  /** Starts the process again on the same ports with the same arguments (kills it first if it still runs). */
  async restart(): Promise<this> {
    await this.kill();
    return this.start();
  }

  /** Kills the process and removes its temp dir. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
    created.delete(this);
  }

  /** GET a monitoring endpoint (e.g. `/varz`, `/subsz?subs=1`), parsed. */
  monitor<T = Record<string, unknown>>(path: string): Promise<T> {
    return getJson<T>(this.httpPort, path.startsWith('/') ? path : `/${path}`);
  }

  varz(): Promise<Varz> {
    return this.monitor<Varz>('/varz');
  }

  /** Subscriptions on this server (with their list); pass e.g. `{ test: 'a.b' }` or `{ limit: 1000 }` as extra query. */
  subsz(query: Record<string, string | number> = {}): Promise<Subsz> {
    return this.monitor<Subsz>(`/subsz?${new URLSearchParams({ subs: '1', ...Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)])) })}`);
  }

  connz(query: Record<string, string | number> = {}): Promise<Connz> {
    const search = new URLSearchParams(Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)]))).toString();
    return this.monitor<Connz>(`/connz${search ? `?${search}` : ''}`);
  }

  /** Route connections with the subjects each carries interest for (`/routez?subs=1`). */
  routez(subs = false): Promise<Routez> {
    return this.monitor<Routez>(subs ? '/routez?subs=1' : '/routez');
  }

  /**
   * The subscriptions of this server's client connections: `/subsz?subs=1` without the server's own (account
   * `$SYS`, and the `$SYS.` / `$JS.API.` subjects its internal client holds in `$G`, ~120 on a 2.9 server). Route
   * interest is not in that list (see {@link waitForSubscription}); `num_subscriptions` counts everything.
   */
  async clientSubscriptions(): Promise<NonNullable<Subsz['subscriptions_list']>> {
    const list = (await this.subsz({ limit: 100_000 })).subscriptions_list ?? [];
    return list.filter((s) => s.account !== '$SYS' && !s.subject.startsWith('$SYS.') && !s.subject.startsWith('$JS.API.'));
  }

  /**
   * Resolves once this server knows a subscription to exactly `subject`: one of its own clients' (`/subsz`) or one
   * a route brought from another server of the cluster (`/routez?subs=1`) — then a publish here reaches it.
   */
  async waitForSubscription(subject: string, ms = 5000): Promise<void> {
    await waitUntil(
      `a subscription to ${subject} on ${this.name}`,
      async () =>
        (await this.clientSubscriptions()).some((s) => s.subject === subject) ||
        ((await this.routez(true)).routes ?? []).some((r) => (r.subscriptions_list as string[] | undefined)?.includes(subject)),
      ms,
    );
  }
}

/** Starts one server on free loopback ports (retrying with other ports if one was taken meanwhile). */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const executable = natsServerPath();
  if (!executable) throw new Error(NATS_MISSING);
  for (let attempt = 1; ; attempt++) {
    const server = new NatsServer(executable, { ...options, port: options.port ?? (await freePort()), httpPort: options.httpPort ?? (await freePort()) });
    try {
      return await server.start();
    } catch (error) {
      await server.stop();
      const clash = /address already in use/i.test((error as Error).message);
      if (!clash || attempt >= 3 || (options.port !== undefined && options.httpPort !== undefined)) throw error;
    }
  }
}

/** A cluster of servers, fully meshed by routes. */
export interface NatsCluster {
  name: string;
  servers: NatsServer[];
  /** Client URLs of every server, in order. */
  urls: string[];
  /** Resolves once every running server has a route to every other running server (`/routez`). */
  waitForRoutes(ms?: number): Promise<void>;
  /**
   * Resolves once every subscription that clients of `from` hold (now) is known on `on` through its route: a
   * publish or request via `on` then reaches them (before that, a request via `on` fails with "no responders").
   */
  waitForInterest(from: NatsServer, on: NatsServer, ms?: number): Promise<void>;
  /** Kills every server and removes their temp dirs. */
  stop(): Promise<void>;
}

/**
 * Starts `size` servers (default 3) that route to each other (`--cluster`, `--routes` to all the others,
 * `--cluster_name`), and resolves once every route is up. `options` apply to every server (not port/name/cluster).
 */
export async function startNatsCluster(size = 3, options: Omit<NatsServerOptions, 'port' | 'httpPort' | 'name' | 'cluster'> = {}): Promise<NatsCluster> {
  // Once more on fresh ports when the routes do not form: a free port probed here can be taken by another process
  // (a parallel spec starting its own cluster) before nats-server binds it (seen once in CI: no route in 15 s).
  try {
    return await startNatsClusterOnce(size, options);
  } catch {
    return startNatsClusterOnce(size, options);
  }
}

async function startNatsClusterOnce(size: number, options: Omit<NatsServerOptions, 'port' | 'httpPort' | 'name' | 'cluster'>): Promise<NatsCluster> {
  const executable = natsServerPath();
  if (!executable) throw new Error(NATS_MISSING);
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ port: await freePort(), httpPort: await freePort(), routePort: await freePort() })));
  const name = `c-${ports[0].routePort}`;
  const servers = ports.map(
    (p, i) =>
      new NatsServer(executable, {
        ...options,
        port: p.port,
        httpPort: p.httpPort,
        name: `${name}-${String.fromCharCode(97 + i)}`,
        cluster: { port: p.routePort, name, routes: ports.filter((_, j) => j !== i).map((q) => `nats://127.0.0.1:${q.routePort}`) },
      }),
  );
  const cluster: NatsCluster = {
    name,
    servers,
    urls: servers.map((s) => s.url),
    async waitForRoutes(ms = ROUTES_MS) {
      const up = servers.filter((s) => s.running);
      await Promise.all(
        up.map((s) =>
          waitUntil(`${up.length - 1} route(s) on ${s.name}`, async () => (await s.routez()).num_routes >= up.length - 1, ms, 50),
        ),
      );
    },
    async waitForInterest(from, on, ms = 5000) {
      const subjects = [...new Set((await from.clientSubscriptions()).map((s) => s.subject))];
      await Promise.all(subjects.map((subject) => on.waitForSubscription(subject, ms)));
    },
    async stop() {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
  try {
    await Promise.all(servers.map((s) => s.start()));
    await cluster.waitForRoutes();
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

/** Stops every server this module started in this process (kill -9 by pid, temp dirs removed) once they are gone. */
export async function stopAllNatsServers(): Promise<void> {
  await Promise.all([...created].map((server) => server.stop()));
}

export const NATS_MISSING = 'nats-server not found — install it with `apt-get install -y nats-server` (after `apt-get update`)';
