/**
 * HTTP Basic authentication: `Authorization: Basic base64(user:password)`
 * must name a consumer and its password (compared in constant time); the
 * consumer's plugins then join the chain. 401 with
 * `WWW-Authenticate: Basic realm="basic"` otherwise.
 *
 * ```yaml
 * routes:
 *   - id: admin
 *     uri: /admin/*
 *     plugins:
 *       basic-auth: { hide_credentials: true }
 * consumers:
 *   - username: alice
 *     plugins:
 *       basic-auth: { username: alice, password: "${{ALICE_PASSWORD}}" }
 * ```
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import schema from '../schemas/basic-auth.json' with { type: 'json' };
import consumerSchema from '../schemas/basic-auth.consumer.json' with { type: 'json' };
import { anonymousConsumer, definePlugin, unauthenticated, type Consumer, type Ctx, type Reply } from '../src/plugin.ts';

interface Conf { hide_credentials: boolean; realm: string; anonymous_consumer?: string }
interface State { hide: boolean; missing: Reply; invalid: Reply; denied: Reply; anonymous?: Consumer }
interface CredConf { username: string; password: string }
/** Only a digest of the password stays in the snapshot: equal length for timingSafeEqual, whatever was typed. */
interface Cred { digest: Buffer }

const digest = (s: string | Buffer) => createHash('sha256').update(s).digest();
/** Compared against when the user is unknown, so that case costs the same as a wrong password. */
const NOBODY = digest('\u0000no such consumer');
const BASIC = /^basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i;

/** `user:password` from the header value, or undefined when it is not valid Basic credentials (RFC 7617). */
function parse(h: string): { user: string; password: Buffer } | undefined {
  const m = BASIC.exec(h);
  if (!m || m[1].length % 4 === 1) return undefined;
  const decoded = Buffer.from(m[1], 'base64');
  const colon = decoded.indexOf(0x3a);
  if (colon < 0) return undefined;
  return { user: decoded.subarray(0, colon).toString('utf8'), password: decoded.subarray(colon + 1) };
}

/** No valid credentials: the 401, or on as the anonymous consumer (the header removed when hide_credentials, as APISIX). */
function refuse(s: State, ctx: Ctx, reply: Reply): Reply | undefined {
  return unauthenticated(ctx, s.anonymous, reply, s.hide ? () => { delete ctx.request.headers.authorization; } : undefined);
}

export default definePlugin<Conf, State>({
  name: 'basic-auth',
  version: '1.0.0',
  priority: 2520,
  schema,
  consumerSchema,
  consumerKey: (c: CredConf) => c.username,
  consumerInit: (c: CredConf): Cred => ({ digest: digest(c.password) }),
  // The client's first colon ends the user name, so this consumer cannot be named (APISIX loads it too).
  advice: (c: CredConf, credentials) => (credentials && c.username.includes(':') ? `username "${c.username}" has a colon, which Basic credentials cannot carry (RFC 7617): this consumer can never log in` : undefined),
  init: (conf, api) => {
    const headers = { 'www-authenticate': `Basic realm="${conf.realm}"` };
    return {
      hide: conf.hide_credentials, anonymous: anonymousConsumer(api, conf.anonymous_consumer),
      missing: { status: 401, headers, body: { message: 'Missing authorization in request' } },
      invalid: { status: 401, headers, body: { message: 'Invalid authorization in request' } },
      denied: { status: 401, headers, body: { message: 'Invalid user authorization' } },
    };
  },
  phases: {
    rewrite(s, ctx) {
      const h = ctx.request.headers.authorization;
      if (h === undefined) return refuse(s, ctx, s.missing);
      const creds = parse(h);
      if (!creds) return refuse(s, ctx, s.invalid);
      const found = ctx.findCredential<Cred>('basic-auth', creds.user);
      const ok = timingSafeEqual(digest(creds.password), found ? found.credential.digest : NOBODY);
      if (!found || !ok) {
        ctx.log.warn('basic-auth: invalid user authorization', { user: found ? creds.user : undefined });
        return refuse(s, ctx, s.denied);
      }
      if (s.hide) delete ctx.request.headers.authorization;
      ctx.consumer = found.consumer;
      return undefined;
    },
  },
});
