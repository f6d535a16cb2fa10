/**
 * The per-request key of limit-count, limit-req and limit-conn (APISIX's
 * `key_type` + `key`), compiled once at load, and the namespace a key is
 * counted in. One definition for the three plugins.
 *
 * Variables, by APISIX's names (others are refused at load, where APISIX would
 * silently count them all under the client address):
 * `remote_addr` (the client address, read through trusted_proxies),
 * `consumer_name`, `route_id`, `service_id`, `uri`, `request_method`,
 * `host` (without port), `http_<header>`, `arg_<query>`, `cookie_<name>`.
 */
import { createHash } from 'node:crypto';
import { compileTemplate, KNOWN_REQUEST_VARIABLES, renderTemplate, variable, type Ctx } from '../../src/plugin.ts';

export type KeyType = 'var' | 'var_combination' | 'constant';

/** The key of one request: never empty (an absent variable falls back to remote_addr, as APISIX). */
export type KeyFn = (ctx: Ctx) => string;

const SUPPORTED = KNOWN_REQUEST_VARIABLES;

/** Why `key` cannot be compiled for `keyType`, or undefined. */
export function keyProblem(keyType: KeyType, key: string): string | undefined {
  try {
    compileKey(keyType, key);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Compiles `key_type` + `key` into a function of the request; throws on an unknown variable. */
export function compileKey(keyType: KeyType, key: string): KeyFn {
  const clientIp = variable('remote_addr')!;
  if (keyType === 'constant') return () => key;
  if (keyType === 'var') {
    const name = key.startsWith('$') ? key.slice(1) : key;
    const read = variable(name, true);
    if (!read) throw new Error(`key "${key}" is not a variable Turnpike knows (supported: ${SUPPORTED})`);
    return (ctx) => read(ctx) || clientIp(ctx)!;
  }
  // var_combination: literal text and $vars; with no variable set, the client address.
  let t;
  try {
    t = compileTemplate(key, true);
  } catch (err) {
    throw new Error(`key "${key}": ${(err as Error).message}`);
  }
  if (!t.some((p) => typeof p !== 'string')) throw new Error(`key "${key}" has no $variable: use key_type "constant" for a fixed key`);
  const parts = t;
  return (ctx) => {
    const { text, resolved } = renderTemplate(parts, ctx);
    return resolved === 0 ? clientIp(ctx)! : text;
  };
}

/** Keys longer than this are hashed: a client's 60 KiB header must not become a 60 KiB table or Redis key. */
const MAX_KEY = 200;

/** The key to count `value` under in `namespace`: bounded in length whatever the client sent. */
export function counterKey(namespace: string, value: string): string {
  const k = `${namespace}:${value}`;
  return k.length <= MAX_KEY ? k : `${namespace}:#${createHash('sha256').update(value).digest('base64url')}`;
}

/**
 * The namespace of one plugin instance: its place (route, service…) and a digest
 * of its config, so a reload that keeps the config keeps the counters and one that
 * changes it starts afresh (APISIX keys by the plugin's conf version likewise).
 */
export function namespaceOf(plugin: string, scope: string, conf: unknown): string {
  return `${plugin}:${scope}:${createHash('sha256').update(canonicalJson(conf)).digest('base64url').slice(0, 12)}`;
}

/** JSON with object keys sorted: equal configs give equal text whatever their key order. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x)
    ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : x));
}
