/**
 * limit-req (APISIX's, priority 1001): a leaky bucket per key. Up to `rate`
 * requests per second go through; up to `burst` more are delayed to the rate
 * (the request waits in access, without holding the event loop) or let through
 * at once with `nodelay`; beyond that, `rejected_code` (503).
 *
 * ```yaml
 * routes:
 *   - id: search
 *     uri: /search
 *     plugins:
 *       limit-req:
 *         rate: 10                    # per second
 *         burst: 5
 *         key: remote_addr            # or key_type: var_combination, key: "$consumer_name $remote_addr"
 *         nodelay: false
 *         rejected_code: 429
 *         policy: local               # or redis (redis_host, redis_port…)
 * ```
 *
 * `local` keeps the buckets in a table every worker of the host shares (a full
 * table fails new keys closed, 500, unless allow_degradation); `redis` in one
 * Lua script per request on Redis's clock, shared by every gateway on the Redis;
 * Redis down or slower than redis_timeout: 500 `{"error_msg":"failed to limit
 * req"}`, or through with allow_degradation. A key naming a variable Turnpike
 * does not know is refused at load (APISIX would count everyone as one client).
 */
import schema from '../schemas/limit-req.json' with { type: 'json' };
import { definePlugin, type Reply } from '../src/plugin.ts';
import { localBucket, redisBucket, type Bucket } from './limit-req/buckets.ts';
import { compileKey, counterKey, keyProblem, namespaceOf, type KeyFn } from './limit/key.ts';
import { redisProblem, redisStore, type RedisConf } from './limit/redis.ts';
import { isThenable, rejection, sleep, storeFailed, type RejectConf } from './limit/reply.ts';

interface Conf extends RejectConf, RedisConf {
  rate: number;
  burst: number;
  key: string;
  key_type: 'var' | 'var_combination';
  nodelay: boolean;
}

interface State {
  conf: Conf;
  namespace: string;
  key: KeyFn;
  bucket: Bucket;
  rejected: Readonly<Reply>;
}

function decide(s: State, delayMs: number): Reply | undefined | Promise<undefined> {
  if (delayMs < 0) return s.rejected;
  if (delayMs >= 1 && !s.conf.nodelay) return sleep(delayMs).then(() => undefined);
  return undefined;
}

export default definePlugin<Conf, State>({
  name: 'limit-req',
  version: '0.1',
  priority: 1001,
  schema,
  check: (conf) => keyProblem(conf.key_type, conf.key) ?? redisProblem(conf),
  init: (conf, api) => ({
    conf,
    namespace: namespaceOf('limit-req', api.scope, conf),
    key: compileKey(conf.key_type, conf.key),
    bucket: conf.policy === 'local' ? localBucket(api.shared, conf.rate, conf.burst) : redisBucket(redisStore(conf), conf.rate, conf.burst),
    rejected: rejection(conf),
  }),
  phases: {
    access(s, ctx) {
      let d: number | Promise<number>;
      try {
        d = s.bucket(counterKey(s.namespace, s.key(ctx)));
      } catch (err) {
        return storeFailed(s.conf, ctx, 'req', err);
      }
      if (!isThenable(d)) return decide(s, d);
      return d.then((v) => decide(s, v), (err) => storeFailed(s.conf, ctx, 'req', err));
    },
  },
});
