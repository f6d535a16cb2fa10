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
import type { Ctx } from '../../src/plugin.ts';

export type KeyType = 'var' | 'var_combination' | 'constant';

/** The key of one request: never empty (an absent variable falls back to remote_addr, as APISIX). */
export type KeyFn = (ctx: Ctx) => string;

type Var = (ctx: Ctx) => string | undefined;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : Array.isArray(v) ? v.join(', ') : undefined);

const NAMED: Record<string, Var> = {
  remote_addr: (ctx) => ctx.request.client_ip,
  consumer_name: (ctx) => ctx.consumer?.username,
  route_id: (ctx) => ctx.route.id,
  service_id: (ctx) => ctx.service?.id,
  uri: (ctx) => ctx.request.path,
  request_method: (ctx) => ctx.request.method,
  host: (ctx) => str(ctx.request.headers.host)?.replace(/:\d+$/, '').toLowerCase(),
};

function cookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The reader of one variable, or undefined when Turnpike does not know it. */
export function variable(name: string): Var | undefined {
  if (Object.hasOwn(NAMED, name)) return NAMED[name];
  let m = /^http_([a-z0-9_]+)$/i.exec(name);
  if (m) {
    const header = m[1].toLowerCase().replace(/_/g, '-');
    return (ctx) => str(ctx.request.headers[header]);
  }
  m = /^arg_(.+)$/.exec(name);
  if (m) {
    const arg = m[1];
    return (ctx) => str(ctx.request.query[arg]);
  }
  m = /^cookie_(.+)$/.exec(name);
  if (m) {
    const c = m[1];
    return (ctx) => cookie(str(ctx.request.headers.cookie), c);
  }
  return undefined;
}

const SUPPORTED = 'remote_addr, consumer_name, route_id, service_id, uri, request_method, host, http_<header>, arg_<name>, cookie_<name>';
const TOKEN = /\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+)/g;

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
  const clientIp = NAMED.remote_addr;
  if (keyType === 'constant') return () => key;
  if (keyType === 'var') {
    const name = key.startsWith('$') ? key.slice(1) : key;
    const read = variable(name);
    if (!read) throw new Error(`key "${key}" is not a variable Turnpike knows (supported: ${SUPPORTED})`);
    return (ctx) => read(ctx) || clientIp(ctx)!;
  }
  // var_combination: literal text and $vars; with no variable set, the client address.
  const parts: (string | Var)[] = [];
  let last = 0;
  for (const m of key.matchAll(TOKEN)) {
    const name = m[1] ?? m[2];
    const read = variable(name);
    if (!read) throw new Error(`key "${key}": "$${name}" is not a variable Turnpike knows (supported: ${SUPPORTED})`);
    if (m.index > last) parts.push(key.slice(last, m.index));
    parts.push(read);
    last = m.index + m[0].length;
  }
  if (last < key.length) parts.push(key.slice(last));
  if (!parts.some((p) => typeof p !== 'string')) throw new Error(`key "${key}" has no $variable: use key_type "constant" for a fixed key`);
  return (ctx) => {
    let out = '';
    let resolved = 0;
    for (const p of parts) {
      if (typeof p === 'string') { out += p; continue; }
      const v = p(ctx);
      if (v) { out += v; resolved++; }
    }
    return resolved === 0 ? clientIp(ctx)! : out;
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
