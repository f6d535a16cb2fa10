/**
 * Kong plugins and their Turnpike counterparts: the target's name and its
 * config from Kong's, with Kong's defaults written out (Kong answers 429 where
 * APISIX's limit-count answers 503, Kong's jwt reads `iss` where APISIX reads
 * `key`). Whether a target exists is asked of the plugin registry when the
 * file is imported, not written here.
 */
import { isMap } from '../compat/notes.ts';

type Conf = Record<string, unknown>;

/** What a mapping returns: the target config, and Kong fields it could not carry (each with why). */
export interface Mapped { conf: Conf; lost: string[] }

/** Everything a mapping may need beyond the plugin's own config. */
export interface MapContext {
  /** Consumers per Kong ACL group (acl → consumer-restriction lists consumers, not groups). */
  groups: ReadonlyMap<string, readonly string[]>;
  /** The plugin is set on a consumer: it runs only for requests that consumer made. */
  onConsumer: boolean;
  /** Some authentication plugin is in the file: without one, Kong never knows a consumer. */
  identifies: boolean;
}

export interface KongMapping { target: string; map(c: Conf, ctx: MapContext): Mapped }

const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
const first = (v: unknown): string | undefined => list(v)[0];

/** Kong fields with a value other than their default that the mapping did not use. */
function leftOver(c: Conf, used: readonly string[], defaults: Conf = {}): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(c)) {
    if (used.includes(k) || v === null || v === undefined) continue;
    if (JSON.stringify(v) === JSON.stringify(defaults[k])) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    out.push(`${k} (not carried over)`);
  }
  return out;
}

const RATE_UNITS: [string, number][] = [['second', 1], ['minute', 60], ['hour', 3600], ['day', 86400], ['month', 2592000], ['year', 31536000]];

/**
 * The rules key for Kong's identifier, when a template says exactly what Kong
 * counts by. Kong falls back to the client address when the consumer or header
 * is missing, where an APISIX rule would not apply: so a consumer key is exact
 * only where a consumer is always known (the plugin is on one) or never is.
 */
function identifier(by: string, ctx: MapContext): string | undefined {
  if (by === 'ip') return '$remote_addr';
  if (by !== 'consumer' && by !== 'credential') return undefined;
  if (ctx.onConsumer) return '$consumer_name';
  return ctx.identifies ? undefined : '$remote_addr';
}

/** The plain form's key_type/key for Kong's limit_by (an absent variable counts by client address, as Kong). */
function plainKey(by: string, c: Conf, lost: string[]): Conf {
  if (by === 'header' && typeof c.header_name === 'string') return { key_type: 'var', key: `http_${c.header_name.toLowerCase().replace(/-/g, '_')}` };
  if (by === 'consumer' || by === 'credential') return { key_type: 'var', key: 'consumer_name' };
  if (by !== 'ip') lost.push(`limit_by: ${by} (counted per client address instead)`);
  return { key_type: 'var', key: 'remote_addr' };
}

function rateLimiting(c: Conf, ctx: MapContext): Mapped {
  const windows = RATE_UNITS.filter(([u]) => typeof c[u] === 'number');
  const by = (c.limit_by as string | undefined) ?? 'consumer';
  const lost: string[] = [];
  const conf: Conf = { rejected_code: 429 };
  const key = windows.length > 1 ? identifier(by, ctx) : undefined;
  if (key) {
    // Every window a rule of its own (APISIX 3.x limit-count rules); rule keys must differ.
    conf.rules = windows.map(([u, secs]) => ({ count: c[u], time_window: secs, key: `${key} ${u}`, header_prefix: u }));
  } else {
    if (windows.length) {
      // Without an exact rule key, one window: the one a burst hits first, the smallest
      // count (on a tie the longer window, which refuses longer).
      const [unit, secs] = windows.reduce((a, b) => ((c[b[0]] as number) <= (c[a[0]] as number) ? b : a));
      conf.count = c[unit];
      conf.time_window = secs;
      const what = by === 'credential' ? 'consumer' : by === 'header' ? `${String(c.header_name)} header` : by;
      const why = `a limit-count rule skips a request with no ${what}, where Kong counts it by client address`;
      for (const [u] of windows) if (u !== unit) lost.push(`${u}: ${c[u]} (the ${unit} window, which a burst reaches first, was kept: ${why})`);
    }
    Object.assign(conf, plainKey(by, c, lost));
  }
  if (c.policy === 'redis') {
    const r = (c.redis && typeof c.redis === 'object' ? c.redis : {}) as Conf;
    conf.policy = 'redis';
    // decK writes every field, unset ones as null: null is "not set", never a value.
    conf.redis_host = r.host ?? c.redis_host;
    conf.redis_port = r.port ?? c.redis_port ?? 6379;
    const password = r.password ?? c.redis_password;
    if (password !== undefined && password !== null) conf.redis_password = password;
    conf.redis_database = r.database ?? c.redis_database ?? 0;
  } else if (c.policy === 'cluster') {
    lost.push('policy: cluster (counted per gateway host instead)');
  }
  if (c.fault_tolerant !== undefined) conf.allow_degradation = c.fault_tolerant;
  if (c.hide_client_headers === true) conf.show_limit_quota_header = false;
  lost.push(...leftOver(c, ['second', 'minute', 'hour', 'day', 'month', 'year', 'limit_by', 'header_name', 'policy', 'redis', 'redis_host', 'redis_port', 'redis_password', 'redis_database', 'redis_timeout', 'fault_tolerant', 'hide_client_headers', 'path', 'error_code', 'error_message', 'sync_rate'], { sync_rate: -1 }));
  if (typeof c.error_code === 'number') conf.rejected_code = c.error_code;
  if (typeof c.error_message === 'string') conf.rejected_msg = c.error_message;
  return { conf, lost };
}

