import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { closeAll } from './net';

export const ROOT = join(__dirname, '..', '..');
const children = new Set<ChildProcess>();

/** A child process whose output is collected; killed by killChildren(). */
export interface Child {
  process: ChildProcess;
  output(): string;
  /** Resolves when the output contains `text` (rejects after `ms`). */
  waitFor(text: string | RegExp, ms?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** @param as run as this user id (and group id: the same number), which only root may ask for. */
export function spawnNode(args: string[], env: NodeJS.ProcessEnv = {}, as: { uid?: number } = {}): Child {
  const user = as.uid === undefined ? {} : { uid: as.uid, gid: as.uid };
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'], ...user });
  children.add(child);
  let out = '';
  const listeners = new Set<() => void>();
  const collect = (chunk: Buffer) => {
    out += chunk.toString();
    listeners.forEach((listener) => listener());
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  return {
    process: child,
    output: () => out,
    exited,
    waitFor(text, ms = 15_000) {
      const matches = () => (typeof text === 'string' ? out.includes(text) : text.test(out));
      return new Promise<void>((resolve, reject) => {
        if (matches()) return resolve();
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`Timed out waiting for ${String(text)}; output so far:\n${out}`));
        }, ms);
        const check = () => {
          if (!matches()) return;
          clearTimeout(timer);
          listeners.delete(check);
          resolve();
        };
        listeners.add(check);
      });
    },
  };
}

/** Runs spec/fixtures/peer.js in a child process. */
export function spawnPeer(mode: string, where: string | number, name?: string, options: object = {}): Child {
  return spawnNode([join(ROOT, 'spec', 'fixtures', 'peer.js'), mode, String(where), ...(name ? [name] : [])], {
    PEER_OPTIONS: JSON.stringify(options),
  });
}

export async function killChildren(): Promise<void> {
  await Promise.all(
    [...children].map((child) => {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      return gone;
    }),
  );
}

/** How the child exited, or 'still running' if it did not exit by itself within `ms`. */
export async function exitWithin(child: Child, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    child.exited,
    new Promise((resolve) => (timer = setTimeout(() => resolve(`still running after ${ms} ms`), ms))),
  ]);
  clearTimeout(timer);
  return result;
}

/** afterEach of the specs that use child processes: kill them, then close the test's nodes. */
export async function cleanUp(): Promise<void> {
  await killChildren();
  await closeAll();
}

/**
 * Runs a scenario of spec/fixtures/iterator-gc.js (iterators and garbage collection) in a child process of its own,
 * with `--expose-gc`, and returns what it reported. It must exit by itself once its nodes are closed.
 */
export async function iteratorGc(scenario: string, transport: 'tcp' | 'link'): Promise<Record<string, unknown>> {
  const child = spawnNode(['--expose-gc', join(ROOT, 'spec', 'fixtures', 'iterator-gc.js'), scenario, transport]);
  const exited = await child.exited;
  if (exited.code !== 0) throw new Error(`iterator-gc.js ${scenario} ${transport} exited with ${JSON.stringify(exited)}:\n${child.output()}`);
  return JSON.parse(child.output().trim()) as Record<string, unknown>;
}
