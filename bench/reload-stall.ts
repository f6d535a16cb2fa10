/**
 * How long one config load holds the event loop: `node --import tsx bench/reload-stall.ts`
 * (ROUTES=1000 by default). Loads the same file alternately parsing on the
 * main thread and on the reload parser's thread, as a running gateway does,
 * and prints the longest gap seen by a 1 ms interval during each load.
 */
import { loadConfigText, yieldToEventLoop } from '../src/config/load.ts';
import { ParseThread } from '../src/config/parse-thread.ts';
import { FunctionPools } from '../src/serverless/pool.ts';
import { gatewayYaml, scenarios } from './configs.ts';

const pools = new FunctionPools();
const parser = new ParseThread();
const routes = Number(process.env.ROUTES ?? 1000);
const text = gatewayYaml(1, 2, scenarios.many(3, routes));
for (const offThread of [false, true, false, true, false, true]) {
  let longest = 0;
  let prev = performance.now();
  const probe = setInterval(() => { const now = performance.now(); longest = Math.max(longest, now - prev); prev = now; }, 1);
  const t0 = performance.now();
  const res = await loadConfigText(text, 'gateway.yaml', { env: {}, functions: (s) => pools.host(s), pause: yieldToEventLoop, parse: offThread ? (t, env) => parser.parse(t, env) : undefined });
  const total = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 5));
  clearInterval(probe);
  if (!res.ok) throw new Error('the generated config did not load');
  console.log(`${routes} routes, YAML parsed ${offThread ? 'off-thread ' : 'on the main'}: load ${total.toFixed(0)} ms, longest event-loop stall ${longest.toFixed(1)} ms`);
}
await pools.close();
await parser.close();
