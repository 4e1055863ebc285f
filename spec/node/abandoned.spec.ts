// An iterator of `node.iterate` dropped without return(): once garbage-collected, its request is cancelled. Before,
// `await node.iterate(…).next()` (a careless way to take the first value) left the request pending on the client
// and the responder's stream open, for the life of the connection.
//
// Each case runs in a child process of its own (spec/fixtures/iterator-gc.js, with --expose-gc): there a full
// collection is quick and sees only this test's objects. In jest's shared worker it took ~0.4 s each, and in a full
// run on a loaded machine 50 of them did not collect the dropped iterator (the four cases failed after 96 s).
import { iteratorGc, killChildren } from '../helpers/child';

afterEach(killChildren);

describe.each(['tcp', 'link'] as const)('an iterator dropped without return() (%s, child process)', (transport) => {
  it('is cancelled once collected: the responder stream ends, no request stays pending on either side', async () => {
    const report = await iteratorGc('collected', transport);
    expect(report).toMatchObject({ first: 0, pendingBefore: 1, cancelled: true, errors: [] });
    expect(report.pulled).toBeLessThanOrEqual(1 + 4 + 1);
  });

  it('dropped while its first next() still waits: that next() gets its value, then the request is cancelled', async () => {
    expect(await iteratorGc('waiting', transport)).toEqual({ finishedEarly: false, first: { value: 0, done: false }, cancelled: true, errors: [] });
  });

  it('one still referenced is never cancelled by a collection: it goes on where it was', async () => {
    expect(await iteratorGc('referenced', transport)).toEqual({ first: 0, finishedEarly: false, second: 1, finishedByReturn: true, errors: [] });
  });
});
