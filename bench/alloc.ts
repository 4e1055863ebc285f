/**
 * Bytes allocated per sequential round trip, on each side (issue 13, "a short tail"). Not a timing benchmark:
 * what it counts does not depend on the machine's load.
 *
 *   npm run build && npx tsc -p bench/tsconfig.json
 *   node .bench-build/alloc.js [--contenders baseline,ipc-link-core] [--transports tcp,unix] [--pairs 3]
 *        [--warmup 1000] [--count 20000] [--sample] [--node-args "--trace-gc"]
 *
 * For each pair of fresh processes (server, client; as `npm run bench`): `--warmup` sequential 64-byte string
 * requests, then `--count` measured ones, every reply verified. Around the measured ones, each process reads
 * `v8.getHeapStatistics().used_heap_size` and records every GC with `v8.GCProfiler`:
 *
 *   bytes allocated = used after − used before + Σ over the GCs in between (used before that GC − used after it)
 *
 * i.e. what the heap grew by plus what each GC took back: every byte allocated on the V8 heap in the window,
 * garbage included (checked against a loop of known allocations: `new Array(1000)` 10,000 times measures 8,054.6
 * bytes each for 8,048 expected). Off-heap memory (the backing stores of Buffers, which come from 8 KiB pools or
 * 64 KiB slabs) is not counted; the Buffer objects themselves are. The client's requests are made before the
 * window, so the client figure is the library's (and the `await`'s), not the scenario's.
 *
 * `--sample` also runs V8's sampling heap profiler (inspector, every allocation counted, collected ones too,
 * one sample per 64 bytes on average) over the window and prints each side's top allocation sites.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as inspector from 'node:inspector';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as v8 from 'node:v8';
import { contenders } from './contenders';
import { freePort } from './freePort';
import { serverHandlers, small } from './scenarios';
import type { Address } from './types';

interface Window {
  /** Bytes allocated on the V8 heap in the window. */
  bytes: number;
  scavenges: number;
  markCompacts: number;
  /** Milliseconds spent in GC (V8's own figure for each collection). */
  gcMs: number;
  /** CPU time of the process in the window (user + system, all threads: JIT and GC helpers included), µs. */
  cpuUs: number;
  /** Context switches in the window: the process waited (voluntary) or was preempted (involuntary). */
  voluntary: number;
  involuntary: number;
  /** Top allocation sites (with --sample): "bytes function url:line". */
  sites?: string[];
}

interface Meter {
  stop(): Promise<Window>;
}

type Node = { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: Node[] };

