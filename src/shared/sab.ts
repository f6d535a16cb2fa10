/**
 * SharedState in one SharedArrayBuffer that every thread of the host maps: the
 * main thread creates the arena, each worker attaches to the same buffer, and
 * a table made by name from any thread is the same memory in all of them.
 *
 * Layout (all offsets in bytes, 8-aligned):
 *   arena header  [lock, tables, bump] then a directory of MAX_TABLES entries
 *                 [offset, slots, capacity, entries, name key block]
 *   table         [insert lock, live keys, -, -] then `entries` entries
 *   entry         [state, lock, key block (len, hash, KEY_BYTES bytes), cells f64 × slots]
 *
 * Keys are stored (open addressing, linear probing), so two keys whose hashes
 * collide never share counts. A key longer than KEY_BYTES in UTF-8 is stored as
 * its SHA-256 digest (marked by its length field, so it cannot equal a short key).
 * The arena is one fixed buffer (`maxBytes`, default 1 GiB of address space):
 * the kernel commits its pages only as tables touch them, and its size bounds
 * the whole. Each table reads it through fixed-length views of its own range
 * (whole-buffer length-tracking views of a growable buffer measured 3x slower per operation).
 */
import { createHash } from 'node:crypto';
import { GatewayError } from '../errors.ts';
import type { SharedState, SharedTable } from '../plugin.ts';

const KEY_BYTES = 64;
const DIGEST_MARK = 1000;
const KEY_BLOCK = 8 + KEY_BYTES;
const MAX_TABLES = 1024;
const DIR_ENTRY = 16 + KEY_BLOCK;
const HEADER = 16 + MAX_TABLES * DIR_ENTRY;
const TABLE_HEADER = 16;
const ENTRY_HEAD = 8 + KEY_BLOCK;
const EMPTY = 0, USED = 1, TOMB = 2;
const RETRY: unique symbol = Symbol('retry');
const DEFAULT_SLOTS = 2;
const DEFAULT_CAPACITY = 100_000;
/** How long a lock may stay taken before its holder is taken for dead (a worker terminated inside `fn`). */
const LOCK_BOUND_MS = 1000;
/** Default size of the arena: address space reserved, memory committed only as tables touch it. */
export const DEFAULT_ARENA_BYTES = 1 << 30;

/**
 * Takes the lock at `i32[idx]` (0 free, 1 taken, 2 taken with waiters: a futex
 * mutex, so a waiter sleeps instead of spinning against a holder that lost its
 * core). Past LOCK_BOUND_MS it takes the lock over: its holder is gone (a worker
 * terminated inside `fn`) or stuck, and a counter must not wedge the host.
 */
function lock(i32: Int32Array, idx: number): void {
  let c = Atomics.compareExchange(i32, idx, 0, 1);
  if (c === 0) return;
  for (let spins = 0; spins < 64; spins++) {
    if (Atomics.load(i32, idx) === 0 && (c = Atomics.compareExchange(i32, idx, 0, 1)) === 0) return;
  }
  const deadline = performance.now() + LOCK_BOUND_MS;
  if (c !== 2) c = Atomics.exchange(i32, idx, 2);
  while (c !== 0) {
    Atomics.wait(i32, idx, 2, 1);
    if (performance.now() > deadline) { Atomics.store(i32, idx, 2); return; }
    c = Atomics.exchange(i32, idx, 2);
  }
}

function unlock(i32: Int32Array, idx: number): void {
  if (Atomics.exchange(i32, idx, 0) === 2) Atomics.notify(i32, idx, 1);
}


/** A key encoded once per call into a per-thread scratch block: no allocation for short keys. */
class KeyScratch {
  readonly bytes = new Uint8Array(KEY_BYTES * 3);
  len = 0;
  hash = 0;
  set(key: string): void {
    let len = key.length <= KEY_BYTES / 3 ? encoder.encodeInto(key, this.bytes).written : Buffer.byteLength(key);
    if (len > KEY_BYTES) {
      this.bytes.set(createHash('sha256').update(key).digest());
      len = DIGEST_MARK + 32;
    } else if (key.length > KEY_BYTES / 3) encoder.encodeInto(key, this.bytes);
    this.len = len;
    const n = len > KEY_BYTES ? len - DIGEST_MARK : len;
    let h = 0x811c9dc5;
    for (let i = 0; i < n; i++) h = Math.imul(h ^ this.bytes[i], 0x01000193);
    this.hash = h >>> 0;
  }
  /** Whether the key block at byte offset `at` (len, hash, bytes) holds this key. */
  matches(i32: Int32Array, u8: Uint8Array, at: number): boolean {
    if (i32[at >> 2] !== this.len || i32[(at >> 2) + 1] !== (this.hash | 0)) return false;
    const n = this.len > KEY_BYTES ? this.len - DIGEST_MARK : this.len;
    for (let i = 0, p = at + 8; i < n; i++, p++) if (u8[p] !== this.bytes[i]) return false;
    return true;
  }
  write(i32: Int32Array, u8: Uint8Array, at: number): void {
    i32[at >> 2] = this.len;
    i32[(at >> 2) + 1] = this.hash | 0;
    u8.set(this.bytes.subarray(0, this.len > KEY_BYTES ? this.len - DIGEST_MARK : this.len), at + 8);
  }
}

