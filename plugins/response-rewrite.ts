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
import { applyHeaderOps, compileHeaderOps, definePlugin, type HeaderChanges, type HeaderOps } from '../src/plugin.ts';

interface Conf { status_code?: number; body?: string; body_base64?: boolean; headers?: HeaderChanges }
interface State { status?: number; body?: Buffer; headers: HeaderOps }

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
    headers: compileHeaderOps(conf.headers),
  }),
  phases: {
    header_filter(s, ctx) {
      const res = ctx.response;
      if (!res) return;
      if (s.status !== undefined) res.status = s.status;
      applyHeaderOps(s.headers, res.headers);
      if (s.body !== undefined) {
        res.body = s.body;
        delete res.headers['content-encoding'];
      }
    },
  },
});
