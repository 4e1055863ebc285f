import fc from 'fast-check';
import { IdTable } from '../src/IdTable';

describe('IdTable', () => {
  it('holds a lone entry, then more, like a Map', () => {
    const table = new IdTable<string>();
    expect(table.size).toBe(0);
    expect(table.get(1)).toBeUndefined();
    table.add(1, 'a');
    expect(table.size).toBe(1);
    expect(table.has(1)).toBe(true);
    expect(table.get(1)).toBe('a');
    table.add(2, 'b');
    table.add(3, 'c');
    expect(table.size).toBe(3);
    expect(table.values()).toEqual(['a', 'b', 'c']);
    expect(table.delete(1)).toBe(true);
    expect(table.delete(1)).toBe(false);
    expect(table.has(1)).toBe(false);
    table.add(4, 'd');
    expect(table.values()).toEqual(['b', 'c', 'd']);
    table.clear();
    expect(table.size).toBe(0);
    expect(table.values()).toEqual([]);
    table.add(0, 'zero');
    expect(table.get(0)).toBe('zero');
    expect(table.has(-1)).toBe(false);
  });

  it('behaves as a Map (values in insertion order) under any sequence of operations', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), id: fc.integer({ min: 0, max: 8 }) }),
      fc.record({ kind: fc.constant('delete' as const), id: fc.integer({ min: 0, max: 8 }) }),
      fc.record({ kind: fc.constant('clear' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const table = new IdTable<number>();
        const map = new Map<number, number>();
        ops.forEach((o, step) => {
          if (o.kind === 'add') {
            if (map.has(o.id)) return; // add() is for ids not in the table
            table.add(o.id, step);
            map.set(o.id, step);
          } else if (o.kind === 'delete') {
            expect(table.delete(o.id)).toBe(map.delete(o.id));
          } else {
            table.clear();
            map.clear();
          }
          expect(table.size).toBe(map.size);
          expect(table.values()).toEqual([...map.values()]);
          for (let id = 0; id <= 8; id++) {
            expect(table.has(id)).toBe(map.has(id));
            expect(table.get(id)).toBe(map.get(id));
          }
        });
      }),
    );
  });
});
