/**
 * Function worker start: `node bench/worker-start.ts`. Seven times, a pool of
 * one worker is created and a trivial function checked; prints the time from
 * creating the pool to the check's answer (the worker's start, its realm
 * locked down, one compile), which is what replacing a worker costs.
 */
import { FunctionPools } from '../src/serverless/pool.ts';

const runs: number[] = [];
for (let i = 0; i < 7; i++) {
  const pools = new FunctionPools();
  const t0 = performance.now();
  const host = pools.host({ enabled: true, threads: 1, concurrency: 4, timeoutMs: 5000, maxQueue: 4, maxHeapMb: 64, maxResultBytes: 1 << 20, allowFsRead: [] });
  const problems = await host.check([{ id: `start-${i}`, label: 'bench', source: 'return () => {}' }]);
  runs.push(performance.now() - t0);
  if (problems.length) throw new Error(problems.join('\n'));
  await pools.close();
}
runs.sort((a, b) => a - b);
console.log(`worker start to first check: median ${runs[3].toFixed(0)} ms, min ${runs[0].toFixed(0)} ms, max ${runs[6].toFixed(0)} ms`);