/** Starts counting this process's heap allocations (see the file's comment). */
function startMeter(sample: boolean): Meter {
  let session: inspector.Session | null = null;
  if (sample) {
    session = new inspector.Session();
    session.connect();
    session.post('HeapProfiler.startSampling', { samplingInterval: 64, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as object);
  }
  const profiler = new v8.GCProfiler();
  const usage = process.resourceUsage();
  const before = v8.getHeapStatistics().used_heap_size;
  profiler.start();
  return {
    async stop() {
      const after = v8.getHeapStatistics().used_heap_size;
      const { statistics } = profiler.stop();
      const now = process.resourceUsage();
      const cpuUs = now.userCPUTime + now.systemCPUTime - usage.userCPUTime - usage.systemCPUTime;
      const voluntary = now.voluntaryContextSwitches - usage.voluntaryContextSwitches;
      const involuntary = now.involuntaryContextSwitches - usage.involuntaryContextSwitches;
      let sites: string[] | undefined;
      if (session) {
        const { profile } = await new Promise<{ profile: { head: Node } }>((resolve, reject) =>
          session!.post('HeapProfiler.stopSampling', (error, result) => (error ? reject(error) : resolve(result as { profile: { head: Node } }))),
        );
        session.disconnect();
        const bySite = new Map<string, number>();
        const name = ({ functionName, url, lineNumber }: Node['callFrame']) =>
          `${functionName || '(anonymous)'} ${url.replace(/^.*\/(dist|\.bench-build|node_modules)\//, '$1/')}:${lineNumber + 1}`;
        // A builtin (no url: Map, Promise…) is named with the function that called it.
        const walk = (node: Node, parent: string) => {
          const own = name(node.callFrame);
          const site = node.callFrame.url ? own : `${own} ← ${parent}`;
          if (node.selfSize) bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
          for (const child of node.children) walk(child, node.callFrame.url ? own : parent);
        };
        walk(profile.head, '(root)');
        sites = [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([site, bytes]) => `${bytes} ${site}`);
      }
      let freed = 0;
      let scavenges = 0;
      let markCompacts = 0;
      let gcMs = 0;
      for (const gc of statistics) {
        freed += gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize;
        if (gc.gcType === 'Scavenge') scavenges++;
        else markCompacts++;
        gcMs += gc.cost / 1000;
      }
      return { bytes: after - before + freed, scavenges, markCompacts, gcMs, cpuUs, voluntary, involuntary, sites };
    },
  };
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

async function serverMain(contenderName: string, address: Address, sample: boolean): Promise<void> {
  const contender = contenders.find((c) => c.name === contenderName)!;
  const handlers = serverHandlers(contender);
  let meter: Meter | null = null;
  let result: Window | null = null;
  const bound = await contender.server().listen(address, {
    request(data) {
      if (data === '__alloc:start') {
        meter = startMeter(sample);
        return 'started';
      }
      if (data === '__alloc:stop') {
        // Stopping may be asynchronous (the sampling profile): the client fetches the result next.
        const stopping = meter!.stop();
        void stopping.then((window) => (result = window));
        return 'stopped';
      }
      if (data === '__alloc:result') return JSON.stringify(result);
      return handlers.request(data);
    },
    message: handlers.message,
  });
  print({ ready: bound });
  process.stdin.on('data', () => process.exit(0));
}

async function clientMain(contenderName: string, address: Address, warmup: number, count: number, sample: boolean): Promise<void> {
  const contender = contenders.find((c) => c.name === contenderName)!;
  const client = await contender.client(address);
  for (let i = 0; i < warmup; i++) {
    const data = small(i);
    if ((await client.request(data)) !== data) throw new Error(`wrong reply to warm-up request ${i}`);
  }
  const requests = Array.from({ length: count }, (_, i) => small(warmup + i));
  await client.request('__alloc:start');
  const meter = startMeter(sample);
  for (let i = 0; i < count; i++) {
    if ((await client.request(requests[i])) !== requests[i]) throw new Error(`wrong reply to request ${i}`);
  }
  const mine = await meter.stop();
  await client.request('__alloc:stop');
  let theirs: Window | null = null;
  for (let tries = 0; theirs === null && tries < 100; tries++) {
    theirs = JSON.parse((await client.request('__alloc:result')) as string) as Window | null;
    if (theirs === null) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  print({ client: mine, server: theirs });
  await Promise.race([client.close(), new Promise((resolve) => setTimeout(resolve, 500))]);
  process.exit(0);
}

/** Runs one process and resolves with its first JSON line holding `key`. */
function child(args: string[], nodeArgs: string[], key: string): { done: Promise<Record<string, unknown>>; kill(): void; stdin: NodeJS.WritableStream } {
  const proc = spawn(process.execPath, [...nodeArgs, __filename, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  let buffered = '';
  const done = new Promise<Record<string, unknown>>((resolve, reject) => {
    proc.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (const line of buffered.split('\n').slice(0, -1)) {
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          if (key in parsed) resolve(parsed);
        } catch {
          process.stderr.write(`${line}\n`);
        }
      }
      buffered = buffered.slice(buffered.lastIndexOf('\n') + 1);
    });
    proc.once('exit', (code) => reject(new Error(`${args[0]} exited (${code})`)));
  });
  return { done, kill: () => proc.kill('SIGKILL'), stdin: proc.stdin };
}

async function main(): Promise<void> {
  const names = arg('contenders', 'baseline,ipc-link-core').split(',');
  const transports = arg('transports', 'tcp,unix').split(',');
  const pairs = Number(arg('pairs', '3'));
  const warmup = arg('warmup', '1000');
  const count = Number(arg('count', '20000'));
  const sample = process.argv.includes('--sample') ? ['--sample'] : [];
  const nodeArgs = arg('node-args', '').split(' ').filter(Boolean);
  const tmp = mkdtempSync(join(tmpdir(), 'ipc-alloc-'));
  console.log(`per round trip of ${count} sequential 64 B requests after ${warmup} of warm-up: bytes allocated on the V8 heap, GCs (scavenges+mark-compacts, their time), CPU time, context switches`);
  for (const transport of transports) {
    for (const name of names) {
      for (let pair = 0; pair < pairs; pair++) {
        const address: Address = transport === 'tcp' ? { port: await freePort(), host: '127.0.0.1' } : { path: join(tmp, `${name}-${pair}.sock`) };
        const server = child(['server', name, JSON.stringify(address), ...sample], nodeArgs, 'ready');
        try {
          const ready = await server.done;
          const client = child(['client', name, JSON.stringify(ready.ready), warmup, String(count), ...sample], nodeArgs, 'client');
          const { client: mine, server: theirs } = (await client.done) as unknown as { client: Window; server: Window };
          const side = (w: Window) =>
            `${(w.bytes / count).toFixed(0).padStart(5)} B/rt, GC ${w.scavenges}+${w.markCompacts} ${w.gcMs.toFixed(1)} ms, ` +
            `CPU ${(w.cpuUs / count).toFixed(1)} µs/rt, ctx ${((w.voluntary + w.involuntary) / count).toFixed(2)}/rt (${w.involuntary} preempted)`;
          console.log(`${transport.padEnd(4)} ${name.padEnd(14)} client ${side(mine)} | server ${side(theirs)}`);
          if (mine.sites) {
            console.log(`  client sites (bytes per round trip):\n${mine.sites.map((s) => `    ${fmtSite(s, count)}`).join('\n')}`);
            console.log(`  server sites (bytes per round trip):\n${theirs.sites!.map((s) => `    ${fmtSite(s, count)}`).join('\n')}`);
          }
          client.kill();
        } finally {
          server.kill();
        }
      }
    }
  }
  rmSync(tmp, { recursive: true, force: true });
}

function fmtSite(site: string, count: number): string {
  const space = site.indexOf(' ');
  return `${(Number(site.slice(0, space)) / count).toFixed(1).padStart(7)} ${site.slice(space + 1)}`;
}

const [role, name, address, ...rest] = process.argv.slice(2);
const sampled = process.argv.includes('--sample');
const fail = (error: Error) => {
  process.stderr.write(`${error.stack ?? String(error)}\n`);
  process.exit(1);
};
if (role === 'server') serverMain(name, JSON.parse(address) as Address, sampled).catch(fail);
else if (role === 'client') clientMain(name, JSON.parse(address) as Address, Number(rest[0]), Number(rest[1]), sampled).catch(fail);
else main().catch(fail);