function sizeLimit(c: Conf): Mapped {
  const unit = (c.size_unit as string | undefined) ?? 'megabytes';
  const mult = unit === 'bytes' ? 1 : unit === 'kilobytes' ? 1024 : 1024 * 1024;
  return { conf: { max_body_size: Math.round(Number(c.allowed_payload_size ?? 128) * mult) }, lost: leftOver(c, ['allowed_payload_size', 'size_unit', 'require_content_length'], { require_content_length: false }) };
}

/** Kong's cors `methods` default. */
const CORS_METHODS = 'GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT';

/**
 * Kong's cors: no `origins` (or `*`) allows every origin, and with
 * `credentials` Kong echoes the request's Origin (`**` in APISIX's terms); no
 * `headers` echoes Access-Control-Request-Headers (`**`). Kong's default
 * method list is written out, since `*` cannot go with credentials.
 */
function cors(c: Conf): Mapped {
  const origins = list(c.origins);
  const any = !origins.length || (origins.length === 1 && origins[0] === '*');
  const creds = c.credentials === true;
  const conf: Conf = { allow_origins: any ? (creds ? '**' : '*') : origins.join(',') };
  conf.allow_methods = list(c.methods).length ? list(c.methods).join(',') : CORS_METHODS;
  conf.allow_headers = list(c.headers).length ? list(c.headers).join(',') : '**';
  if (list(c.exposed_headers).length) conf.expose_headers = list(c.exposed_headers).join(',');
  if (c.credentials !== undefined) conf.allow_credential = c.credentials;
  if (typeof c.max_age === 'number') conf.max_age = c.max_age;
  return { conf, lost: leftOver(c, ['origins', 'methods', 'headers', 'exposed_headers', 'credentials', 'max_age', 'preflight_continue'], { preflight_continue: false }) };
}

/** Kong's header rules, `Name:value`, as a map. */
function headerMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of list(v)) {
    const i = s.indexOf(':');
    if (i > 0) out[s.slice(0, i).trim()] = s.slice(i + 1).trim();
  }
  return out;
}

/**
 * request-transformer / response-transformer: their header rules, and
 * request-transformer's `replace.uri` as proxy-rewrite's `uri`; body and
 * querystring rules are listed as lost.
 */
