/**
 * Where limit-conn keeps its counts. `local`: a table every worker of the host
 * shares. `redis` / `redis-cluster`: a sorted set per key of the requests in
 * flight (APISIX's layout), each member scored with its expiry, so a gateway
 * that dies holding slots frees them after `key_ttl` seconds instead of never.
 */
import { randomUUID } from 'node:crypto';
import type { SharedState } from '../../src/plugin.ts';
import type { RedisStore, Script } from '../limit/redis.ts';
import { TABLE_FULL } from '../limit/reply.ts';

export interface Slots {
  /** A request's id in the store ('' where the store does not need one). */
  id(): string;
  /** Takes a slot: the requests in flight with this one, or -1 when over the limit. Throws or rejects when the store fails. */
  enter(key: string, id: string): number | Promise<number>;
  /** Gives the slot back; never throws (a failure is `onError`'s). */
  leave(key: string, id: string, onError: (err: unknown) => void): void;
}

/** A slot holder lives at most a day without news; then its key is forgotten (a crashed worker's counts). */
const HOLD_MS = 86_400_000;
const CAPACITY = 100_000;

/** Cells: [expiry, connections]. */
export function localSlots(shared: SharedState, max: number): Slots {
  const table = shared.table('limit-conn', { slots: 2, capacity: CAPACITY });
  const enter = (c: Float64Array, now: number): number => {
    if (c[0] !== 0 && c[0] <= now) c[1] = 0;
    if (c[1] + 1 > max) return -1;
    c[1] += 1;
    c[0] = now + HOLD_MS;
    return c[1];
  };
  const leave = (c: Float64Array, now: number): void => {
    c[1] = c[0] !== 0 && c[0] <= now ? 0 : Math.max(c[1] - 1, 0);
    // An idle key expires at once, so its place in the table can go to another.
    c[0] = c[1] === 0 ? now : now + HOLD_MS;
  };
  return {
    id: () => '',
    enter(key) {
      const conn = table.update(key, enter);
      if (conn === undefined) throw TABLE_FULL;
      return conn;
    },
    leave(key) { table.update(key, leave); },
  };
}

/** KEYS[1] the set; ARGV: max, ttl (s), request id. On Redis's clock, as limit-req's. */
const ENTER: Script = {
  name: 'turnpikeLimitConnEnter',
  lua: `
local max, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = tonumber(redis.call('time')[1])
redis.call('zremrangebyscore', KEYS[1], 0, now)
local count = redis.call('zcard', KEYS[1])
if count >= max then return -1 end
redis.call('zadd', KEYS[1], now + ttl, ARGV[3])
redis.call('expire', KEYS[1], ttl)
return count + 1
`,
};

const LEAVE: Script = { name: 'turnpikeLimitConnLeave', lua: "return redis.call('zrem', KEYS[1], ARGV[1])" };

export function redisSlots(store: RedisStore, max: number, ttl: number): Slots {
  const k = (key: string) => `plugin-limit-conn:v1:${key}`;
  return {
    id: randomUUID,
    enter: async (key, id) => Number(await store.run(ENTER, k(key), [max, ttl, id])),
    leave(key, id, onError) { store.run(LEAVE, k(key), [id]).catch(onError); },
  };
}
