/**
 * CORS: a preflight (OPTIONS with Access-Control-Request-Method) is answered
 * 200 at the gateway, without the upstream; every response to an allowed
 * Origin gets the Access-Control-* headers.
 *
 * ```yaml
 * plugins:
 *   cors:
 *     allow_origins: "https://app.example.com,https://admin.example.com"
 *     allow_methods: "GET,POST"
 *     allow_headers: "Authorization,Content-Type"
 *     expose_headers: "X-Request-Id"
 *     max_age: 600
 *     allow_credential: true
 * # or, for every subdomain:
 * #   allow_origins_by_regex: ['https://[a-z0-9-]+\.example\.com']
 * ```
 *
 * Where APISIX falls short, this plugin does better:
 * - An origin that is not allowed gets no CORS header at all (APISIX sends a
 *   single configured origin back to any caller).
 * - `allow_origins_by_regex` must match the whole Origin: APISIX searches, so
 *   `.*\.example\.com` also lets in `https://evil.example.com.attacker`.
 * - `Vary: Origin` is sent whenever the answer depends on the Origin, regex
 *   rules included (APISIX leaves it out when allow_origins keeps its `*`
 *   default, so a shared cache may hand one origin's answer to another).
 * - With `allow_origins_by_regex`, the ignored `allow_origins` default `*`
 *   does not count against `allow_credential`.
 * - Only a real preflight is answered here; other OPTIONS requests reach the
 *   upstream (APISIX answers every OPTIONS with 200).
 * `allow_origins_by_metadata` (plugin metadata) does not exist in Turnpike:
 * a config naming it is refused rather than silently widened or narrowed.
 */
import schema from '../schemas/cors.json' with { type: 'json' };
import { compileRegex, definePlugin, type Ctx, type ResponseView } from '../src/plugin.ts';

interface Conf {
  allow_origins: string; allow_methods: string; allow_headers: string; expose_headers?: string; max_age: number;
  allow_credential: boolean; allow_origins_by_regex?: string[]; timing_allow_origins?: string; timing_allow_origins_by_regex?: string[];
}

/** How an Origin is judged: `*` for anyone, `**` echoed, a list, or regexes. */
type OriginRule = { kind: 'any' } | { kind: 'echo' } | { kind: 'list'; set: ReadonlySet<string> } | { kind: 'regex'; res: readonly RegExp[] };

interface State {
  origins: OriginRule;
  /** The answer depends on the request's Origin: caches must key on it. */
  vary: boolean;
  methods: string;
  /** undefined: echo Access-Control-Request-Headers (`**`). */
  headers: string | undefined;
  expose: string | undefined;
  maxAge: string;
  credential: boolean;
  timing: OriginRule | undefined;
}

const ALL_METHODS = 'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE';

/** A configured origin regex, matched against the whole origin, in linear time. */
function compileOriginRegex(source: string, where: string): RegExp {
  return compileRegex(`^(?:${source})$`, where);
}

function originRule(list: string | undefined, regexes: readonly string[] | undefined): OriginRule | undefined {
  if (regexes) return { kind: 'regex', res: regexes.map((re, i) => compileOriginRegex(re, `regex[${i}]`)) };
  if (list === undefined) return undefined;
  if (list === '*') return { kind: 'any' };
  if (list === '**') return { kind: 'echo' };
  return { kind: 'list', set: new Set(list.split(',')) };
}

/** The Access-Control-Allow-Origin value for `origin`, or undefined when it is not allowed. */
function allowed(rule: OriginRule, origin: string | undefined): string | undefined {
  switch (rule.kind) {
    case 'any': return '*';
    case 'echo': return origin ?? '*';
    case 'list': return origin !== undefined && rule.set.has(origin) ? origin : undefined;
    case 'regex':
      if (origin === undefined) return undefined;
      for (const re of rule.res) if (re.test(origin)) return origin;
      return undefined;
  }
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Adds `Origin` to Vary, keeping what the upstream put there. */
function varyOnOrigin(res: ResponseView): void {
  const prev = res.headers.vary;
  if (prev === undefined) { res.headers.vary = 'Origin'; return; }
  const text = Array.isArray(prev) ? prev.join(', ') : String(prev);
  if (!/(^|,)\s*(origin|\*)\s*(,|$)/i.test(text)) res.headers.vary = `${text}, Origin`;
}

function setCors(s: State, ctx: Ctx, res: ResponseView, allowOrigin: string): void {
  const h = res.headers;
  h['access-control-allow-origin'] = allowOrigin;
  h['access-control-allow-methods'] = s.methods;
  h['access-control-max-age'] = s.maxAge;
  if (s.expose !== undefined) h['access-control-expose-headers'] = s.expose;
  const allowHeaders = s.headers ?? single(ctx.request.headers['access-control-request-headers']);
  if (allowHeaders !== undefined) h['access-control-allow-headers'] = allowHeaders;
  if (s.credential) h['access-control-allow-credentials'] = 'true';
}

export default definePlugin<Conf, State>({
  name: 'cors',
  version: '1.0.0',
  priority: 4000,
  schema,
  check(conf) {
    if (conf.allow_credential) {
      const star = (['allow_methods', 'allow_headers', 'expose_headers', 'timing_allow_origins'] as const).find((k) => conf[k] === '*')
        ?? (conf.allow_origins_by_regex === undefined && conf.allow_origins === '*' ? 'allow_origins' : undefined);
      if (star) return `${star} cannot be '*' when allow_credential is true (browsers refuse it; list the values, or use '**' knowingly)`;
    }
    for (const key of ['allow_origins_by_regex', 'timing_allow_origins_by_regex'] as const) {
      for (const [i, re] of (conf[key] ?? []).entries()) {
        try { new RegExp(re); } catch (err) { return `${key}[${i}] is not a valid regular expression: ${(err as Error).message}`; }
        try { compileOriginRegex(re, `${key}[${i}]`); } catch (err) { return (err as Error).message; }
      }
    }
    return undefined;
  },
  init(conf) {
    const origins = originRule(conf.allow_origins, conf.allow_origins_by_regex)!;
    return {
      origins,
      vary: origins.kind !== 'any',
      methods: conf.allow_methods === '**' ? ALL_METHODS : conf.allow_methods,
      headers: conf.allow_headers === '**' ? undefined : conf.allow_headers,
      expose: conf.expose_headers || undefined,
      maxAge: String(conf.max_age),
      credential: conf.allow_credential,
      timing: originRule(conf.timing_allow_origins, conf.timing_allow_origins_by_regex),
    };
  },
  phases: {
    rewrite(_s, ctx) {
      const req = ctx.request;
      if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) return { status: 200 };
      return undefined;
    },
    header_filter(s, ctx) {
      const res = ctx.response!;
      const origin = single(ctx.request.headers.origin);
      if (s.vary) varyOnOrigin(res);
      const allowOrigin = allowed(s.origins, origin);
      if (allowOrigin !== undefined) setCors(s, ctx, res, allowOrigin);
      if (s.timing) {
        const t = allowed(s.timing, origin);
        if (t !== undefined) res.headers['timing-allow-origin'] = t;
      }
    },
  },
});
