/**
 * Rewrites what is sent upstream: the path (fixed or by regex), the Host
 * header, and request headers.
 *
 * ```yaml
 * plugins:
 *   proxy-rewrite:
 *     regex_uri: ["^/api/(.*)", "/v2/$1"]
 *     host: internal.example.com
 *     headers:
 *       set: { x-api-version: "2" }
 *       remove: [cookie]
 * ```
 */
import schema from '../schemas/proxy-rewrite.json' with { type: 'json' };
import { definePlugin } from '../src/plugin.ts';

type HeaderMap = Record<string, string | number>;
interface Conf { uri?: string; regex_uri?: [string, string]; host?: string; headers?: { set?: HeaderMap; add?: HeaderMap; remove?: string[] } }
interface State { uri?: string; regex?: RegExp; replacement: string; host?: string; set: [string, string][]; add: [string, string][]; remove: string[] }

const lower = (m: HeaderMap | undefined): [string, string][] => Object.entries(m ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]);

export default definePlugin<Conf, State>({
  name: 'proxy-rewrite',
  version: '1.0.0',
  priority: 1008,
  schema,
  check(conf) {
    if (conf.uri !== undefined && conf.regex_uri !== undefined) return 'give either uri or regex_uri, not both';
    if (conf.regex_uri) {
      try { new RegExp(conf.regex_uri[0]); } catch (err) { return `regex_uri[0] is not a valid regular expression: ${(err as Error).message}`; }
    }
    return undefined;
  },
  init: (conf) => ({
    uri: conf.uri,
    regex: conf.regex_uri ? new RegExp(conf.regex_uri[0]) : undefined,
    replacement: conf.regex_uri?.[1] ?? '',
    host: conf.host,
    set: lower(conf.headers?.set),
    add: lower(conf.headers?.add),
    remove: (conf.headers?.remove ?? []).map((h) => h.toLowerCase()),
  }),
  phases: {
    rewrite(s, ctx) {
      const req = ctx.request;
      if (s.uri !== undefined) req.path = s.uri;
      else if (s.regex && s.regex.test(req.path)) req.path = req.path.replace(s.regex, s.replacement);
      if (s.host !== undefined) ctx.upstreamHost = s.host;
      const h = req.headers;
      for (const name of s.remove) delete h[name];
      for (const [k, v] of s.set) h[k] = v;
      for (const [k, v] of s.add) {
        const prev = h[k];
        h[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
      }
    },
  },
});
