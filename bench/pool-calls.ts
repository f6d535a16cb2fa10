/**
 * The function pool alone, without HTTP: `node --import tsx bench/pool-calls.ts`.
 * C concurrent callers (default 50) run a one-line function N times; prints
 * calls/s and the main thread's busy time per call (event-loop utilization),
 * which is what a function costs the gateway's request path.
 */
import { performance } from 'node:perf_hooks';
import { FunctionPools } from '../src/serverless/pool.ts';
import { RequestData } from '../src/runtime/context.ts';
import type { Ctx } from '../src/plugin.ts';

const pools = new FunctionPools();
const threads = Number(process.env.T ?? 2);
const host = pools.host({ enabled: true, threads, concurrency: 64, timeoutMs: 1000, maxQueue: 1024, maxHeapMb: 128, maxResultBytes: 4 << 20, allowFsRead: [] });
const fns = [{ id: 'bench-pool-calls-0', source: "return (conf, ctx) => { ctx.request.headers['x-fn'] = '1' }", label: 'bench access[0]' }];
const problems = await host.check(fns);
if (problems.length) throw new Error(problems.join('\n'));
const program = host.prepare(fns, {}, 'access', { timeoutMs: 1000, withBody: false });
const ctx = () => ({ request: new RequestData('GET', '/bench', '', { host: '127.0.0.1:8080' }, '127.0.0.1'), vars: {}, route: { id: 'r', uri: '/bench' } }) as unknown as Ctx;

const N = Number(process.env.N ?? 200000);
const C = Number(process.env.C ?? 50);
let started = 0;
async function caller(): Promise<void> {
  while (started < N) { started++; await host.run(program, ctx()); }
}
for (let round = 0; round < 3; round++) {
  started = 0;
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: C }, caller));
  const elu = performance.eventLoopUtilization(elu0);
  const ms = performance.now() - t0;
  console.log(`${threads} thread(s), ${C} callers: ${Math.round((N / ms) * 1000)} calls/s, main thread busy ${((elu.active * 1000) / N).toFixed(2)} µs per call`);
}
await pools.close();