function transformer(c: Conf, rewritesUri: boolean): Mapped {
  const headers: Conf = {};
  const part = (k: string) => (c[k] && typeof c[k] === 'object' ? c[k] as Conf : {});
  const set = { ...headerMap(part('replace').headers), ...headerMap(part('add').headers) };
  const add = headerMap(part('append').headers);
  const remove = list(part('remove').headers);
  if (Object.keys(set).length) headers.set = set;
  if (Object.keys(add).length) headers.add = add;
  if (remove.length) headers.remove = remove;
  const lost: string[] = [];
  const uri = part('replace').uri;
  for (const k of ['remove', 'rename', 'replace', 'add', 'append']) {
    for (const [field, v] of Object.entries(part(k))) {
      if (field === 'headers' && k !== 'rename') continue;
      if (field === 'uri' && k === 'replace' && rewritesUri && typeof v === 'string' && !v.includes('$(')) continue;
      if ((Array.isArray(v) && v.length) || (!Array.isArray(v) && v)) lost.push(`${k}.${field} (not carried over)`);
    }
  }
  for (const [k, v] of Object.entries({ ...set, ...add })) if (v.includes('$(')) lost.push(`header ${k}: ${v} (a Lua template; sent as written)`);
  const conf: Conf = Object.keys(headers).length ? { headers } : {};
  if (rewritesUri && typeof uri === 'string' && !uri.includes('$(')) conf.uri = uri;
  if (c.http_method) lost.push(`http_method: ${String(c.http_method)} (not carried over)`);
  return { conf, lost };
}

/**
 * Kong's jwt: the first header, query parameter and cookie name are read
 * (jwt-auth reads one of each), `key_claim_name` (Kong's default `iss`) and
 * `claims_to_verify` carried; the rest listed.
 */
function jwt(c: Conf): Mapped {
  const lost: string[] = [];
  const conf: Conf = { key_claim_name: c.key_claim_name ?? 'iss', header: first(c.header_names) ?? 'authorization', query: first(c.uri_param_names) ?? 'jwt' };
  if (first(c.cookie_names)) conf.cookie = first(c.cookie_names);
  for (const k of ['header_names', 'uri_param_names', 'cookie_names']) if (list(c[k]).length > 1) lost.push(`${k}: only "${first(c[k])}" is read`);
  const claims = list(c.claims_to_verify);
  if (claims.length) conf.claims_to_verify = claims.filter((x) => x === 'exp' || x === 'nbf');
  if (c.secret_is_base64 === true) lost.push('secret_is_base64: true (give the decoded secret, or base64_secret on the credential)');
  lost.push(...leftOver(c, ['key_claim_name', 'header_names', 'uri_param_names', 'cookie_names', 'claims_to_verify', 'secret_is_base64', 'run_on_preflight', 'realm'], { run_on_preflight: true, maximum_expiration: 0 }));
  return { conf, lost };
}

/** Kong's opentelemetry: the sampling rate; where spans go is Turnpike's opentelemetry setup, not the route's. */
function opentelemetry(c: Conf): Mapped {
  const conf: Conf = {};
  if (typeof c.sampling_rate === 'number') conf.sampler = { name: 'trace_id_ratio', options: { fraction: c.sampling_rate } };
  const lost = leftOver(c, ['sampling_rate', 'batch_span_count', 'batch_flush_delay', 'queue', 'connect_timeout', 'send_timeout', 'read_timeout', 'header_type', 'propagation'], { header_type: 'preserve' });
  return { conf, lost };
}

