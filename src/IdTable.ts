/**
 * A table id → value with the Map operations the pending-request tables need, and one slot outside the Map for
 * the common case of a single entry (a caller that awaits each request before sending the next).
 *
 * Why: a `Map` that holds one entry at a time and sees a fresh key each time (set id 1, delete 1, set 2, delete
 * 2…) rebuilds its hash table every other operation in V8 — about 150 bytes of garbage per request on each side
 * of a sequential round trip (measured; bench/README.md, "A short tail"). Here the first entry of an empty table
 * lives in two fields instead and allocates nothing.
 *
 * Iteration ({@link IdTable.values}) keeps insertion order: the slot is filled only while the Map is empty, so
 * when it holds an entry, that entry is the oldest.
 */
export class IdTable<V> {
  private readonly map = new Map<number, V>();
  /** The slot: `soloId` is -1 when it is empty (ids are u32, never negative). */
  private soloId = -1;
  private solo: V | undefined = undefined;

  /** Number of entries. */
  get size(): number {
    return this.map.size + (this.soloId === -1 ? 0 : 1);
  }

  has(id: number): boolean {
    return id === this.soloId || this.map.has(id);
  }

  get(id: number): V | undefined {
    return id === this.soloId ? this.solo : this.map.get(id);
  }

  /** Adds `value` under `id`, which must not be in the table (callers check with {@link IdTable.has}). */
  add(id: number, value: V): void {
    if (this.soloId === -1 && this.map.size === 0) {
      this.soloId = id;
      this.solo = value;
    } else {
      this.map.set(id, value);
    }
  }

  /** Removes `id`; true when it was there. */
  delete(id: number): boolean {
    if (id === this.soloId) {
      this.soloId = -1;
      this.solo = undefined;
      return true;
    }
    return this.map.delete(id);
  }

  /** The values, oldest first (a copy: the table may change while the caller goes through them). */
  values(): V[] {
    const values = this.soloId === -1 ? [] : [this.solo as V];
    for (const value of this.map.values()) values.push(value);
    return values;
  }

  /** Removes everything. */
  clear(): void {
    this.soloId = -1;
    this.solo = undefined;
    this.map.clear();
  }
}
