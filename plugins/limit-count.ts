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
 * Several limits on one route (APISIX 3.x `rules`, e.g. Kong's per-minute and
 * per-hour limits): each rule counts on its own key and window, and the first
 * one exhausted rejects; each sends X-<header_prefix>-RateLimit-* headers.
 *
 * ```yaml
 *       limit-count:
 *         rules:
 *           - { count: 10, time_window: 60, key: "$remote_addr", header_prefix: minute }
 *           - { count: 500, time_window: 3600, key: "$remote_addr hour", header_prefix: hour }
 * ```
 *
 * Differences from APISIX, on purpose: a key naming a variable Turnpike does not
 * know is refused at load (APISIX silently counts everyone under the client
 * address), and so is a rule key with no variable (APISIX would never apply
 * it); a rejected request is not added to the Redis counter; count and
 * time_window are integers (APISIX's `$var` forms, sliding windows and
 * sync_interval are not implemented and refused by the schema).
 */
import schema from '../schemas/limit-count.json' with { type: 'json' };
import { definePlugin, type Ctx, type Reply } from '../src/plugin.ts';
import type { Outcome } from './limit-count/counters.ts';
import { groupProblem } from './limit-count/group.ts';
import { compileRules, rulesProblem, type LimitsConf, type Rule } from './limit-count/rules.ts';
import { counterKey, keyProblem, namespaceOf } from './limit/key.ts';
import { redisProblem } from './limit/redis.ts';
import { isThenable, logThrottled, rejection, storeFailed, type RejectConf } from './limit/reply.ts';

interface Conf extends RejectConf, LimitsConf {
  show_limit_quota_header: boolean;
}

interface State {
  conf: Conf;
  rules: readonly Rule[];
  /** `rules` was given: a request no rule applies to is refused (APISIX: 500). */
  ruled: boolean;
  rejected: Readonly<Reply>;
}

/** What each rule counted for a request (by rule position), for header_filter: per request, out of reach of other plugins. */
const quota = new WeakMap<Ctx, (Outcome | undefined)[]>();

const NO_RULE: Readonly<Reply> = Object.freeze({ status: 500 });

function putHeaders(into: Record<string, string>, r: Rule, o: Outcome): void {
  into[r.names[0]] = r.limit;
  into[r.names[1]] = String(Math.max(o.remaining, 0));
  into[r.names[2]] = String(Math.max(Math.ceil(o.resetMs / 1000), 0));
}

/** The rejection by rule `at`, with the quota of the rules counted before it (APISIX had already set theirs). */
function reject(s: State, at: number, o: Outcome, seen: (Outcome | undefined)[] | undefined): Reply {
  if (!s.conf.show_limit_quota_header) return s.rejected;
  const headers: Record<string, string> = {};
  seen?.forEach((p, i) => { if (p) putHeaders(headers, s.rules[i], p); });
  putHeaders(headers, s.rules[at], o);
  return { status: s.rejected.status, body: s.rejected.body, headers };
}

/** Counts the request against rules from `i` on; sync while the counters are (local), a promise once one is not. */
function run(s: State, ctx: Ctx, i: number, seen: (Outcome | undefined)[] | undefined): Reply | undefined | Promise<Reply | undefined> {
  for (; i < s.rules.length; i++) {
    const r = s.rules[i];
    const k = r.key(ctx);
    if (k === undefined) continue;
    let o: Outcome | Promise<Outcome>;
    try {
      o = r.count(counterKey(r.namespace, k));
    } catch (err) {
      return storeFailed(s.conf, ctx, 'count', err);
    }
    if (isThenable(o)) {
      const at = i;
      return o.then((v) => counted(s, ctx, at, seen, v), (err) => storeFailed(s.conf, ctx, 'count', err));
    }
    if (o.remaining < 0) return reject(s, i, o, seen);
    (seen ??= [])[i] = o;
  }
  if (!seen && s.ruled) {
    logThrottled(ctx, 'count:no rule', 'limit-count: no rule applies to the request (every rule key is unset)', { allow_degradation: s.conf.allow_degradation });
    return s.conf.allow_degradation ? undefined : NO_RULE;
  }
  if (seen && s.conf.show_limit_quota_header) quota.set(ctx, seen);
  return undefined;
}

function counted(s: State, ctx: Ctx, i: number, seen: (Outcome | undefined)[] | undefined, o: Outcome): Reply | undefined | Promise<Reply | undefined> {
  if (o.remaining < 0) return reject(s, i, o, seen);
  (seen ??= [])[i] = o;
  return run(s, ctx, i + 1, seen);
}

export default definePlugin<Conf, State>({
  name: 'limit-count',
  version: '0.5',
  priority: 1002,
  schema,
  check: (conf) => rulesProblem(conf) ?? (conf.rules ? undefined : keyProblem(conf.key_type, conf.key)) ?? redisProblem(conf),
  init(conf, api) {
    if (conf.group !== undefined) {
      const problem = groupProblem(api.load, conf.group, conf, api.where);
      if (problem) throw new Error(problem);
    }
    const namespace = conf.group !== undefined ? `limit-count:group:${conf.group}` : namespaceOf('limit-count', api.scope, conf);
    return { conf, rules: compileRules(conf, namespace, api.shared), ruled: conf.rules !== undefined, rejected: rejection(conf) };
  },
  activePhases: (s) => (s.conf.show_limit_quota_header ? ['access', 'header_filter'] : ['access']),
  phases: {
    access: (s, ctx) => run(s, ctx, 0, undefined),
    header_filter(s, ctx) {
      const seen = quota.get(ctx);
      if (!seen || !ctx.response) return;
      const h = ctx.response.headers as Record<string, string>;
      seen.forEach((o, i) => { if (o) putHeaders(h, s.rules[i], o); });
    },
  },
});