const encoder = new TextEncoder();
const scratch = new KeyScratch();

class SabTable implements SharedTable {
  readonly name: string;
  readonly slots: number;
  readonly capacity: number;
  private readonly entries: number;
  private readonly stride: number;
  private readonly i32: Int32Array;
  private readonly u8: Uint8Array;
  private readonly f64: Float64Array;
  /** fn's view: a copy, so a kept reference cannot write outside the lock. */
  private readonly work: Float64Array;

  constructor(sab: SharedArrayBuffer, name: string, base: number, slots: number, capacity: number, entries: number) {
    this.name = name;
    this.slots = slots;
    this.capacity = capacity;
    this.entries = entries;
    this.stride = ENTRY_HEAD + 8 * slots;
    const bytes = TABLE_HEADER + entries * this.stride;
    this.i32 = new Int32Array(sab, base, bytes >> 2);
    this.u8 = new Uint8Array(sab, base, bytes);
    this.f64 = new Float64Array(sab, base, bytes >> 3);
    this.work = new Float64Array(slots);
  }

  private at(i: number): number { return TABLE_HEADER + i * this.stride; }

  /** The entry holding the current key (lock-free probe), or -1. */
  private find(): number {
    const { i32, u8, entries } = this;
    for (let p = 0, i = scratch.hash % entries; p < entries; p++, i = i + 1 === entries ? 0 : i + 1) {
      const at = this.at(i);
      const st = Atomics.load(i32, at >> 2);
      if (st === EMPTY) return -1;
      if (st === USED && scratch.matches(i32, u8, at + 8)) return i;
    }
    return -1;
  }

  private run<T>(at: number, fn: (cells: Float64Array, now: number) => T, now: number, fresh: boolean): T {
    const { f64, work, slots } = this;
    const c = (at + ENTRY_HEAD) >> 3;
    if (fresh || (f64[c] !== 0 && f64[c] <= now)) f64.fill(0, c, c + slots);
    for (let s = 0; s < slots; s++) work[s] = f64[c + s];
    const r = fn(work, now);
    for (let s = 0; s < slots; s++) f64[c + s] = work[s];
    return r;
  }

  update<T>(key: string, fn: (cells: Float64Array, now: number) => T): T | undefined {
    scratch.set(key);
    const now = Date.now();
    const i = this.find();
    if (i >= 0) {
      const at = this.at(i), l = (at >> 2) + 1;
      lock(this.i32, l);
      try {
        // Re-checked under the lock: an expired key's place may have been taken meanwhile.
        if (Atomics.load(this.i32, at >> 2) === USED && scratch.matches(this.i32, this.u8, at + 8)) return this.run(at, fn, now, false);
      } finally { unlock(this.i32, l); }
    }
    const r = this.insert(fn, now, true);
    return r === RETRY ? (this.insert(fn, now, false) as T | undefined) : r;
  }

  /**
   * The slow path: under the table's insert lock, find the key again or give it
   * a place. When the table is full it sweeps expired keys (if `sweep`) and
   * answers RETRY when that made room.
   */
  private insert<T>(fn: (cells: Float64Array, now: number) => T, now: number, sweep: boolean): T | undefined | typeof RETRY {
    const { i32, u8, f64, entries } = this;
    const tl = 0;
    lock(i32, tl);
    let held = -1; // an expired entry we hold locked to reuse
    let free = -1; // the first empty or tombstone place
    try {
      for (let p = 0, i = scratch.hash % entries; p < entries; p++, i = i + 1 === entries ? 0 : i + 1) {
        const at = this.at(i), st = i32[at >> 2];
        if (st === EMPTY) { if (free < 0) free = i; break; }
        if (st === TOMB) { if (free < 0) free = i; continue; }
        if (scratch.matches(i32, u8, at + 8)) {
          if (held >= 0) { unlock(i32, (this.at(held) >> 2) + 1); held = -1; }
          lock(i32, (at >> 2) + 1);
          try { return this.run(at, fn, now, false); } finally { unlock(i32, (at >> 2) + 1); }
        }
        const exp = f64[(at + ENTRY_HEAD) >> 3];
        if (held < 0 && free < 0 && exp !== 0 && exp <= now) {
          lock(i32, (at >> 2) + 1);
          const again = f64[(at + ENTRY_HEAD) >> 3];
          if (again !== 0 && again <= now) held = i; else unlock(i32, (at >> 2) + 1);
        }
      }
      if (held >= 0) {
        const at = this.at(held);
        try { scratch.write(i32, u8, at + 8); return this.run(at, fn, now, true); } finally { unlock(i32, (at >> 2) + 1); held = -1; }
      }
      if (free < 0 || i32[tl + 1] >= this.capacity) {
        return sweep && this.sweep(now) > 0 ? RETRY : undefined;
      }
      const at = this.at(free);
      lock(i32, (at >> 2) + 1);
      try {
        scratch.write(i32, u8, at + 8);
        Atomics.store(i32, at >> 2, USED);
        i32[tl + 1]++;
        return this.run(at, fn, now, true);
      } finally { unlock(i32, (at >> 2) + 1); }
    } finally {
      if (held >= 0) unlock(i32, (this.at(held) >> 2) + 1);
      unlock(i32, tl);
    }
  }

