/**
 * limit-conn (APISIX's, priority 1003): concurrent requests per key. Up to
 * `conn` run at once; up to `burst` more are let in after a delay
 * (default_conn_delay seconds per multiple of `conn` they are above it, or a
 * delay that follows the measured latency unless only_use_default_delay);
 * beyond, `rejected_code` (503).
 *
 * ```yaml
 * routes:
 *   - id: downloads
 *     uri: /downloads/*
 *     plugins:
 *       limit-conn:
 *         conn: 10
 *         burst: 5
 *         default_conn_delay: 0.1
 *         key_type: var
 *         key: remote_addr
 *         rejected_code: 503
 *         rejected_msg: too many concurrent requests
 * ```
 *
 * A request's slot is released in the log phase, which runs once whenever a
 * response closes, however it ends (finished, client abort, upstream error or
 * timeout, a plugin's failure). A request whose client left before limit-conn
 * took its slot gives it back at once. Policy `local` counts in a table every
 * worker of the host shares (a full table fails closed, 500, unless
 * allow_degradation); `redis` / `redis-cluster` in a sorted set per key shared by
 * every gateway on the Redis, one script per request, each slot expiring after
 * `key_ttl` seconds should its gateway die holding it; Redis down: 500
 * `{"error_msg":"failed to limit conn"}`, or through with allow_degradation. A
 * key naming a variable Turnpike does not know is refused at load.
 */
import schema from '../schemas/limit-conn.json' with { type: 'json' };
import { definePlugin, type Ctx, type Reply } from '../src/plugin.ts';
import { localSlots, redisSlots, type Slots } from './limit-conn/slots.ts';
import { compileKey, counterKey, keyProblem, namespaceOf, type KeyFn } from './limit/key.ts';
import { redisProblem, redisStore, type RedisConf } from './limit/redis.ts';
import { isThenable, rejection, sleep, storeFailed, type RejectConf } from './limit/reply.ts';

interface Conf extends RejectConf, RedisConf {
  conn: number;
  burst: number;
  default_conn_delay: number;
  only_use_default_delay: boolean;
  key: string;
  key_type: 'var' | 'var_combination';
  key_ttl: number;
}

interface State {
  conf: Conf;
  namespace: string;
  key: KeyFn;
  slots: Slots;
  /** Seconds a request waits per multiple of conn it is above it. */
  unitDelay(): number;
  /** Feeds a finished request's latency (seconds) into unitDelay. */
  observe(latency: number): void;
  rejected: Readonly<Reply>;
}

/** A held slot: released once, by the log phase. */
interface Held { s: State; key: string; id: string; started: number; delayMs: number }
/** Set by the log phase: the request is over, so an access that runs late must not keep a slot. */
const ENDED = 'ended';
const holding = new WeakMap<Ctx, Held | typeof ENDED>();

function release(s: State, ctx: Ctx, key: string, id: string): void {
  s.slots.leave(key, id, (err) => { storeFailed({ ...s.conf, allow_degradation: true }, ctx, 'conn', err); });
}

function admitted(s: State, ctx: Ctx, key: string, id: string, conn: number): Reply | undefined | Promise<undefined> {
  if (conn < 0) return s.rejected;
  // The client left while the store answered: the log phase has run already.
  if (holding.get(ctx) === ENDED) { release(s, ctx, key, id); return undefined; }
  const max = s.conf.conn;
  const delayMs = conn > max ? s.unitDelay() * Math.floor((conn - 1) / max) * 1000 : 0;
  holding.set(ctx, { s, key, id, started: performance.now(), delayMs });
  return delayMs >= 1 ? sleep(delayMs).then(() => undefined) : undefined;
}

export default definePlugin<Conf, State>({
  name: 'limit-conn',
  version: '0.1',
  priority: 1003,
  schema,
  check: (conf) => keyProblem(conf.key_type, conf.key) ?? redisProblem(conf),
  init(conf, api) {
    let unit = conf.default_conn_delay;
    const max = conf.conn + conf.burst;
    return {
      conf,
      namespace: namespaceOf('limit-conn', api.scope, conf),
      key: compileKey(conf.key_type, conf.key),
      slots: conf.policy === 'local' ? localSlots(api.shared, max) : redisSlots(redisStore(conf), max, conf.key_ttl),
      unitDelay: () => unit,
      observe: conf.only_use_default_delay ? () => {} : (latency) => { unit = (latency + unit) / 2; },
      rejected: rejection(conf),
    };
  },
  phases: {
    access(s, ctx) {
      if (holding.get(ctx) === ENDED) return undefined;
      const key = counterKey(s.namespace, s.key(ctx));
      const id = s.slots.id();
      let conn: number | Promise<number>;
      try {
        conn = s.slots.enter(key, id);
      } catch (err) {
        return storeFailed(s.conf, ctx, 'conn', err);
      }
      if (!isThenable(conn)) return admitted(s, ctx, key, id, conn);
      return conn.then((c) => admitted(s, ctx, key, id, c), (err) => storeFailed(s.conf, ctx, 'conn', err));
    },
    log(_s, ctx) {
      const held = holding.get(ctx);
      holding.set(ctx, ENDED);
      if (held === undefined || held === ENDED) return;
      release(held.s, ctx, held.key, held.id);
      held.s.observe((performance.now() - held.started - held.delayMs) / 1000);
    },
  },
});