export const KONG_PLUGINS: Readonly<Record<string, KongMapping>> = {
  'key-auth': { target: 'key-auth', map: (c) => {
    const name = first(c.key_names) ?? 'apikey';
    return { conf: { header: name, query: name, ...(c.hide_credentials !== undefined ? { hide_credentials: c.hide_credentials } : {}) },
      lost: [...(list(c.key_names).length > 1 ? [`key_names: only "${name}" is read`] : []), ...leftOver(c, ['key_names', 'hide_credentials', 'run_on_preflight', 'realm'], { key_in_header: true, key_in_query: true, key_in_body: false, run_on_preflight: true })] };
  } },
  'basic-auth': { target: 'basic-auth', map: (c) => ({ conf: c.hide_credentials !== undefined ? { hide_credentials: c.hide_credentials } : {}, lost: leftOver(c, ['hide_credentials', 'realm']) }) },
  'jwt': { target: 'jwt-auth', map: jwt },
  'acl': { target: 'consumer-restriction', map: (c, ctx) => {
    const who = (groups: string[]) => [...new Set(groups.flatMap((g) => ctx.groups.get(g) ?? []))];
    const allow = list(c.allow ?? c.whitelist);
    const deny = list(c.deny ?? c.blacklist);
    const conf: Conf = { rejected_code: 403 };
    // No consumer in an allowed group still means "nobody": a placeholder no consumer can be.
    if (allow.length) conf.whitelist = who(allow).length ? who(allow) : ['(no consumer in these groups)'];
    else if (deny.length) conf.blacklist = who(deny).length ? who(deny) : ['(no consumer in these groups)'];
    return { conf, lost: leftOver(c, ['allow', 'deny', 'whitelist', 'blacklist', 'hide_groups_header', 'include_consumer_groups', 'always_use_authenticated_groups'], { hide_groups_header: false, include_consumer_groups: false, always_use_authenticated_groups: false }) };
  } },
  'rate-limiting': { target: 'limit-count', map: rateLimiting },
  'request-size-limiting': { target: 'client-control', map: sizeLimit },
  'cors': { target: 'cors', map: cors },
  'ip-restriction': { target: 'ip-restriction', map: (c) => {
    const conf: Conf = {};
    if (list(c.allow ?? c.whitelist).length) conf.whitelist = list(c.allow ?? c.whitelist);
    if (list(c.deny ?? c.blacklist).length) conf.blacklist = list(c.deny ?? c.blacklist);
    const lost: string[] = [];
    if (c.status === 403 || c.status === 404) conf.response_code = c.status;
    else if (typeof c.status === 'number') lost.push(`status: ${c.status} (ip-restriction answers 403 or 404; 403 is sent)`);
    if (typeof c.message === 'string') conf.message = c.message;
    return { conf, lost: [...lost, ...leftOver(c, ['allow', 'deny', 'whitelist', 'blacklist', 'status', 'message'])] };
  } },
  'file-log': { target: 'file-logger', map: (c) => ({ conf: { path: c.path }, lost: leftOver(c, ['path', 'reopen', 'custom_fields_by_lua'], { reopen: false }) }) },
  'http-log': { target: 'http-logger', map: (c) => ({ conf: { uri: c.http_endpoint, ...(typeof c.timeout === 'number' ? { timeout: Math.max(1, Math.round(c.timeout / 1000)) } : {}) },
    lost: leftOver(c, ['http_endpoint', 'timeout', 'method', 'content_type', 'keepalive', 'retry_count', 'queue_size', 'flush_timeout', 'queue'], { method: 'POST', content_type: 'application/json', keepalive: 60000, retry_count: 10, queue_size: 1, flush_timeout: 2 }) }) },
  'correlation-id': { target: 'request-id', map: (c) => ({
    conf: { header_name: c.header_name ?? 'Kong-Request-ID', include_in_response: c.echo_downstream ?? false, ...(c.generator === 'uuid' || c.generator === 'uuid#counter' || c.generator === undefined ? {} : { algorithm: 'uuid' }) },
    lost: [...(c.generator === 'tracker' ? ['generator: tracker (a uuid is generated instead)'] : []), ...leftOver(c, ['header_name', 'echo_downstream', 'generator'])] }) },
  'request-termination': { target: 'mocking', map: (c) => ({
    conf: { response_status: c.status_code ?? 503, response_example: (c.body as string | undefined) ?? JSON.stringify({ message: c.message ?? 'Service unavailable' }), content_type: c.content_type ?? 'application/json; charset=utf-8' },
    lost: leftOver(c, ['status_code', 'message', 'body', 'content_type', 'echo', 'trigger'], { echo: false }) }) },
  'request-transformer': { target: 'proxy-rewrite', map: (c) => transformer(c, true) },
  'response-transformer': { target: 'response-rewrite', map: (c) => transformer(c, false) },
  'prometheus': { target: 'prometheus', map: (c) => ({ conf: {}, lost: leftOver(c, ['status_code_metrics', 'latency_metrics', 'bandwidth_metrics', 'upstream_health_metrics', 'ai_metrics'], { per_consumer: false }) }) },
  'opentelemetry': { target: 'opentelemetry', map: opentelemetry },
};

/** Kong's authentication plugins: with none in a file, Kong never identifies a consumer. */
const KONG_AUTH = new Set(['key-auth', 'key-auth-enc', 'basic-auth', 'jwt', 'hmac-auth', 'oauth2', 'oauth2-introspection', 'openid-connect', 'ldap-auth', 'ldap-auth-advanced', 'session', 'mtls-auth', 'vault-auth', 'jwt-signer']);

/** Whether any enabled plugin in any `plugins` list of the Kong file (top level, services, routes, nested) authenticates. */
export function anyAuthPlugin(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(anyAuthPlugin);
  if (!isMap(v)) return false;
  return Object.entries(v).some(([k, x]) => (k === 'plugins' && Array.isArray(x)
    ? x.some((p) => isMap(p) && KONG_AUTH.has(String(p.name)) && p.enabled !== false)
    : false) || anyAuthPlugin(x));
}
