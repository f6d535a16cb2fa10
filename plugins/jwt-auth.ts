/**
 * JSON Web Tokens: the token (header, query or cookie) names a consumer in
 * its key claim; that consumer's secret or public key must verify it, with
 * the consumer's algorithm and no other. The consumer's plugins then join
 * the chain. 401 with `WWW-Authenticate: Bearer realm="jwt"` otherwise.
 *
 * ```yaml
 * routes:
 *   - id: orders
 *     uri: /orders
 *     plugins:
 *       jwt-auth: { hide_credentials: true }
 * consumers:
 *   - username: alice
 *     plugins:
 *       jwt-auth: { key: alice, secret: "${{ALICE_JWT_SECRET}}" }   # HS256
 *   - username: billing
 *     plugins:
 *       jwt-auth:
 *         key: billing
 *         algorithm: RS256
 *         public_key: |
 *           -----BEGIN PUBLIC KEY-----
 *           …
 * ```
 */
import { createPublicKey } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, importSPKI, jwtVerify, type CryptoKey } from 'jose';
import schema from '../schemas/jwt-auth.json' with { type: 'json' };
import consumerSchema from '../schemas/jwt-auth.consumer.json' with { type: 'json' };
import { anonymousConsumer, definePlugin, unauthenticated, type Consumer, type Ctx, type Reply } from '../src/plugin.ts';

interface Conf {
  header: string; query: string; cookie: string; hide_credentials: boolean; key_claim_name: string;
  store_in_ctx: boolean; realm: string; claims_to_verify?: ('exp' | 'nbf')[]; anonymous_consumer?: string;
}
interface State { header: string; query: string; cookie: string; cookieRe: RegExp; hide: boolean; claim: string; store: boolean; challenge: Record<string, string>; required?: string[]; anonymous?: Consumer; verified: () => Verified }

/** A token this route verified, until when the verdict holds, and for whom. */
interface Pass { consumer: Consumer; payload: unknown; until: number }
type Verified = Map<string, Pass>;
/** Verified tokens kept per route (one map per load, so a changed credential never meets an old verdict); oldest out first. */
const VERIFIED_MAX = 4096;
/** Longer tokens are verified every time rather than kept. */
const VERIFIED_TOKEN_MAX = 4096;
/** A verdict is kept this long at most, and never past the token's exp (+ grace). */
const VERIFIED_MS = 60_000;

/** Keeps `token`'s verdict: a signature check costs ~20× a map lookup, and clients send the same token for minutes. */
function keep(verified: Verified, token: string, pass: Omit<Pass, 'until'>, exp: unknown, graceS: number): void {
  if (token.length > VERIFIED_TOKEN_MAX) return;
  const now = Date.now();
  const until = typeof exp === 'number' ? Math.min(now + VERIFIED_MS, (exp + graceS) * 1000) : now + VERIFIED_MS;
  if (until <= now) return;
  if (verified.size >= VERIFIED_MAX) verified.delete(verified.keys().next().value!);
  verified.set(token, { consumer: pass.consumer, payload: deepFreeze(pass.payload), until });
}

