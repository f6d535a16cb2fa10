/**
 * Redis for the tests: a redis-server (redis-server.ts) on a port below the
 * ephemeral range, and two gateways sharing it.
 */
import { after, before } from 'node:test';
import { closeRedisStores } from '../../plugins/limit/redis.ts';
import assert from 'node:assert/strict';
import { eventually, refusedPort, request, startGateway, startUpstream, type TestGateway, type Upstream } from './harness.ts';
import { launchRedis, type TestRedis } from './redis-server.ts';

export type { TestRedis };

/** Starts redis-server (extra `args` appended, e.g. cluster mode) and waits until it answers PING. */
export async function startRedis(args: string[] = []): Promise<TestRedis> {
  // Below the ephemeral range: no port-0 listener of a parallel test can take it while Redis is down.
  return launchRedis(await refusedPort(), args);
}

export interface TwoGateways { redis: TestRedis; up: Upstream; a: TestGateway; b: TestGateway }

/**
 * Registers before/after hooks for one Redis, one echo upstream and two gateways
 * on `yaml(redisPort, upstreamPort)`, each with its own Redis clients, as two
 * hosts would be. `prepare` runs on the fresh Redis first (cluster slots, say);
 * `handler` answers for the upstream as in startUpstream.
 */
export function twoGateways(yaml: (redisPort: number, upstreamPort: number) => string, opts: { args?: string[]; prepare?: (r: TestRedis) => Promise<void>; handler?: Parameters<typeof startUpstream>[0] } = {}): TwoGateways {
  const f = {} as TwoGateways;
  before(async () => {
    f.redis = await startRedis(opts.args);
    await opts.prepare?.(f.redis);
    f.up = await startUpstream(opts.handler);
    const text = yaml(f.redis.port, f.up.port);
    f.a = await startGateway(text);
    closeRedisStores();
    f.b = await startGateway(text);
  });
  after(async () => {
    await f.a?.close();
    await f.b?.close();
    closeRedisStores();
    await f.up?.close();
    await f.redis?.close();
  });
  return f;
}

/**
 * Stops the Redis of `f`, checks that `/closed` answers 500 `{"error_msg":"failed
 * to limit <what>"}` and `/open` (allow_degradation) 200 on both gateways, starts
 * Redis again and waits until `/closed` is served (no gateway restart).
 */
export async function checkOutageAndRecovery(f: TwoGateways, what: string): Promise<void> {
  await f.redis.stop();
  for (const gw of [f.a, f.b]) {
    const closed = await request(gw.port, '/closed');
    assert.equal(closed.status, 500);
    assert.equal(closed.body, `{"error_msg":"failed to limit ${what}"}`);
    assert.equal((await request(gw.port, '/open')).status, 200);
  }
  await f.redis.start();
  for (const gw of [f.a, f.b]) await eventually(async () => (await request(gw.port, '/closed')).status === 200, 10_000, 100);
}
