/**
 * Gives every request an id: kept from the client's header when present,
 * generated otherwise; sent upstream, back to the client, and into the access log.
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
      const id = typeof given === 'string' && given.length > 0 && given.length <= 200 ? given : randomUUID();
      ctx.request.headers[s.header] = id;
      ctx.vars.request_id = id;
    },
    header_filter(s, ctx) {
      if (s.include && ctx.response) ctx.response.headers[s.header] = ctx.vars.request_id as string;
    },
  },
});
