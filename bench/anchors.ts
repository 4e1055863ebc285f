/**
 * ipc-link-core against the anchors (issue 13, item 5): what users would pick instead on one machine — a forked
 * child over `process.send` (json, advanced) or a worker thread over `postMessage`. Per row, ours against the best
 * anchor of the run, as a speed ratio (rates: ours / best; times: best / ours), so ≥ 1.0× means at least as fast.
 */
import type { Scenario } from './scenarios';

export const ANCHORS = ['fork-json', 'fork-advanced', 'worker'];

/** Rows with a target: the ~1 KB object row, and the rows where ipc-link-core led when the issue was filed. */
const ANCHOR_TARGETS: Record<string, number> = { 'object-1kb': 1.0, 'oneway-small': 1.0, 'inflight-256': 1.0 };

type Medians = Record<string, Record<string, { value?: number }>>;

/** The verdict lines of one transport (empty when ipc-link-core or every anchor is missing from the run). */
export function anchorVerdicts(medians: Medians, transport: string, scenarios: Scenario[], higherIsBetter: (scenario: string) => boolean | undefined): string[] {
  const lines: string[] = [];
  for (const scenario of scenarios) {
    const ours = medians[scenario.name]?.['ipc-link-core']?.value;
    const higher = higherIsBetter(scenario.name);
    const anchors = ANCHORS.flatMap((name) => {
      const value = medians[scenario.name]?.[name]?.value;
      return value === undefined ? [] : [{ name, value }];
    });
    if (ours === undefined || anchors.length === 0 || higher === undefined) continue;
    const best = anchors.reduce((a, b) => ((higher ? b.value > a.value : b.value < a.value) ? b : a));
    const ratio = higher ? ours / best.value : best.value / ours;
    const must = ANCHOR_TARGETS[scenario.name];
    const verdict = must === undefined ? '    ' : ratio >= must ? 'MET ' : 'MISS';
    lines.push(`${verdict} ${transport} vs best anchor (${best.name}), ${scenario.title}: ${ratio.toFixed(2)}×${must === undefined ? '' : ` (must ≥ ${must.toFixed(1)})`}`);
  }
  return lines;
}
