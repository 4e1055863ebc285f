import { Observable, Subject, take } from 'rxjs';
import { decodeFrames } from '../../src';
import { request$, RequestRegistry, withTimeout } from '../../src/internal';
import { requestIterator } from '../../src/rx/requestIterator';
import { frame, wire } from '../helpers/frames';
import { testScheduler } from '../helpers/marbles';

describe('read.review: rx layer', () => {
  it('idleTimeout: a value that arrives synchronously from within the subscriber\'s next leaves no stray idle timer behind (virtual time)', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const source = new Subject<string>();
      // The first value's subscriber pushes the next one at once (a ping-pong over an in-memory link does this).
      let echoed = false;
      const observed = new Observable<string>((subscriber) =>
        withTimeout(source, { timeout: Infinity, idleTimeout: 5, label: 'Ask' }).subscribe({
          next(value) {
            subscriber.next(value);
            if (!echoed) {
              echoed = true;
              source.next('b');
            }
          },
          error: (error) => subscriber.error(error),
          complete: () => subscriber.complete(),
        }),
      );
      cold('-a 3ms c 3ms d 3ms |').subscribe({ next: (v) => source.next(v), complete: () => source.complete() });
      // Values at 1, 1, 5, 9 and completion at 13: never 5 ms without a value.
      expectObservable(observed).toBe('-(ab)c 3ms d 3ms |');
    });
  });

  it('idleTimeout: a subscriber that leaves within next (take(1)) unsubscribes a synchronous source at once', () => {
    let emitted = 0;
    const source = new Observable<number>((subscriber) => {
      for (let i = 0; i < 1000 && !subscriber.closed; i++) {
        emitted++;
        subscriber.next(i);
      }
    });
    const values: number[] = [];
    withTimeout(source, { timeout: Infinity, idleTimeout: 1000, scheduler: testScheduler() }).pipe(take(1)).subscribe((v) => values.push(v));
    expect(values).toEqual([0]);
    expect(emitted).toBe(1);
  });

  it('request$ grants no credits for a single REPLY (its id already left the table) (as StreamRequest already did)', () => {
    const registry = new RequestRegistry();
    const grants: Array<[number, number]> = [];
    let sent = 0;
    const values: unknown[] = [];
    request$(registry, (id) => (sent = id), { timeout: Infinity, window: 1, grant: (id, n) => grants.push([id, n]) }).subscribe((v) => values.push(v));
    const observer = registry.take(sent)!;
    observer.next('pong');
    observer.complete();
    expect(values).toEqual(['pong']);
    expect(grants).toEqual([]);
  });

  it('iterate (requestIterator) grants no credits for a single REPLY either', async () => {
    const registry = new RequestRegistry();
    const grants: Array<[number, number]> = [];
    let sent = 0;
    const iterator = requestIterator<string>(registry, (id) => (sent = id), {
      window: 1,
      timeout: Infinity,
      idleTimeout: Infinity,
      label: 'Ask',
      grant: (id, n) => grants.push([id, n]),
      cancel: () => undefined,
      schedule: () => () => undefined,
    });
    const first = iterator.next();
    const observer = registry.take(sent)!;
    observer.next('pong');
    observer.complete();
    expect(await first).toEqual({ value: 'pong', done: false });
    expect(await iterator.next()).toEqual({ value: undefined, done: true });
    expect(grants).toEqual([]);
  });

  it('decodeFrames: a subscriber that leaves within next (take(1)) unsubscribes a synchronous source at once', () => {
    const chunk = wire(frame({ id: 1 }));
    let emitted = 0;
    const source = new Observable<Buffer>((subscriber) => {
      for (let i = 0; i < 1000 && !subscriber.closed; i++) {
        emitted++;
        subscriber.next(chunk);
      }
      subscriber.complete();
    });
    const ids: number[] = [];
    source.pipe(decodeFrames(), take(1)).subscribe((f) => ids.push(f.id));
    expect(ids).toEqual([1]);
    expect(emitted).toBe(1);
  });
});
