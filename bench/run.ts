/**
 * `npm run bench`: every scenario × transport × contender, each run in a fresh server process and a fresh
 * client process, contenders interleaved, repeated; prints medians and their ratio to the baseline, checks
 * ipc-link-core against the targets, and writes everything to bench/results.json.
 *
 * Options: --reps N (default 3)  --transports tcp,unix,nats,nats-cluster  --contenders a,b  --scenarios a,b  --out file
 *
 * Transport `nats` (issue 14; in the default list when nats-server is installed): each run gets its own
 * nats-server on free loopback ports (bench/natsServer.ts), client and server connect to it, and the reference
 * is nats-raw (raw nats.js) instead of the baseline. Only contenders that list it in `transports` run on it.
 * `nats-cluster` (on request only): a fresh routed 3-server cluster per run, the server process connected to C,
 * the client to A (started once A knows C's subscriptions), so every message crosses a route.
 * The scenario `first-reply` (in the default list) is the startup section of startup.ts: fork → first reply.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { anchorVerdicts } from './anchors';
import { contenders as allContenders } from './contenders';
import { freePort } from './freePort';
import { natsAvailable, NATS_MISSING, startNatsCluster, startNatsServer, type NatsCluster, type NatsServer } from './natsServer';
import { scenarios as allScenarios, type Measurement } from './scenarios';
import { measureStartup, report as startupReport, startupEnvironments } from './startup';
import { supports, type Address } from './types';

type Transport = 'tcp' | 'unix' | 'nats' | 'nats-cluster';

interface Run {
  rep: number;
  scenario: string;
  transport: Transport;
  contender: string;
  result?: Measurement;
  clientRssKb?: number;
  serverRssKb?: number;
  /** Peak RSS of the run's nats-server (transport nats). */
  natsServerRssKb?: number;
  error?: string;
}

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

const reps = Number(arg('reps', '3'));
const transports = arg('transports', natsAvailable() ? 'tcp,unix,nats' : 'tcp,unix').split(',') as Transport[];
if (!process.argv.includes('--transports') && !natsAvailable()) process.stderr.write(`NATS rows skipped: ${NATS_MISSING}\n`);
/** What each transport's ratios are relative to. */
const reference = (transport: Transport) => (transport.startsWith('nats') ? 'nats-raw' : 'baseline');
/** The contenders that run `scenario` on `transport`. */
const runners = (scenario: string, transport: Transport) => contenders.filter((c) => !c.skip?.[scenario] && supports(c, transport));
const contenders = allContenders.filter((c) => arg('contenders', allContenders.map((x) => x.name).join(',')).split(',').includes(c.name));
const scenarios = allScenarios.filter((s) => arg('scenarios', allScenarios.map((x) => x.name).join(',')).split(',').includes(s.name));
const out = arg('out', join(__dirname, '..', 'bench', 'results.json'));
const worker = join(__dirname, 'worker.js');
const RUN_TIMEOUT_MS = 180_000;
const tmp = mkdtempSync(join(tmpdir(), 'ipc-bench-'));
/** A fresh socket path for every run (a worker exits without removing its socket file). */
let socketCount = 0;

/** Spawns a worker and yields its JSON lines. */
function start(args: string[]) {
  const child = spawn(process.execPath, [worker, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: Record<string, unknown>[] = [];
  let waiters: Array<() => void> = [];
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        lines.push(JSON.parse(line));
      } catch {
        process.stderr.write(`${line}\n`);
      }
      waiters.forEach((w) => w());
      waiters = [];
    }
  });
  const exited = once(child, 'exit');
  const next = async (key: string, ms: number): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = lines.find((l) => key in l || 'error' in l);
      if (found) return found;
      if (child.exitCode !== null || child.signalCode !== null) return { error: `worker exited (${child.exitCode ?? child.signalCode})` };
      const left = deadline - Date.now();
      if (left <= 0) return { error: `timed out after ${ms} ms` };
      await Promise.race([new Promise<void>((r) => waiters.push(r)), exited, new Promise((r) => setTimeout(r, Math.min(left, 1000)))]);
    }
  };
  return { child, next };
}

