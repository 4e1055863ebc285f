// An iterator of `node.iterate` dropped without return(): once garbage-collected, its request is cancelled. Before,
// `await node.iterate(…).next()` (a careless way to take the first value) left the request pending on the client
// and the responder's stream open, for the life of the connection.
//
// Each case runs in a child process of its own (spec/fixtures/abandoned.js, with --expose-gc): there a full
// collection is quick and sees only this test's objects. In jest's shared worker it took ~0.4 s each, and in a full
// run on a loaded machine 50 of them did not collect the dropped iterator (the four cases failed after 96 s).
import { join } from 'node:path';
import { killChildren, ROOT, spawnNode } from '../helpers/child';

afterEach(killChildren);

async function run(scenario: 'collected' | 'waiting' | 'referenced', transport: 'tcp' | 'link'): Promise<Record<string, unknown>> {
  const child = spawnNode(['--expose-gc', join(ROOT, 'spec', 'fixtures', 'abandoned.js'), scenario, transport]);
  // It exits by itself once its nodes are closed: nothing of the dropped iterator keeps it up.
  expect(await child.exited).toEqual({ code: 0, signal: null });
  return JSON.parse(child.output().trim()) as Record<string, unknown>;
}

describe.each(['tcp', 'link'] as const)('an iterator dropped without return() (%s, child process)', (transport) => {
  it('is cancelled once collected: the responder stream ends, no request stays pending on either side', async () => {
    const report = await run('collected', transport);
    expect(report).toMatchObject({ first: 0, pendingBefore: 1, cancelled: true, errors: [] });
    expect(report.pulled).toBeLessThanOrEqual(1 + 4 + 1);
  });

  it('dropped while its first next() still waits: that next() gets its value, then the request is cancelled', async () => {
    expect(await run('waiting', transport)).toEqual({ finishedEarly: false, first: { value: 0, done: false }, cancelled: true, errors: [] });
  });

  it('one still referenced is never cancelled by a collection: it goes on where it was', async () => {
    expect(await run('referenced', transport)).toEqual({ first: 0, finishedEarly: false, second: 1, finishedByReturn: true, errors: [] });
  });
});
