/**
 * Rewrites the response sent to the client: status, headers, body.
 *
 * ```yaml
 * plugins:
 *   response-rewrite:
 *     status_code: 200
 *     headers:
 *       set: { x-served-by: turnpike }
 *       remove: [server]
 *     body: '{"ok":true}'
 * ```
 */
import schema from '../schemas/response-rewrite.json' with { type: 'json' };
import { definePlugin } from '../src/plugin.ts';

type HeaderMap = Record<string, string | number>;
interface Conf { status_code?: number; body?: string; body_base64?: boolean; headers?: { set?: HeaderMap; add?: HeaderMap; remove?: string[] } }
interface State { status?: number; body?: Buffer; set: [string, string][]; add: [string, string][]; remove: string[] }

const lower = (m: HeaderMap | undefined): [string, string][] => Object.entries(m ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]);

export default definePlugin<Conf, State>({
  name: 'response-rewrite',
  version: '1.0.0',
  priority: 899,
  schema,
  check(conf) {
    if (conf.body_base64 && conf.body === undefined) return 'body_base64 needs body';
    return undefined;
  },
  init: (conf) => ({
    status: conf.status_code,
    body: conf.body === undefined ? undefined : Buffer.from(conf.body, conf.body_base64 ? 'base64' : 'utf8'),
    set: lower(conf.headers?.set),
    add: lower(conf.headers?.add),
    remove: (conf.headers?.remove ?? []).map((h) => h.toLowerCase()),
  }),
  phases: {
    header_filter(s, ctx) {
      const res = ctx.response;
      if (!res) return;
      if (s.status !== undefined) res.status = s.status;
      for (const name of s.remove) delete res.headers[name];
      for (const [k, v] of s.set) res.headers[k] = v;
      for (const [k, v] of s.add) {
        const prev = res.headers[k];
        res.headers[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [String(prev), v];
      }
      if (s.body !== undefined) {
        res.body = s.body;
        delete res.headers['content-encoding'];
      }
    },
  },
});
