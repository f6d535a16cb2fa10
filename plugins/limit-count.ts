/**
 * limit-count (APISIX's, priority 1002): at most `count` requests per key in a
 * fixed window of `time_window` seconds that starts at the key's first request;
 * past it, `rejected_code` (503). Answers carry X-RateLimit-Limit, -Remaining
 * and -Reset (whole seconds left in the window) unless show_limit_quota_header
 * is false.
 *
 * ```yaml
 * routes:
 *   - id: orders
 *     uri: /orders
 *     plugins:
 *       limit-count:
 *         count: 100
 *         time_window: 60
 *         key_type: var
 *         key: consumer_name          # absent: the client address
 *         rejected_code: 429
 *         rejected_msg: too many requests
 *         policy: redis               # or local (default), redis-cluster
 *         redis_host: 127.0.0.1
 *         redis_password: ${{REDIS_PASSWORD}}
 *         allow_degradation: false    # Redis down: 500 (true: let requests through)
 * ```
 *
 * Policies. `local` counts across every worker of the host exactly (api.shared);
 * when the shared table is full of live keys (100,000), a new key fails closed
 * (500) unless allow_degradation. `redis` counts across every gateway sharing the
 * Redis, checked and incremented in one Lua script (one round trip); with Redis
 * down or slower than redis_timeout, 500 `{"error_msg":"failed to limit count"}`
 * as APISIX, or the request goes through with allow_degradation.
 *
 * Differences from APISIX, on purpose: a key naming a variable Turnpike does not
 * know is refused at load (APISIX silently counts everyone under the client
 * address); a rejected request is not added to the Redis counter; count and
 * time_window are integers (APISIX's `$var` forms, `rules`, sliding windows and
 * sync_interval are not implemented and refused by the schema).
 */
import schema from '../schemas/limit-count.json' with { type: 'json' };
import { definePlugin, type Ctx, type Reply } from '../src/plugin.ts';
import { localCounter, redisCounter, type Counter, type Outcome } from './limit-count/counters.ts';
import { groupProblem } from './limit-count/group.ts';
import { compileKey, counterKey, keyProblem, namespaceOf, type KeyFn, type KeyType } from './limit/key.ts';
import { redisProblem, redisStore, type RedisConf } from './limit/redis.ts';
import { isThenable, rejection, storeFailed, type RejectConf } from './limit/reply.ts';

interface Conf extends RejectConf, RedisConf {
  count: number;
  time_window: number;
  key: string;
  key_type: KeyType;
  group?: string;
  show_limit_quota_header: boolean;
}

interface State {
  conf: Conf;
  limit: string;
  namespace: string;
  key: KeyFn;
  count: Counter;
  rejected: Readonly<Reply>;
}

/** The quota a request saw, for header_filter: per request, out of reach of other plugins. */
const quota = new WeakMap<Ctx, Outcome>();

function headers(s: State, o: Outcome): Record<string, string> {
  return {
    'x-ratelimit-limit': s.limit,
    'x-ratelimit-remaining': String(Math.max(o.remaining, 0)),
    'x-ratelimit-reset': String(Math.max(Math.ceil(o.resetMs / 1000), 0)),
  };
}

function decide(s: State, ctx: Ctx, o: Outcome): Reply | undefined {
  if (o.remaining < 0) {
    if (!s.conf.show_limit_quota_header) return s.rejected;
    return { status: s.rejected.status, body: s.rejected.body, headers: headers(s, o) };
  }
  if (s.conf.show_limit_quota_header) quota.set(ctx, o);
  return undefined;
}

export default definePlugin<Conf, State>({
  name: 'limit-count',
  version: '0.5',
  priority: 1002,
  schema,
  check: (conf) => keyProblem(conf.key_type, conf.key) ?? redisProblem(conf),
  init(conf, api) {
    if (conf.group !== undefined) {
      const problem = groupProblem(api.load, conf.group, conf, api.where);
      if (problem) throw new Error(problem);
    }
    const windowMs = conf.time_window * 1000;
    return {
      conf,
      limit: String(conf.count),
      namespace: conf.group !== undefined ? `limit-count:group:${conf.group}` : namespaceOf('limit-count', api.scope, conf),
      key: compileKey(conf.key_type, conf.key),
      count: conf.policy === 'local' ? localCounter(api.shared, conf.count, windowMs) : redisCounter(redisStore(conf), conf.count, windowMs),
      rejected: rejection(conf),
    };
  },
  activePhases: (s) => (s.conf.show_limit_quota_header ? ['access', 'header_filter'] : ['access']),
  phases: {
    access(s, ctx) {
      let o: Outcome | Promise<Outcome>;
      try {
        o = s.count(counterKey(s.namespace, s.key(ctx)));
      } catch (err) {
        return storeFailed(s.conf, ctx, 'count', err);
      }
      if (!isThenable(o)) return decide(s, ctx, o);
      return o.then((v) => decide(s, ctx, v), (err) => storeFailed(s.conf, ctx, 'count', err));
    },
    header_filter(s, ctx) {
      const o = quota.get(ctx);
      if (o && ctx.response) Object.assign(ctx.response.headers, headers(s, o));
    },
  },
});
