/** The shared-state contract (api.shared), on the single-thread implementation. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LocalSharedState } from '../src/shared/local.ts';

const incr = (cells: Float64Array, now: number, windowMs: number): number => {
  if (cells[0] === 0) cells[0] = now + windowMs;
  return ++cells[1];
};

describe('shared state (local)', () => {
  it('one name is one table; counts accumulate per key', () => {
    const s = new LocalSharedState();
    const a = s.table('limits', { slots: 2, capacity: 10 });
    assert.equal(s.table('limits'), a);
    assert.deepEqual([1, 2, 3].map(() => a.update('k', (c, now) => incr(c, now, 60_000))), [1, 2, 3]);
    assert.equal(a.update('other', (c, now) => incr(c, now, 60_000)), 1);
    assert.equal(a.read('k')![1], 3);
  });

  it('a key past its expiry reads as zeros and starts again', async () => {
    const t = new LocalSharedState().table('w', { slots: 2 });
    t.update('k', (c, now) => incr(c, now, 20));
    t.update('k', (c, now) => incr(c, now, 20));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(t.read('k'), undefined);
    assert.equal(t.update('k', (c, now) => incr(c, now, 20)), 1);
  });

  it('a full table evicts expired keys, and refuses (undefined, fn not called) when all are live', async () => {
    const t = new LocalSharedState().table('full', { slots: 2, capacity: 2 });
    t.update('a', (c, now) => incr(c, now, 20));
    t.update('b', (c, now) => incr(c, now, 60_000));
    let called = false;
    assert.equal(t.update('c', () => { called = true; return 1; }), undefined);
    assert.equal(called, false);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(t.update('c', (c, now) => incr(c, now, 60_000)), 1);
  });
});
