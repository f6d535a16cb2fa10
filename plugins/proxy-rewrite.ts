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

interface Conf { uri?: string; regex_uri?: [string, string]; host?: string; headers?: HeaderChanges }
interface State { uri?: string; regex?: RegExp; replacement: string; host?: string; headers: HeaderOps }

export default definePlugin<Conf, State>({
  name: 'proxy-rewrite',
  version: '1.0.0',
  priority: 1008,
  schema,
  check(conf) {
    if (conf.uri !== undefined && conf.regex_uri !== undefined) return 'give either uri or regex_uri, not both';
    if (conf.regex_uri) {
      try { compileRegex(conf.regex_uri[0], 'regex_uri[0]'); } catch (err) { return (err as Error).message; }
    }
    return undefined;
  },
  init: (conf) => ({
    uri: conf.uri,
    regex: conf.regex_uri ? compileRegex(conf.regex_uri[0], 'regex_uri[0]') : undefined,
    replacement: conf.regex_uri?.[1] ?? '',
    host: conf.host,
    headers: compileHeaderOps(conf.headers),
  }),
  phases: {
    rewrite(s, ctx) {
      const req = ctx.request;
      if (s.uri !== undefined) req.path = s.uri;
      else if (s.regex && s.regex.test(req.path)) req.path = req.path.replace(s.regex, s.replacement);
      if (s.host !== undefined) ctx.upstreamHost = s.host;
      applyHeaderOps(s.headers, req.headers);
    },
  },
});
