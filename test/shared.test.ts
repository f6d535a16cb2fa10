/** The shared-state contract (api.shared): the single-thread and the SharedArrayBuffer implementations, and the SAB one across threads. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import type { SharedState } from '../src/plugin.ts';
import { LocalSharedState } from '../src/shared/local.ts';
import { SabSharedState } from '../src/shared/sab.ts';

const incr = (cells: Float64Array, now: number, windowMs: number): number => {
  if (cells[0] === 0) cells[0] = now + windowMs;
  return ++cells[1];
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const impls: { desc: string; make: () => SharedState }[] = [
  { desc: 'local', make: () => new LocalSharedState() },
  { desc: 'SharedArrayBuffer', make: () => new SabSharedState(undefined, 64 << 20) },
];

for (const { desc, make } of impls) {
  describe(`shared state (${desc})`, () => {
    it('one name is one table; counts accumulate per key', () => {
      const s = make();
      const a = s.table('limits', { slots: 2, capacity: 10 });
      assert.equal(s.table('limits'), a);
      assert.deepEqual([1, 2, 3].map(() => a.update('k', (c, now) => incr(c, now, 60_000))), [1, 2, 3]);
      assert.equal(a.update('other', (c, now) => incr(c, now, 60_000)), 1);
      assert.equal(a.read('k')![1], 3);
      assert.equal(a.read('absent'), undefined);
    });

    it('a key past its expiry reads as zeros and starts again', async () => {
      const t = make().table('w', { slots: 2 });
      t.update('k', (c, now) => incr(c, now, 20));
      t.update('k', (c, now) => incr(c, now, 20));
      await sleep(40);
      assert.equal(t.read('k'), undefined);
      assert.equal(t.update('k', (c, now) => incr(c, now, 20)), 1);
    });

    it('a full table evicts expired keys, and refuses (undefined, fn not called) when all are live', async () => {
      const t = make().table('full', { slots: 2, capacity: 2 });
      t.update('a', (c, now) => incr(c, now, 20));
      t.update('b', (c, now) => incr(c, now, 60_000));
      let called = false;
      assert.equal(t.update('c', () => { called = true; return 1; }), undefined);
      assert.equal(called, false);
      await sleep(40);
      assert.equal(t.update('c', (c, now) => incr(c, now, 60_000)), 1);
      assert.equal(t.read('b')![1], 1);
      assert.equal(t.update('d', () => 1), undefined);
    });

    it('keys that share a hash slot, long keys and non-ASCII keys keep their own counts', () => {
      // 40 keys in 51 places: many land on a taken place and probe on.
      const many = make().table('many', { slots: 2, capacity: 40 });
      const names = Array.from({ length: 40 }, (_, i) => `client-${i}`);
      names.forEach((k, i) => { for (let n = 0; n <= i % 7; n++) many.update(k, (c, now) => incr(c, now, 60_000)); });
      assert.deepEqual(names.map((k) => many.read(k)![1]), names.map((_, i) => (i % 7) + 1));
      const t = make().table('collide', { slots: 2, capacity: 4 });
      const long = 'x'.repeat(200);
      const keys = ['a', 'b', 'c', `${long}1`, `${long}2`, 'é'.repeat(40), 'é'.repeat(41)];
      const few = keys.slice(0, 4);
      few.forEach((k, i) => { for (let n = 0; n <= i; n++) t.update(k, (c, now) => incr(c, now, 60_000)); });
      assert.deepEqual(few.map((k) => t.read(k)![1]), [1, 2, 3, 4]);
      assert.equal(t.read(`${long}2`), undefined);
      const u = make().table('long', { slots: 2, capacity: 8 });
      keys.forEach((k, i) => { for (let n = 0; n <= i; n++) u.update(k, (c, now) => incr(c, now, 60_000)); });
      assert.deepEqual(keys.map((k) => u.read(k)![1]), [1, 2, 3, 4, 5, 6, 7]);
    });

    it('a throwing fn leaves the key usable and unchanged', () => {
      const t = make().table('throw', { slots: 3 });
      t.update('k', (c) => { c[1] = 5; });
      assert.throws(() => t.update('k', () => { throw new Error('boom'); }), /boom/);
      assert.equal(t.update('k', (c) => ++c[1]), 6);
    });
  });
}

/** Runs `n` threads that each increment key `k` of table `t` `times` times in the arena `buffer`. */
function hammer(buffer: SharedArrayBuffer, n: number, times: number, hold = false): Worker[] {
  const src = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.mod).then(({ SabSharedState }) => {
      const t = new SabSharedState(workerData.buffer).table('t', { slots: 2, capacity: 100 });
      if (workerData.hold) { parentPort.postMessage('holding'); t.update('k', () => { for (;;); }); }
      for (let i = 0; i < workerData.times; i++) t.update('k', (c) => { c[1]++; });
      parentPort.postMessage('done');
    });`;
  const mod = new URL('../src/shared/sab.ts', import.meta.url).href;
  return Array.from({ length: n }, () => new Worker(src, { eval: true, workerData: { buffer, times, mod, hold } }));
}
const message = (w: Worker) => new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });

describe('shared state across threads', () => {
  it('two workers incrementing one key concurrently lose nothing (exact total)', async () => {
    const s = new SabSharedState(undefined, 16 << 20);
    const table = s.table('t', { slots: 2, capacity: 100 });
    const workers = hammer(s.buffer, 2, 100_000);
    for (let i = 0; i < 50_000; i++) table.update('k', (c) => { c[1]++; });
    await Promise.all(workers.map(message));
    await Promise.all(workers.map((w) => w.terminate()));
    assert.equal(table.read('k')![1], 250_000);
  });

  it('a table made in one thread is the same table in another (sizes of the first call win)', async () => {
    const s = new SabSharedState(undefined, 16 << 20);
    const [w] = hammer(s.buffer, 1, 10);
    await message(w);
    await w.terminate();
    const t = s.table('t', { slots: 5, capacity: 7 });
    assert.deepEqual([t.slots, t.capacity, t.read('k')![1]], [2, 100, 10]);
  });

  it('a worker terminated while holding a key does not wedge it: the lock is taken over past its bound', async () => {
    const s = new SabSharedState(undefined, 16 << 20);
    const [w] = hammer(s.buffer, 1, 0, true);
    await message(w);
    await sleep(20);
    await w.terminate();
    assert.equal(s.table('t').update('k', (c) => ++c[1]), 1);
  });

  it('an arena without room for a table says so with the table name', () => {
    const s = new SabSharedState(undefined, 1 << 20);
    assert.throws(() => s.table('huge', { slots: 2, capacity: 1_000_000 }), { code: 'GW_ERR_SHARED_FULL', message: /table "huge"/ });
  });
});