/** The kept payload is handed to every request with this token (store_in_ctx): none may change it for the others. */
function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}
interface CredConf { key: string; secret?: string; public_key?: string; algorithm: string; base64_secret: boolean; lifetime_grace_period: number }
/** A consumer's credentials, compiled at load: the key is imported once, never per request. */
interface Cred { alg: string; key: CryptoKey; grace: number }

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** What each asymmetric algorithm needs of the public key: Node's key type (and EC curve). */
function keyFits(alg: string, type: string | undefined, curve: string | undefined): boolean {
  if (alg.startsWith('RS')) return type === 'rsa';
  if (alg.startsWith('PS')) return type === 'rsa' || type === 'rsa-pss';
  if (alg === 'EdDSA') return type === 'ed25519' || type === 'ed448';
  return type === 'ec' && curve === ({ ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' } as Record<string, string>)[alg];
}

/** Imports the consumer's secret or public key for its algorithm; throws (without the secret) when it cannot. */
async function importCredential(c: CredConf): Promise<Cred> {
  const alg = c.algorithm;
  if (alg.startsWith('HS')) {
    if (!c.secret) throw new Error('property "secret" is required when using HS based algorithms');
    if (c.base64_secret && !BASE64.test(c.secret)) throw new Error('base64_secret required but the secret is not in base64 format');
    const bytes = c.base64_secret ? Buffer.from(c.secret, 'base64') : Buffer.from(c.secret, 'utf8');
    if (bytes.length === 0) throw new Error('the secret decodes to no bytes');
    const key = await crypto.subtle.importKey('raw', bytes, { name: 'HMAC', hash: `SHA-${alg.slice(2)}` }, false, ['verify']);
    return { alg, key, grace: c.lifetime_grace_period };
  }
  if (!c.public_key) throw new Error(`missing valid public key ("public_key" is required for ${alg})`);
  let spki: string;
  try {
    const ko = createPublicKey(c.public_key);
    if (!keyFits(alg, ko.asymmetricKeyType, ko.asymmetricKeyDetails?.namedCurve)) throw new Error(`a ${ko.asymmetricKeyType}${ko.asymmetricKeyDetails?.namedCurve ? ` (${ko.asymmetricKeyDetails.namedCurve})` : ''} key cannot verify ${alg}`);
    spki = ko.export({ type: 'spki', format: 'pem' }) as string;
  } catch (err) {
    throw new Error(`public_key is not a valid public key for ${alg}: ${(err as Error).message}`);
  }
  return { alg, key: await importSPKI(spki, alg), grace: c.lifetime_grace_period };
}

/** The token and where it came from, or undefined; removes it from the request when `hide` is set (as APISIX). */
function fetchToken(s: State, ctx: Ctx): string | undefined {
  const headers = ctx.request.headers;
  const h = headers[s.header];
  if (h !== undefined) {
    const v = Array.isArray(h) ? h[0] : h;
    if (s.hide) delete headers[s.header];
    return v.startsWith('Bearer ') || v.startsWith('bearer ') ? v.slice(7) : v;
  }
  const q = ctx.request.query[s.query];
  if (q !== undefined) {
    if (s.hide) delete ctx.request.query[s.query];
    return Array.isArray(q) ? q[0] : q;
  }
  const cookie = headers.cookie;
  if (typeof cookie !== 'string') return undefined;
  const m = s.cookieRe.exec(cookie);
  if (!m) return undefined;
  if (s.hide) {
    const rest = cookie.split(';').filter((p) => p.trim().split('=')[0] !== s.cookie).map((p) => p.trim()).join('; ');
    if (rest) headers.cookie = rest; else delete headers.cookie;
  }
  return m[1];
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** No valid token: 401, or on as the anonymous consumer (fetchToken already removed the token when hide_credentials). */
function deny(s: State, ctx: Ctx, message: string): Reply | undefined {
  return unauthenticated(ctx, s.anonymous, { status: 401, headers: s.challenge, body: { message } });
}

export default definePlugin<Conf, State>({
  name: 'jwt-auth',
  version: '1.0.0',
  priority: 2510,
  schema,
  consumerSchema,
  consumerKey: (c: CredConf) => c.key,
  consumerInit: (c: CredConf) => importCredential(c),
  init: (conf, api) => {
    const verified: Verified = new Map();
    return {
    verified: () => verified,
    header: conf.header.toLowerCase(), query: conf.query, cookie: conf.cookie, anonymous: anonymousConsumer(api, conf.anonymous_consumer),
    cookieRe: new RegExp(`(?:^|;)\\s*${escapeRe(conf.cookie)}=([^;]*)`),
    hide: conf.hide_credentials, claim: conf.key_claim_name, store: conf.store_in_ctx,
    challenge: { 'www-authenticate': `Bearer realm="${conf.realm}"` },
    required: conf.claims_to_verify?.length ? conf.claims_to_verify : undefined,
    };
  },
  phases: {
    rewrite(s, ctx) {
      const token = fetchToken(s, ctx);
      if (token === undefined) return deny(s, ctx, 'Missing JWT token in request');
      const verified = s.verified();
      const pass = verified.get(token);
      if (pass !== undefined) {
        if (pass.until > Date.now()) {
          if (s.store) ctx.vars.jwt_auth_payload = pass.payload;
          ctx.consumer = pass.consumer;
          return undefined;
        }
        verified.delete(token);
      }
      let alg: unknown;
      let user: unknown;
      try {
        alg = decodeProtectedHeader(token).alg;
        user = decodeJwt(token)[s.claim];
      } catch (err) {
        ctx.log.warn('JWT token invalid', { reason: (err as Error).message });
        return deny(s, ctx, 'JWT token invalid');
      }
      if (user === undefined || user === null) return deny(s, ctx, 'missing user key in JWT token');
      const found = typeof user === 'string' ? ctx.findCredential<Cred>('jwt-auth', user) : undefined;
      if (!found) return deny(s, ctx, 'Invalid user key in JWT token');
      const cred = found.credential;
      if (alg !== cred.alg) {
        ctx.log.warn(`failed to verify jwt: algorithm mismatch, expected ${cred.alg}`, { consumer: found.consumer.username });
        return deny(s, ctx, 'failed to verify jwt');
      }
      // The key is pinned to the consumer's algorithm: `algorithms` refuses any other, `none` included.
      return jwtVerify(token, cred.key, { algorithms: [cred.alg], clockTolerance: cred.grace, requiredClaims: s.required }).then(
        (res) => {
          if (s.store) ctx.vars.jwt_auth_payload = res.payload;
          ctx.consumer = found.consumer;
          keep(verified, token, { consumer: found.consumer, payload: res.payload }, res.payload.exp, cred.grace);
          return undefined;
        },
        (err: Error) => {
          ctx.log.warn(`failed to verify jwt: ${err.message}`, { consumer: found.consumer.username });
          return deny(s, ctx, 'failed to verify jwt');
        },
      );
    },
  },
});
