/**
 * limit-count's fixed-window counters: `local` in a table every worker of the
 * host shares (api.shared), `redis` / `redis-cluster` in one Lua script per
 * request (check and increment atomically in one round trip).
 */
import type { SharedState } from '../../src/plugin.ts';
import { TABLE_FULL } from '../limit/reply.ts';
import type { RedisStore, Script } from '../limit/redis.ts';

/** A request's outcome: `remaining` < 0 means rejected; `resetMs` is the time left in the window. */
export interface Outcome { remaining: number; resetMs: number }

/** Counts one request on `key`; throws (or rejects) when the store fails. */
export type Counter = (key: string) => Outcome | Promise<Outcome>;

/** Live keys one host keeps; past this, new keys fail (closed, unless allow_degradation). */
const CAPACITY = 100_000;

/** Cells: [expiry, count]. The window starts at a key's first request, as APISIX's. */
export function localCounter(shared: SharedState, limit: number, windowMs: number): Counter {
  const table = shared.table('limit-count', { slots: 2, capacity: CAPACITY });
  let resetMs = 0;
  const step = (c: Float64Array, now: number): number => {
    if (c[0] === 0 || c[0] <= now) { c[0] = now + windowMs; c[1] = 0; }
    resetMs = c[0] - now;
    if (c[1] + 1 > limit) return -1;
    c[1] += 1;
    return limit - c[1];
  };
  return (key) => {
    const remaining = table.update(key, step);
    if (remaining === undefined) throw TABLE_FULL;
    return { remaining, resetMs };
  };
}

/**
 * KEYS[1] the counter; ARGV: limit, window (ms), cost. A request over the limit
 * is not counted (APISIX's script counts it too, which only inflates the number).
 * Returns {remaining (-1: rejected), ms left in the window}.
 */
const SCRIPT: Script = {
  name: 'turnpikeLimitCount',
  lua: `
local limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl = redis.call('pttl', KEYS[1])
if ttl < 0 then
  redis.call('set', KEYS[1], cost, 'PX', window)
  return {limit - cost, window}
end
local used = tonumber(redis.call('get', KEYS[1]) or '0')
if used + cost > limit then return {-1, ttl} end
return {limit - redis.call('incrby', KEYS[1], cost), ttl}
`,
};

/** Redis keys carry a format version, as APISIX's (`v1`), so a future format never reads an old key. */
export function redisCounter(store: RedisStore, limit: number, windowMs: number): Counter {
  return async (key) => {
    const [remaining, resetMs] = await store.run(SCRIPT, `plugin-limit-count:v1:${key}`, [limit, windowMs, 1]) as [number, number];
    return { remaining, resetMs };
  };
}
