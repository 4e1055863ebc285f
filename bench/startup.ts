/**
 * How soon a forked child answers (issue 13, item 5): a parent that has already loaded ipc-link-core forks a child
 * that loads it, connects to the parent's node over a Unix socket and answers one request; the time from `fork()`
 * to the reply, against a plain `fork` answering a `process.send` message (json, advanced) and a worker thread
 * answering a `postMessage`. Also what `require` costs in a fresh process, for ipc-link-core and for rxjs.
 *
 * `node .bench-build/startup.js [--reps N]` on its own, or from run.ts (the `first-reply` scenario).
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Node } from 'ipc-link-core';

const CHILD = join(__dirname, 'startup-child.js');
/** The target of issue 13: ipc-link-core's first reply ≤ 100 ms after `fork()`. */
export const FIRST_REPLY_TARGET_MS = 100;

export const FIRST_REPLY_KINDS = ['ipc-link-core', 'fork-json', 'fork-advanced', 'worker'] as const;
export type FirstReplyKind = (typeof FIRST_REPLY_KINDS)[number];

export interface StartupResult {
  /** ms from fork() (new Worker()) to the first reply, every sample. */
  firstReply: Record<FirstReplyKind, number[]>;
  /** ms that `require(module)` takes in a fresh process, every sample. */
  require: Record<'ipc-link-core' | 'rxjs', number[]>;
}

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

/** `promise`, or a failure after 20 s (a child that dies or never answers must not hang the bench). */
function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no reply within 20 s`)), 20_000)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function firstReply(kind: FirstReplyKind, dir: string, round: number, env: NodeJS.ProcessEnv): Promise<number> {
  if (kind === 'worker') {
    const start = process.hrtime.bigint();
    const worker = new Worker(CHILD, { argv: ['worker'] });
    worker.postMessage('ping');
    const [reply] = await within(once(worker, 'message'), 'worker');
    const elapsed = ms(start);
    if (reply !== 'ping') throw new Error('worker: wrong reply');
    await worker.terminate();
    return elapsed;
  }
  if (kind === 'fork-json' || kind === 'fork-advanced') {
    const start = process.hrtime.bigint();
    const child = fork(CHILD, ['fork'], { serialization: kind === 'fork-json' ? 'json' : 'advanced', env });
    child.send('ping');
    const [reply] = await within(once(child, 'message'), kind).catch((error: Error) => {
      child.kill('SIGKILL');
      throw error;
    });
    const elapsed = ms(start);
    if (reply !== 'ping') throw new Error(`${kind}: wrong reply`);
    const exited = once(child, 'exit');
    child.kill();
    await exited;
    return elapsed;
  }
  // The parent's node is up before the fork, as in a service that starts its workers.
  const path = join(dir, `first-reply-${round}.sock`);
  const node = new Node('parent', { heartbeatInterval: 0 });
  node.serve('parent', path);
  await once(node, 'listening');
  const connected = once(node, 'connection');
  const start = process.hrtime.bigint();
  const child = fork(CHILD, ['ipc-link-core', path], { env });
  const [, socket] = await within(connected, 'ipc-link-core').catch(async (error: Error) => {
    child.kill('SIGKILL');
    await node.close();
    throw error;
  });
  const reply = await node.sendTo(socket, 'ping');
  const elapsed = ms(start);
  if (reply !== 'ping') throw new Error('ipc-link-core: wrong reply');
  const exited = once(child, 'exit');
  child.kill();
  await exited;
  await node.close();
  return elapsed;
}

async function requireTime(module: string, env: NodeJS.ProcessEnv): Promise<number> {
  const child = fork(CHILD, ['require', module], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'], env });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await once(child, 'exit');
  const value = Number(out.trim());
  if (!Number.isFinite(value)) throw new Error(`require(${module}): no time printed`);
  return value;
}

/**
 * An environment variable that Node reads at every process start, before the first line of any program: each
 * certificate file it names is loaded and parsed (~80 ms on this machine with the file it is set to here). It costs
 * a forked child the same whichever library it loads (a worker thread, started in a process already up, pays nothing).
 */
export const EXTRA_CA_CERTS = 'NODE_EXTRA_CA_CERTS';

/**
 * The environments to measure the children in: the one given and, when it sets {@link EXTRA_CA_CERTS}, the same
 * without it — what the library's own start costs, apart from what this machine adds to every Node process.
 */
export function startupEnvironments(): { label: string; env: NodeJS.ProcessEnv }[] {
  if (process.env[EXTRA_CA_CERTS] === undefined) return [{ label: 'environment as given', env: process.env }];
  const { [EXTRA_CA_CERTS]: _set, ...without } = process.env;
  return [
    { label: `environment as given (${EXTRA_CA_CERTS} set)`, env: process.env },
    { label: `children without ${EXTRA_CA_CERTS}`, env: without },
  ];
}

/** `samples` of each measurement, interleaved (a slow moment of the machine hits every kind alike), children in `env`. */
export async function measureStartup(samples: number, env: NodeJS.ProcessEnv = process.env): Promise<StartupResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ipc-startup-'));
  const result: StartupResult = {
    firstReply: { 'ipc-link-core': [], 'fork-json': [], 'fork-advanced': [], worker: [] },
    require: { 'ipc-link-core': [], rxjs: [] },
  };
  try {
    // One of each first, not counted: the first fork of a run reads every file from disk.
    for (const kind of FIRST_REPLY_KINDS) await firstReply(kind, dir, -1, env);
    for (let round = 0; round < samples; round++) {
      const kinds = FIRST_REPLY_KINDS.map((_, i) => FIRST_REPLY_KINDS[(i + round) % FIRST_REPLY_KINDS.length]);
      for (const kind of kinds) result.firstReply[kind].push(await firstReply(kind, dir, round, env));
      for (const module of ['ipc-link-core', 'rxjs'] as const) result.require[module].push(await requireTime(module, env));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** The section printed by `npm run bench` for the children of one environment (`label`), and the verdict line. */
export function report(result: StartupResult, label: string): { lines: string[]; verdict: string } {
  const fmt = (values: number[]) => `${median(values).toFixed(1)} ms (${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)})`;
  const lines = [
    `${label}: first reply after fork(), median (min–max) of ${result.firstReply['ipc-link-core'].length} forks each:`,
    ...FIRST_REPLY_KINDS.map((kind) => `  ${kind.padEnd(14)} ${fmt(result.firstReply[kind])}`),
    'require() in a fresh process:',
    ...(['ipc-link-core', 'rxjs'] as const).map((module) => `  ${module.padEnd(14)} ${fmt(result.require[module])}`),
  ];
  const ours = median(result.firstReply['ipc-link-core']);
  const verdict = `${ours <= FIRST_REPLY_TARGET_MS ? 'MET ' : 'MISS'} first reply after fork(), ${label}: ${ours.toFixed(1)} ms (must ≤ ${FIRST_REPLY_TARGET_MS} ms; fork+process.send json ${median(result.firstReply['fork-json']).toFixed(1)}, worker ${median(result.firstReply.worker).toFixed(1)})`;
  return { lines, verdict };
}

if (require.main === module) {
  const at = process.argv.indexOf('--reps');
  const samples = at >= 0 ? Number(process.argv[at + 1]) : 7;
  (async () => {
    for (const { label, env } of startupEnvironments()) {
      const result = await measureStartup(samples, env);
      const { lines, verdict } = report(result, label);
      console.log([...lines, verdict].join('\n'));
      console.log(JSON.stringify(result));
    }
  })();
}
