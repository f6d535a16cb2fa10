/**
 * The shared counter's cost per operation: N worker threads each run
 * `update` on one key of one SharedArrayBuffer table (the worst case: every
 * operation contends for the same lock). Prints one JSON line per N.
 *
 *   node --import tsx bench/shared-counter.ts [ops per worker, default 2,000,000]
 */
import { Worker } from 'node:worker_threads';
import { SabSharedState } from '../src/shared/sab.ts';

const OPS = Number(process.argv[2] ?? 2_000_000);
const MOD = new URL('../src/shared/sab.ts', import.meta.url).href;
const SRC = `
  const { workerData, parentPort } = require('node:worker_threads');
  import(workerData.mod).then(({ SabSharedState }) => {
    const t = new SabSharedState(workerData.buffer).table('bench', { slots: 2, capacity: 1000 });
    const inc = (c) => { c[1]++; };
    for (let i = 0; i < 10000; i++) t.update('route:orders|10.0.0.1', inc);
    parentPort.postMessage('ready');
    parentPort.once('message', () => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < workerData.ops; i++) t.update('route:orders|10.0.0.1', inc);
      parentPort.postMessage(Number(process.hrtime.bigint() - t0));
    });
  });`;

export interface CounterCost { workers: number; nsPerOp: number; opsPerSec: number; exact: boolean }

/** Measures `workers` threads incrementing one key `ops` times each. */
export async function counterCost(workers: number, ops = OPS): Promise<CounterCost> {
  const s = new SabSharedState(undefined, 16 << 20);
  const table = s.table('bench', { slots: 2, capacity: 1000 });
  const ws = Array.from({ length: workers }, () => new Worker(SRC, { eval: true, workerData: { buffer: s.buffer, ops, mod: MOD } }));
  const next = (w: Worker) => new Promise<unknown>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
  await Promise.all(ws.map(next));
  const t0 = process.hrtime.bigint();
  const done = ws.map(next);
  for (const w of ws) w.postMessage('go');
  const per = (await Promise.all(done)) as number[];
  const wall = Number(process.hrtime.bigint() - t0);
  await Promise.all(ws.map((w) => w.terminate()));
  const nsPerOp = per.reduce((a, b) => a + b, 0) / per.length / ops;
  return { workers, nsPerOp: Math.round(nsPerOp), opsPerSec: Math.round((workers * ops) / (wall / 1e9)), exact: table.read('route:orders|10.0.0.1')![1] === workers * (ops + 10000) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const n of [1, 2]) console.log(JSON.stringify(await counterCost(n)));
}