  /** Turns every expired key into a tombstone (caller holds the insert lock); returns how many. */
  private sweep(now: number): number {
    const { i32, f64 } = this;
    let freed = 0;
    for (let i = 0; i < this.entries; i++) {
      const at = this.at(i);
      if (i32[at >> 2] !== USED) continue;
      const l = (at >> 2) + 1;
      lock(i32, l);
      const exp = f64[(at + ENTRY_HEAD) >> 3];
      if (exp !== 0 && exp <= now) { Atomics.store(i32, at >> 2, TOMB); freed++; }
      unlock(i32, l);
    }
    i32[1] -= freed;
    return freed;
  }

  read(key: string): Float64Array | undefined {
    scratch.set(key);
    const i = this.find();
    if (i < 0) return undefined;
    const at = this.at(i), l = (at >> 2) + 1, c = (at + ENTRY_HEAD) >> 3;
    lock(this.i32, l);
    try {
      if (Atomics.load(this.i32, at >> 2) !== USED || !scratch.matches(this.i32, this.u8, at + 8)) return undefined;
      const exp = this.f64[c];
      return exp !== 0 && exp <= Date.now() ? undefined : this.f64.slice(c, c + this.slots);
    } finally { unlock(this.i32, l); }
  }
}

/**
 * The host's shared state. `new SabSharedState()` makes an arena (main thread);
 * `new SabSharedState(buffer)` attaches to one made elsewhere (a worker).
 */
export class SabSharedState implements SharedState {
  readonly buffer: SharedArrayBuffer;
  private readonly i32: Int32Array;
  private readonly u8: Uint8Array;
  private tables = new Map<string, SabTable>();

  constructor(buffer?: SharedArrayBuffer, maxBytes = DEFAULT_ARENA_BYTES) {
    this.buffer = buffer ?? new SharedArrayBuffer(Math.max(HEADER, maxBytes));
    this.i32 = new Int32Array(this.buffer, 0, HEADER >> 2);
    this.u8 = new Uint8Array(this.buffer, 0, HEADER);
    if (!buffer) this.i32[2] = HEADER;
  }

  table(name: string, opts?: { slots?: number; capacity?: number }): SharedTable {
    const known = this.tables.get(name);
    if (known) return known;
    const { i32, u8 } = this;
    scratch.set(name);
    lock(i32, 0);
    try {
      const count = i32[1];
      for (let t = 0; t < count; t++) {
        const d = 16 + t * DIR_ENTRY;
        if (scratch.matches(i32, u8, d + 16)) return this.remember(name, d);
      }
      if (count >= MAX_TABLES) throw new GatewayError('GW_ERR_SHARED_FULL', `shared state: no room for table "${name}" (at most ${MAX_TABLES} tables)`);
      const slots = Math.max(2, Math.floor(opts?.slots ?? DEFAULT_SLOTS));
      const capacity = Math.max(1, Math.floor(opts?.capacity ?? DEFAULT_CAPACITY));
      const entries = capacity + Math.ceil(capacity / 4) + 1;
      const offset = i32[2];
      const end = offset + TABLE_HEADER + entries * (ENTRY_HEAD + 8 * slots);
      if (end > this.buffer.byteLength) {
        throw new GatewayError('GW_ERR_SHARED_FULL', `shared state: table "${name}" (${capacity} keys × ${slots} cells) does not fit in the ${this.buffer.byteLength - offset} bytes of shared memory left`);
      }
      const d = 16 + count * DIR_ENTRY;
      i32[(d >> 2)] = offset;
      i32[(d >> 2) + 1] = slots;
      i32[(d >> 2) + 2] = capacity;
      i32[(d >> 2) + 3] = entries;
      scratch.write(i32, u8, d + 16);
      i32[2] = end;
      i32[1] = count + 1;
      return this.remember(name, d);
    } finally { unlock(i32, 0); }
  }

  private remember(name: string, d: number): SabTable {
    const i = d >> 2;
    const t = new SabTable(this.buffer, name, this.i32[i], this.i32[i + 1], this.i32[i + 2], this.i32[i + 3]);
    this.tables.set(name, t);
    return t;
  }
}
