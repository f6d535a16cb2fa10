/**
 * Gives every request an id: kept from the client's header when it is 1-128
 * characters of `A-Za-z0-9._~:@+=/-`, generated otherwise; sent upstream, back to the client, and into the access log.
 *
 * ```yaml
 * plugins:
 *   request-id:
 *     header_name: X-Request-Id
 *     include_in_response: true
 * ```
 */
import { randomUUID } from 'node:crypto';
import schema from '../schemas/request-id.json' with { type: 'json' };
import { definePlugin } from '../src/plugin.ts';

/** What a client-sent id may be: UUIDs, hex, base64 and the like, at most 128 characters. */
const SAFE_ID = /^[A-Za-z0-9._~:@+=\/-]{1,128}$/;

interface Conf { header_name: string; include_in_response: boolean }
interface State { header: string; include: boolean }

export default definePlugin<Conf, State>({
  name: 'request-id',
  version: '1.0.0',
  priority: 12015,
  schema,
  init: (conf) => ({ header: conf.header_name.toLowerCase(), include: conf.include_in_response }),
  phases: {
    rewrite(s, ctx) {
      const given = ctx.request.headers[s.header];
      // The id goes upstream, back to the client and into every log line: only a safe charset is kept.
      const id = typeof given === 'string' && SAFE_ID.test(given) ? given : randomUUID();
      ctx.request.headers[s.header] = id;
      ctx.vars.request_id = id;
    },
    header_filter(s, ctx) {
      if (s.include && ctx.response) ctx.response.headers[s.header] = ctx.vars.request_id as string;
    },
  },
});
