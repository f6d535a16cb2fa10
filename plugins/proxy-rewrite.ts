/**
 * Rewrites what is sent upstream: the path (fixed or by regex), the Host
 * header, and request headers. The gateway normalises the new path again
 * (no `//host/x`, no climbing above `/`); the regex runs in linear time.
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
import { applyHeaderOps, compileHeaderOps, compileRegex, definePlugin, type HeaderChanges, type HeaderOps } from '../src/plugin.ts';

interface Conf { uri?: string; regex_uri?: string[]; host?: string; headers?: HeaderChanges }
interface State { uri?: string; pairs: readonly (readonly [RegExp, string])[]; host?: string; headers: HeaderOps }

/** regex_uri's [regex, replacement] pairs, compiled. */
function compilePairs(list: readonly string[]): [RegExp, string][] {
  const out: [RegExp, string][] = [];
  for (let i = 0; i < list.length; i += 2) out.push([compileRegex(list[i], `regex_uri[${i}]`), list[i + 1]]);
  return out;
}

export default definePlugin<Conf, State>({
  name: 'proxy-rewrite',
  version: '1.0.0',
  priority: 1008,
  schema,
  check(conf) {
    if (conf.uri !== undefined && conf.regex_uri !== undefined) return 'give either uri or regex_uri, not both';
    if (conf.regex_uri) {
      if (conf.regex_uri.length % 2) return 'regex_uri holds [regex, replacement] pairs: give it an even number of strings';
      try { compilePairs(conf.regex_uri); } catch (err) { return (err as Error).message; }
    }
    return undefined;
  },
  init: (conf) => ({
    uri: conf.uri,
    pairs: conf.regex_uri ? compilePairs(conf.regex_uri) : [],
    host: conf.host,
    headers: compileHeaderOps(conf.headers),
  }),
  phases: {
    rewrite(s, ctx) {
      const req = ctx.request;
      if (s.uri !== undefined) req.path = s.uri;
      else {
        for (const [re, replacement] of s.pairs) {
          if (re.test(req.path)) { req.path = req.path.replace(re, replacement); break; }
        }
      }
      if (s.host !== undefined) ctx.upstreamHost = s.host;
      applyHeaderOps(s.headers, req.headers);
    },
  },
});