/** Peak RSS (VmHWM) of a running process, in KB (Linux; undefined elsewhere). */
function peakRssKbOf(pid: number | undefined): number | undefined {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

async function runOne(rep: number, scenario: string, transport: Transport, contender: string): Promise<Run> {
  const run: Run = { rep, scenario, transport, contender };
  // nats: a fresh nats-server for every run (default options: max_payload 1 MiB), stopped after it; nats-cluster:
  // a fresh 3-server cluster, the server process on C and the client on A.
  let nats: NatsServer | undefined;
  let cluster: NatsCluster | undefined;
  try {
    if (transport === 'nats') nats = await startNatsServer();
    if (transport === 'nats-cluster') cluster = await startNatsCluster(3);
  } catch (error) {
    return { ...run, error: `nats-server: ${(error as Error).message.split('\n')[0]}` };
  }
  const address: Address = nats
    ? { nats: nats.url }
    : cluster
      ? { nats: cluster.urls[2] }
      : transport === 'tcp'
      ? { port: await freePort(), host: '127.0.0.1' }
      : { path: join(tmp, `${contender}-${scenario}-${rep}-${++socketCount}.sock`) };
  const server = start(['server', contender, JSON.stringify(address)]);
  try {
    const ready = await server.next('ready', 20_000);
    if (ready.error) throw new Error(`server: ${String(ready.error)}`);
    if (cluster) await cluster.waitForInterest(cluster.servers[2], cluster.servers[0]);
    const client = start(['client', contender, scenario, JSON.stringify(cluster ? { nats: cluster.urls[0] } : ready.ready)]);
    // A server that dies (a library bug) fails the run at once instead of leaving the client waiting.
    const serverDied = () => client.child.kill('SIGKILL');
    server.child.once('exit', serverDied);
    const done = await client.next('result', RUN_TIMEOUT_MS);
    server.child.off('exit', serverDied);
    client.child.kill('SIGKILL');
    if (done.error) throw new Error(`client: ${String(done.error)}`);
    run.result = done.result as Measurement;
    run.clientRssKb = done.rss as number;
    server.child.stdin.write('exit\n');
    const rss = await server.next('rss', 5000);
    run.serverRssKb = rss.rss as number | undefined;
  } catch (error) {
    run.error = (error as Error).message.split('\n').slice(0, 3).join(' ');
  } finally {
    server.child.kill('SIGKILL');
    if (nats) {
      run.natsServerRssKb = peakRssKbOf(nats.pid);
      await nats.stop();
    }
    await cluster?.stop();
  }
  return run;
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function format(value: number | undefined, unit: string): string {
  if (value === undefined) return 'failed';
  if (unit === 'µs' || unit === 'ms') return value.toFixed(value < 100 ? 1 : 0);
  return Math.round(value).toLocaleString('en-US');
}

/** Targets for ipc-link-core, as ratios to the baseline (issue 4). */
const targets: Record<string, { must: number; aim: number; higher: boolean }> = {
  'oneway-small': { must: 0.6, aim: 0.8, higher: true },
  'inflight-256': { must: 0.5, aim: 0.7, higher: true },
  sequential: { must: 1.3, aim: 1.1, higher: false },
  'burst-10k': { must: 2, aim: 1.3, higher: false },
  'bulk-1mib': { must: 0.9, aim: 1.0, higher: true },
  'echo-16mib': { must: 1.0, aim: 0.5, higher: false },
  'object-1kb': { must: 0.7, aim: 1.0, higher: true },
};
const RSS_MUST = 1.5;
/** Issue 13's short tail: sequential p50 and p99 of ipc-link-core against the baseline's. */
const TAIL = { p50: 1.1, p99: 1.5 };

/** Targets for ipc-link-core over NATS (contender `ipc-link-core-nats`), as ratios to raw nats.js in the same run (issue 14). */
const natsTargets: Record<string, { must: number; higher: boolean }> = {
  'inflight-256': { must: 4, higher: true },
  'oneway-small': { must: 3, higher: true },
  'bulk-1mib': { must: 1.3, higher: true },
  sequential: { must: 1.2, higher: false },
};

/** Targets for the reactive path, `firstValueFrom(request$)`, as ratios to `sendTo` in the same run (issue 13). */
const rxTargets: Record<string, { must: number; higher: boolean }> = {
  'inflight-256': { must: 0.8, higher: true },
  'burst-10k': { must: 1.25, higher: false },
  sequential: { must: 1.15, higher: false },
  'object-1kb': { must: 0.85, higher: true },
};

async function main(): Promise<void> {
  const runs: Run[] = [];
  const runsPerRep = scenarios.reduce((n, s) => n + transports.reduce((m, t) => m + runners(s.name, t).length, 0) * (s.processes ?? 1), 0);
  const total = reps * runsPerRep;
  const started = Date.now();
  for (let rep = 0; rep < reps; rep++) {
    for (const scenario of scenarios) {
      const pairs = scenario.processes ?? 1;
      for (let pair = 0; pair < pairs; pair++) {
        for (const transport of transports) {
          // Interleave, rotating who goes first each time among the contenders that run this scenario on this
          // transport, and reversing the cycle every other lap: each takes each place, and follows each other,
          // equally often (no contender always runs right after the same other one).
          const active = runners(scenario.name, transport);
          const turn = rep * pairs + pair;
          const cycle = Math.floor(turn / Math.max(active.length, 1)) % 2 === 0 ? active : [...active].reverse();
          const order = cycle.map((_, i) => cycle[(i + turn) % cycle.length]);
          for (const contender of order) {
            const run = await runOne(rep, scenario.name, transport, contender.name);
            runs.push(run);
            const shown = run.error ? `ERROR ${run.error}` : `${format(run.result!.value, run.result!.unit)} ${run.result!.unit}`;
            process.stderr.write(`[${runs.length}/${total}] ${scenario.name} ${transport} ${contender.name}: ${shown}\n`);
          }
        }
      }
    }
  }

  const medians: Record<string, Record<string, Record<string, { value?: number; p99?: number; clientRssKb?: number; serverRssKb?: number; failures: number }>>> = {};
  for (const transport of transports) {
    medians[transport] = {};
    for (const scenario of scenarios) {
      medians[transport][scenario.name] = {};
      for (const contender of contenders) {
        const mine = runs.filter((r) => r.transport === transport && r.scenario === scenario.name && r.contender === contender.name);
        const ok = mine.filter((r) => r.result);
        medians[transport][scenario.name][contender.name] = {
          value: median(ok.map((r) => r.result!.value)),
          p99: median(ok.flatMap((r) => (r.result!.extra?.p99 !== undefined ? [r.result!.extra.p99] : []))),
          clientRssKb: median(ok.map((r) => r.clientRssKb!).filter((v) => v !== undefined)),
          serverRssKb: median(ok.map((r) => r.serverRssKb!).filter((v) => v !== undefined)),
          failures: mine.length - ok.length,
        };
      }
    }
  }

  const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, platform: `${process.platform} ${process.arch}` };
  console.log(`\nipc-link-core benchmark — ${machine.cpus} cores (${machine.cpu}), Node ${machine.node}, ${reps} repetition(s), medians; ratio = contender / baseline (NATS: / nats-raw)`);
  const verdicts: string[] = [];
  for (const transport of transports) {
    console.log(`\n## ${transport === 'tcp' ? 'TCP loopback' : transport === 'unix' ? 'Unix socket' : transport === 'nats' ? 'NATS (one local nats-server)' : 'NATS cluster (client via server A, responder via C)'}\n`);
    const ref = reference(transport);
    const shown = contenders.filter((c) => supports(c, transport));
    const header = ['scenario', ...shown.map((c) => c.name)];
    const rows: string[][] = [];
    for (const scenario of scenarios) {
      const unit = runs.find((r) => r.scenario === scenario.name && r.result)?.result?.unit ?? '';
      const base = medians[transport][scenario.name][ref]?.value;
      rows.push([
        scenario.title,
        ...shown.map((c) => {
          const m = medians[transport][scenario.name][c.name];
          const ratio = m.value !== undefined && base ? ` (${(m.value / base).toFixed(2)}×)` : '';
          const p99 = m.p99 !== undefined ? `, p99 ${format(m.p99, 'µs')}` : '';
          const failed = m.failures > 0 ? ` [${m.failures} failed]` : '';
          if (c.skip?.[scenario.name]) return 'not run (*)';
          return c.name === ref ? `${format(m.value, unit)}${p99}${failed}` : `${format(m.value, unit)}${ratio}${p99}${failed}`;
        }),
      ]);
    }
    for (const scenario of scenarios.filter((s) => s.name === 'bulk-1mib' || s.name === 'echo-16mib')) {
      const base = medians[transport][scenario.name][ref] ?? {};
      rows.push([
        `peak RSS MB client/server, ${scenario.name}`,
        ...shown.map((c) => {
          const m = medians[transport][scenario.name][c.name];
          const mb = (kb?: number) => (kb === undefined ? '?' : (kb / 1024).toFixed(0));
          const ratio = (kb?: number, b?: number) => (kb && b ? (kb / b).toFixed(2) : '?');
          return c.name === ref
            ? `${mb(m.clientRssKb)}/${mb(m.serverRssKb)}`
            : `${mb(m.clientRssKb)}/${mb(m.serverRssKb)} (${ratio(m.clientRssKb, base?.clientRssKb)}×/${ratio(m.serverRssKb, base?.serverRssKb)}×)`;
        }),
      ]);
    }
    printTable(header, rows);
    for (const c of shown) for (const [name, why] of Object.entries(c.skip ?? {})) if (scenarios.some((s) => s.name === name)) console.log(`(*) ${c.name}, ${name}: ${why}`);
    if (transport === 'nats-cluster') continue;
    if (transport === 'nats') {
      const broker = (name: string) => median(runs.filter((r) => r.transport === 'nats' && r.scenario === name && r.natsServerRssKb).map((r) => r.natsServerRssKb!));
      const peaks = scenarios.flatMap((s) => (broker(s.name) ? [`${s.name} ${((broker(s.name) ?? 0) / 1024).toFixed(0)}`] : []));
      if (peaks.length) console.log(`nats-server peak RSS MB (median over every contender's runs): ${peaks.join(', ')}`);
      // Issue 14's targets: ipc-link-core over NATS against raw nats.js in the same run.
      for (const scenario of scenarios) {
        const t = natsTargets[scenario.name];
        const mine = medians.nats[scenario.name]['ipc-link-core-nats']?.value;
        const raw = medians.nats[scenario.name]['nats-raw']?.value;
        if (!t || mine === undefined || !raw) continue;
        const ratio = mine / raw;
        const met = t.higher ? ratio >= t.must : ratio <= t.must;
        verdicts.push(`${met ? 'MET ' : 'MISS'} nats ${scenario.title} vs raw nats.js: ${ratio.toFixed(2)}× (must ${t.higher ? '≥' : '≤'} ${t.must})`);
      }
      continue;
    }

    if (contenders.some((c) => c.name === 'ipc-link-core') && contenders.some((c) => c.name === 'baseline')) {
      for (const scenario of scenarios) {
        const t = targets[scenario.name];
        const mine = medians[transport][scenario.name]['ipc-link-core'].value;
        const base = medians[transport][scenario.name].baseline.value;
        if (scenario.name === 'stream-small') {
          const rr = medians[transport]['inflight-256']?.['ipc-link-core']?.value;
          if (mine !== undefined && rr) verdicts.push(`     ${transport} streamed items: ${format(mine, 'items/s')} items/s = ${(mine / rr).toFixed(2)}× the request/reply rate (256 in flight)`);
          continue;
        }
        if (!t || mine === undefined || !base) {
          verdicts.push(`${transport} ${scenario.name}: no figure`);
          continue;
        }
        const ratio = mine / base;
        const met = t.higher ? ratio >= t.must : ratio <= t.must;
        const aimed = t.higher ? ratio >= t.aim : ratio <= t.aim;
        verdicts.push(`${met ? 'MET ' : 'MISS'} ${transport} ${scenario.title}: ${ratio.toFixed(2)}× (must ${t.higher ? '≥' : '≤'} ${t.must}, aim ${t.aim}${aimed ? ', aim reached' : ''})`);
        if (scenario.name === 'sequential') {
          // Issue 13 ("a short tail"): p50 ≤ 1.1× and p99 ≤ 1.5× the baseline, medians over the process pairs.
          const p99 = medians[transport].sequential['ipc-link-core'].p99;
          const baseP99 = medians[transport].sequential.baseline.p99;
          if (p99 !== undefined && baseP99) {
            const tail = p99 / baseP99;
            verdicts.push(`${ratio <= TAIL.p50 ? 'MET ' : 'MISS'} ${transport} sequential p50 (issue 13): ${ratio.toFixed(2)}× (must ≤ ${TAIL.p50})`);
            verdicts.push(`${tail <= TAIL.p99 ? 'MET ' : 'MISS'} ${transport} sequential p99 (issue 13): ${tail.toFixed(2)}× (must ≤ ${TAIL.p99})`);
          }
        }
      }
      for (const scenario of ['bulk-1mib', 'echo-16mib']) {
        const m = medians[transport][scenario]?.['ipc-link-core'];
        const b = medians[transport][scenario]?.baseline;
        if (!m || !b) continue;
        for (const side of ['clientRssKb', 'serverRssKb'] as const) {
          const ratio = (m[side] ?? NaN) / (b[side] ?? NaN);
          verdicts.push(`${ratio <= RSS_MUST ? 'MET ' : 'MISS'} ${transport} peak RSS ${scenario} ${side.replace('RssKb', '')}: ${ratio.toFixed(2)}× (must ≤ ${RSS_MUST})`);
        }
      }
    }
    if (contenders.some((c) => c.name === 'ipc-link-core-rx') && contenders.some((c) => c.name === 'ipc-link-core')) {
      for (const scenario of scenarios) {
        const rx = medians[transport][scenario.name]['ipc-link-core-rx']?.value;
        const plain = medians[transport][scenario.name]['ipc-link-core']?.value;
        if (rx === undefined || !plain) continue;
        const ratio = rx / plain;
        const t = rxTargets[scenario.name];
        const met = t ? (t.higher ? ratio >= t.must : ratio <= t.must) : true;
        const verdict = t ? (met ? 'MET ' : 'MISS') : '    ';
        verdicts.push(`${verdict} ${transport} request$ vs sendTo, ${scenario.title}: ${ratio.toFixed(2)}×${t ? ` (must ${t.higher ? '≥' : '≤'} ${t.must})` : ''}`);
      }
    }
    const higher = (name: string) => runs.find((r) => r.scenario === name && r.result)?.result?.higherIsBetter;
    verdicts.push(...anchorVerdicts(medians[transport], transport, scenarios, higher));
  }
  const startup: Record<string, Awaited<ReturnType<typeof measureStartup>>> = {};
  if (arg('scenarios', 'first-reply').split(',').includes('first-reply')) {
    for (const { label, env } of startupEnvironments()) {
      try {
        startup[label] = await measureStartup(Math.max(5, reps), env);
        const { lines, verdict } = startupReport(startup[label], label);
        console.log(`\n## Startup: a forked child's first reply\n\n${lines.join('\n')}`);
        verdicts.push(verdict);
      } catch (error) {
        verdicts.push(`MISS first reply after fork(), ${label}: failed (${(error as Error).message})`);
      }
    }
  }
  if (verdicts.length) console.log(`\n## ipc-link-core against the targets\n\n${verdicts.join('\n')}`);
  const failures = runs.filter((r) => r.error);
  if (failures.length) console.log(`\n${failures.length} run(s) failed:\n${failures.map((r) => `- ${r.scenario} ${r.transport} ${r.contender}: ${r.error}`).join('\n')}`);
  writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), machine, reps, medians, startup, runs }, null, 1)}\n`);
  console.log(`\n${runs.length} runs in ${((Date.now() - started) / 1000).toFixed(0)} s; results written to ${out}`);
  rmSync(tmp, { recursive: true, force: true });
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows) console.log(line(row));
}

void main();
