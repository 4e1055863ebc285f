// Seeded chaos over real nodes (see spec/helpers/chaos.ts for the scenario and its checks): TCP, Unix sockets and
// in-memory links, random interleavings of every kind of call with disconnections, abrupt socket deaths, clients
// replaced and the server restarted. Invariants: no reply or stream value reaches another request, streams in order
// without gaps or duplicates, every call settles (a typed error code or its answer), no one-way message duplicated,
// reordered or lost on a connection that stays up, nothing left pending, no unhandled rejection, close() ends it all,
// and (in a child process) nothing keeps the process alive afterwards.
// A failure names its seed and transport: CHAOS_SEED=<seed> CHAOS_TRANSPORT=<t> npx jest spec/node/chaos.review.spec.ts
import { join } from 'node:path';
import { runChaos, type Transport } from '../helpers/chaos';
import { cleanUp, exitWithin, ROOT, spawnNode } from '../helpers/child';

afterEach(cleanUp);

const only = process.env.CHAOS_SEED ? [Number(process.env.CHAOS_SEED)] : null;
const transports: Transport[] = process.env.CHAOS_TRANSPORT ? [process.env.CHAOS_TRANSPORT as Transport] : ['link', 'tcp', 'unix'];
const SEEDS: Record<Transport, number[]> = { link: [1, 2], tcp: [11, 12, 13], unix: [21, 22, 23] };
/** 300 steps of up to 4 calls each, 10% of the steps disruptions: ~0.5–1 s a run, ~1,000 calls. */
const INTENSITY = { steps: 300, burst: 4, disruptRate: 0.1 };

describe('chaos: seeded random traffic with disruptions', () => {
  for (const transport of transports) {
    for (const seed of only ?? SEEDS[transport]) {
      it(`${transport}, seed ${seed}`, async () => {
        const report = await runChaos(seed, transport, INTENSITY);
        if (report.violations.length > 0) {
          throw new Error(`chaos ${transport} seed ${seed} (CHAOS_SEED=${seed} CHAOS_TRANSPORT=${transport}):\n${report.violations.join('\n')}\noutcomes: ${JSON.stringify(report.outcomes)}`);
        }
        expect(report.calls).toBeGreaterThan(300);
      });
    }
  }

  it('a process that ran the chaos and closed its nodes exits by itself', async () => {
    const child = spawnNode(['-r', 'ts-node/register/transpile-only', join(ROOT, 'spec', 'fixtures', 'chaos-review.ts'), '7', 'tcp', '7', 'link']);
    await child.waitFor('chaos done', 20_000);
    // Every node is closed by then: nothing (a timer, a socket, a heartbeat) may keep the process up. The bound is
    // generous (a grace timer of a closing connection is 2 s at most); a leaked 5 s timer of the scenario failed it.
    expect(await exitWithin(child, 3000)).toEqual({ code: 0, signal: null });
    expect(child.output()).not.toMatch(/violation/);
  });
});
