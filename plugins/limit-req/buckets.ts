/**
 * limit-req's leaky buckets (the algorithm of lua-resty-limit-traffic's
 * resty.limit.req, which APISIX uses): `excess` counts requests above the rate,
 * in thousandths, and drains at `rate` per second. A request that would push it
 * past `burst` is rejected and leaves the bucket as it was; one within burst
 * waits excess / rate (unless nodelay).
 */
import type { SharedState } from '../../src/plugin.ts';
import type { RedisStore, Script } from '../limit/redis.ts';
import { TABLE_FULL } from '../limit/reply.ts';

/** Milliseconds the request should wait (0: none), or -1 when rejected. */
export type Bucket = (key: string) => number | Promise<number>;

const CAPACITY = 100_000;

/** Cells: [expiry, excess, last (ms)]; a key expires once its bucket has fully drained. */
export function localBucket(shared: SharedState, rate: number, burst: number): Bucket {
  const table = shared.table('limit-req', { slots: 3, capacity: CAPACITY });
  const burstUnits = burst * 1000;
  const step = (c: Float64Array, now: number): number => {
    let excess = 0;
    if (c[0] !== 0 && c[0] > now) {
      excess = Math.max(c[1] - rate * Math.abs(now - c[2]) + 1000, 0);
      if (excess > burstUnits) return -1;
    }
    c[1] = excess;
    c[2] = now;
    // Past this, a new request's excess would be 0 again: forgetting the key changes nothing.
    c[0] = now + (excess + 1000) / rate;
    return excess / rate;
  };
  return (key) => {
    const delay = table.update(key, step);
    if (delay === undefined) throw TABLE_FULL;
    return delay;
  };
}

/**
 * APISIX's script (one hash key, atomic), on Redis's clock rather than each
 * gateway's so that gateways with skewed clocks share one bucket fairly.
 * ARGV: rate (per second), burst (requests). Returns the delay in ms as a
 * string (Redis truncates Lua numbers in replies), or -1 when rejected.
 */
const SCRIPT: Script = {
  name: 'turnpikeLimitReq',
  lua: `
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]) * 1000
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local state = redis.call('hmget', KEYS[1], 'excess', 'last')
local excess = 0
if state[1] and state[2] then
  excess = math.max(tonumber(state[1]) - rate * math.abs(now - tonumber(state[2])) + 1000, 0)
  if excess > burst then return '-1' end
end
redis.call('hset', KEYS[1], 'excess', tostring(excess), 'last', tostring(now))
redis.call('pexpire', KEYS[1], math.ceil((excess + 1000) / rate) + 1000)
return tostring(excess / rate)
`,
};

export function redisBucket(store: RedisStore, rate: number, burst: number): Bucket {
  return async (key) => Number(await store.run(SCRIPT, `plugin-limit-req:v1:${key}`, [rate, burst]));
}
