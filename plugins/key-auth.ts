/**
 * API keys: the request's key (header or query) must belong to a consumer;
 * that consumer's plugins then join the chain. 401 otherwise, with
 * `WWW-Authenticate: Key realm="key"`.
 *
 * ```yaml
 * routes:
 *   - id: orders
 *     plugins:
 *       key-auth: { header: apikey, hide_credentials: true }
 * consumers:
 *   - username: alice
 *     plugins:
 *       key-auth: { key: "${{ALICE_KEY}}" }
 * ```
 */
import schema from '../schemas/key-auth.json' with { type: 'json' };
import { anonymousConsumer, definePlugin, unauthenticated, type Consumer, type Ctx, type Reply } from '../src/plugin.ts';

interface Conf { header: string; query: string; hide_credentials: boolean; realm: string; anonymous_consumer?: string }
interface State { header: string; query: string; hide: boolean; challenge: Record<string, string>; anonymous?: Consumer }

/** No valid key: 401, or on as the anonymous consumer (the key, valid or not, removed when hide_credentials, as APISIX). */
function refuse(s: State, ctx: Ctx, message: string): Reply | undefined {
  return unauthenticated(ctx, s.anonymous, { status: 401, headers: s.challenge, body: { message } }, s.hide ? () => {
    delete ctx.request.headers[s.header];
    delete ctx.request.query[s.query];
  } : undefined);
}

export default definePlugin<Conf, State>({
  name: 'key-auth',
  version: '1.0.0',
  priority: 2500,
  schema,
  consumerSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['key'],
    properties: { key: { type: 'string', minLength: 1, description: "The consumer's API key." } },
  },
  consumerKey: (c: { key: string }) => c.key,
  init: (conf, api) => ({
    header: conf.header.toLowerCase(), query: conf.query, hide: conf.hide_credentials, anonymous: anonymousConsumer(api, conf.anonymous_consumer),
    // RFC 9110 §15.5.2: a 401 names how to authenticate (Kong's form).
    challenge: { 'www-authenticate': `Key realm="${conf.realm}"` },
  }),
  phases: {
    rewrite(s, ctx) {
      const h = ctx.request.headers[s.header];
      let key = typeof h === 'string' ? h : undefined;
      let fromQuery = false;
      if (key === undefined) {
        const q = ctx.request.query[s.query];
        key = Array.isArray(q) ? q[0] : q;
        fromQuery = key !== undefined;
      }
      if (!key) return refuse(s, ctx, 'Missing API key in request');
      const consumer = ctx.findConsumer('key-auth', key);
      if (!consumer) return refuse(s, ctx, 'Invalid API key in request');
      ctx.consumer = consumer;
      if (s.hide) {
        if (fromQuery) delete ctx.request.query[s.query];
        else delete ctx.request.headers[s.header];
      }
      return undefined;
    },
  },
});
