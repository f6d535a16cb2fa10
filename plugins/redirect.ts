/**
 * Answers with a redirect, without the upstream: plain HTTP to HTTPS, to a
 * templated `uri`, or to a regex rewrite of the path.
 *
 * ```yaml
 * plugins:
 *   redirect:
 *     http_to_https: true
 * # or
 *   redirect:
 *     uri: "/new$uri"          # $uri, $request_uri, $host, $arg_x, $http_x...
 *     ret_code: 301
 *     append_query_string: true
 * # or
 *   redirect:
 *     regex_uri: ["^/old/(.*)", "/new/$1"]
 * ```
 *
 * Variables in `uri` (also `${name}`; `\$` is a literal `$`): `$uri` (the
 * path as routed, after any earlier rewrite), `$request_uri` (that path with
 * the query as received), `$host` (Host without port, lower case), `$scheme`,
 * `$args` / `$query_string`, `$is_args`, `$request_method`, `$remote_addr`,
 * `$arg_NAME` (raw, as in the query), `$http_NAME`, `$cookie_NAME`. An
 * unknown variable is refused at load (APISIX silently writes nothing).
 *
 * Where APISIX falls short, this plugin does better:
 * - `http_to_https` believes X-Forwarded-Proto only from `trusted_proxies`
 *   (APISIX believes any client's, so a client can opt out of the redirect).
 * - Bytes a Location cannot carry (controls, spaces, non-ASCII), such as a
 *   decoded CR LF from `$http_x` or a regex capture, are percent-encoded
 *   instead of failing the response or splitting the header.
 * - `regex_uri` is compiled once at load and a broken one is refused there.
 * `http_to_https` sends the client to the gateway's first TLS listener's port
 * (APISIX: plugin_attr.redirect.https_port), left out when it is 443 or the
 * gateway has no TLS listener.
 */
import schema from '../schemas/redirect.json' with { type: 'json' };
import { compileRegex, definePlugin, type Ctx, type Reply } from '../src/plugin.ts';
import { compileTemplate, render, type Template } from './redirect/template.ts';

interface Conf { http_to_https?: boolean; uri?: string; regex_uri?: [string, string]; ret_code: number; encode_uri: boolean; append_query_string: boolean }
interface State {
  toHttps: boolean;
  uri: Template | undefined;
  regex: RegExp | undefined;
  replacement: string;
  code: number;
  encode: boolean;
  appendQuery: boolean;
}

const TO_HTTPS = compileTemplate('https://$host$request_uri');
const TO_HTTPS_PORT = compileTemplate('$request_uri');

/** `$0`..`$9` and `${N}` of a regex_uri replacement. */
function substitute(m: RegExpExecArray, replacement: string): string {
  return replacement.replace(/\$(\d)|\$\{(\d+)\}/g, (_all, a: string | undefined, b: string | undefined) => m[Number(a ?? b)] ?? '');
}

function percent(ch: string): string {
  let out = '';
  for (const byte of Buffer.from(ch)) out += '%' + (byte < 16 ? '0' : '') + byte.toString(16).toUpperCase();
  return out;
}

/** nginx's escape_uri for a path: space, `"`, `#`, `%`, `?`, controls and non-ASCII. */
const ESCAPE_PATH = /[\u0000-\u0020"#%?\u007f-\uffff]/g;
/** What a Location header cannot carry as is. */
const UNSAFE = /[\u0000-\u0020\u007f-\uffff]/g;

function location(s: State, ctx: Ctx, target: string): string {
  let uri = target;
  const q = uri.indexOf('?');
  if (s.encode) uri = q < 0 ? uri.replace(ESCAPE_PATH, percent) : uri.slice(0, q).replace(ESCAPE_PATH, percent) + uri.slice(q);
  const search = ctx.request.search;
  if (s.appendQuery && search.length > 1) uri += (q < 0 ? '?' : '&') + search.slice(1);
  return uri.replace(UNSAFE, percent);
}

export default definePlugin<Conf, State>({
  name: 'redirect',
  version: '1.0.0',
  priority: 900,
  schema,
  canReply: true,
  check(conf) {
    const given = (['uri', 'regex_uri', 'http_to_https'] as const).filter((k) => conf[k] !== undefined);
    if (given.length !== 1) return `give exactly one of uri, regex_uri, http_to_https${given.length ? ` (not ${given.join(' and ')})` : ''}`;
    if (conf.http_to_https && conf.append_query_string) return 'only one of `http_to_https` and `append_query_string` can be configured';
    if (conf.regex_uri) {
      try { compileRegex(conf.regex_uri[0], 'regex_uri[0]'); } catch (err) { return (err as Error).message; }
    }
    if (conf.uri !== undefined) {
      try { compileTemplate(conf.uri); } catch (err) { return `uri: ${(err as Error).message}`; }
    }
    return undefined;
  },
  init: (conf) => ({
    toHttps: conf.http_to_https === true,
    uri: conf.uri === undefined ? undefined : compileTemplate(conf.uri),
    regex: conf.regex_uri && compileRegex(conf.regex_uri[0], 'regex_uri[0]'),
    replacement: conf.regex_uri?.[1] ?? '',
    code: conf.ret_code,
    encode: conf.encode_uri,
    appendQuery: conf.append_query_string,
  }),
  phases: {
    rewrite(s, ctx): Reply | undefined {
      const req = ctx.request;
      if (s.toHttps) {
        if (req.scheme === 'https') return undefined;
        const code = req.method === 'GET' || req.method === 'HEAD' ? 301 : 308;
        const port = ctx.downstream.https_port;
        const target = port === undefined || port === 443 ? render(TO_HTTPS, ctx) : `https://${ctx.downstream.host}:${port}${render(TO_HTTPS_PORT, ctx)}`;
        return { status: code, headers: { location: location(s, ctx, target) } };
      }
      let target: string;
      if (s.uri) target = render(s.uri, ctx);
      else {
        const m = s.regex!.exec(req.path);
        if (!m) return undefined;
        target = req.path.slice(0, m.index) + substitute(m, s.replacement) + req.path.slice(m.index + m[0].length);
      }
      return { status: s.code, headers: { location: location(s, ctx, target) } };
    },
  },
});
