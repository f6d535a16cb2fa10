/**
 * SharedState for one event loop: a Map per table. The multi-worker
 * implementation keeps this contract; this one serves `validate`, tests and a
 * single-worker gateway.
 */
import type { SharedState, SharedTable } from '../plugin.ts';

const DEFAULT_SLOTS = 2;
const DEFAULT_CAPACITY = 100_000;

class LocalTable implements SharedTable {
  readonly name: string;
  readonly slots: number;
  readonly capacity: number;
  private cells = new Map<string, Float64Array>();
  constructor(name: string, slots: number, capacity: number) {
    this.name = name;
    this.slots = slots;
    this.capacity = capacity;
  }

  update<T>(key: string, fn: (cells: Float64Array, now: number) => T): T | undefined {
    const now = Date.now();
    let c = this.cells.get(key);
    if (c && c[0] !== 0 && c[0] <= now) c.fill(0);
    if (!c) {
      if (this.cells.size >= this.capacity && !this.evictExpired(now)) return undefined;
      c = new Float64Array(this.slots);
      this.cells.set(key, c);
    }
    return fn(c, now);
  }

  read(key: string): Float64Array | undefined {
    const c = this.cells.get(key);
    if (!c || (c[0] !== 0 && c[0] <= Date.now())) return undefined;
    return c.slice();
  }

  /** Drops expired keys; true if any room was made. */
  private evictExpired(now: number): boolean {
    let freed = false;
    for (const [k, c] of this.cells) if (c[0] !== 0 && c[0] <= now) { this.cells.delete(k); freed = true; }
    return freed;
  }
}

/** A SharedState whose tables live in this thread only. */
export class LocalSharedState implements SharedState {
  private tables = new Map<string, LocalTable>();
  table(name: string, opts?: { slots?: number; capacity?: number }): SharedTable {
    let t = this.tables.get(name);
    if (!t) {
      t = new LocalTable(name, Math.max(2, opts?.slots ?? DEFAULT_SLOTS), Math.max(1, opts?.capacity ?? DEFAULT_CAPACITY));
      this.tables.set(name, t);
    }
    return t;
  }
}
