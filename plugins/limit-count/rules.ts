/**
 * limit-count's limits, compiled once per load: the plain form
 * (count/time_window/key_type/key) is one rule; APISIX 3.x's `rules` are
 * several, each with its own counter, key and quota header names.
 */
import { compileTemplate, renderTemplate, type Ctx, type SharedState } from '../../src/plugin.ts';
import { compileKey, type KeyType } from '../limit/key.ts';
import { redisStore, type RedisConf } from '../limit/redis.ts';
import { localCounter, redisCounter, type Counter } from './counters.ts';

/** One `rules` item, as written. */
export interface RuleConf { count: number; time_window: number; key: string; header_prefix?: string }

/** The fields of the plugin's config the rules are made from. */
export interface LimitsConf extends RedisConf {
  count?: number;
  time_window?: number;
  key: string;
  key_type: KeyType;
  group?: string;
  rules?: RuleConf[];
}

/** One limit a request is counted against. */
export interface Rule {
  /** `count` as header text. */
  readonly limit: string;
  /** The quota headers' names: limit, remaining, reset. */
  readonly names: readonly [string, string, string];
  readonly namespace: string;
  /** The request's key; undefined when the rule does not apply (a `rules` key with no variable set, as APISIX). */
  readonly key: (ctx: Ctx) => string | undefined;
  readonly count: Counter;
}

const PLAIN_NAMES = ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'] as const;

/** APISIX's rules (limit-count/init.lua check_schema), with its messages; then each rule key compiled. */
export function rulesProblem(conf: LimitsConf): string | undefined {
  if (!conf.rules) return undefined;
  if (conf.count !== undefined || conf.time_window !== undefined) return 'count/time_window and rules cannot be specified at the same time';
  if (conf.group !== undefined) return 'group and rules cannot be specified at the same time';
  const keys = new Set<string>();
  for (const [i, rule] of conf.rules.entries()) {
    // Two rules on one key would count each request twice in one counter (APISIX refuses them too).
    if (keys.has(rule.key)) return `duplicate key '${rule.key}' in rules`;
    keys.add(rule.key);
    try {
      ruleKey(rule.key);
    } catch (err) {
      return `rules[${i}].key: ${(err as Error).message}`;
    }
  }
  return undefined;
}

/** A rule's key: `$variables` and text; no variable set means the rule does not apply. */
function ruleKey(key: string): Rule['key'] {
  const parts = compileTemplate(key, true);
  // A key without a variable never applies (APISIX counts resolved variables): refused rather than dead.
  if (!parts.some((p) => typeof p !== 'string')) throw new Error(`"${key}" has no $variable, so the rule would never apply`);
  return (ctx) => {
    const { text, resolved } = renderTemplate(parts, ctx);
    return resolved === 0 ? undefined : text;
  };
}

function counter(shared: SharedState, conf: LimitsConf, count: number, timeWindow: number): Counter {
  return conf.policy === 'local' ? localCounter(shared, count, timeWindow * 1000) : redisCounter(redisStore(conf), count, timeWindow * 1000);
}

/** The rules of one instance; `namespace` is the instance's (its place and config). */
export function compileRules(conf: LimitsConf, namespace: string, shared: SharedState): readonly Rule[] {
  if (!conf.rules) {
    return [{ limit: String(conf.count), names: PLAIN_NAMES, namespace, key: compileKey(conf.key_type, conf.key), count: counter(shared, conf, conf.count!, conf.time_window!) }];
  }
  return conf.rules.map((r, i) => {
    // APISIX puts the prefix before "RateLimit-": X-1-RateLimit-Limit.
    const p = (r.header_prefix ?? String(i + 1)).toLowerCase();
    return {
      limit: String(r.count),
      names: [`x-${p}-ratelimit-limit`, `x-${p}-ratelimit-remaining`, `x-${p}-ratelimit-reset`] as const,
      namespace: `${namespace}:${i}`,
      key: ruleKey(r.key),
      count: counter(shared, conf, r.count, r.time_window),
    };
  });
}
