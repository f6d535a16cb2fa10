/**
 * Bearer tokens (APISIX's `introspect`): the access token from
 * `Authorization: Bearer …` (or a client's X-Access-Token) is verified
 * locally (public_key, or the provider's JWKS) or at the introspection
 * endpoint, then held to the configured issuer, audience and scopes.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Reply } from '../../src/plugin.ts';
import type { Discovery, ProviderMetadata } from './discovery.ts';
import { callJson, ProviderUnavailable } from './http.ts';

/** What the plugin's config says about bearer tokens, compiled at load. */
export interface BearerConf {
  realm: string;
  clientId: string;
  clientSecret?: string;
  /** public_key imported at load; verification is local with it. */
  publicKey?: KeyObject;
  useJwks: boolean;
  introspectionEndpoint?: string;
  introspectionAuth: string;
  algorithms: string[];
  validIssuers?: string[];
  audience?: { claim: string; required: boolean; matchClientId: boolean };
  requiredScopes?: string[];
  timeoutMs: number;
  sslVerify: boolean;
  /** introspection_interval in ms (0: until the token's own expiry). */
  introspectionTtlMs: number;
}

export type BearerResult = { ok: true; claims: Record<string, unknown> } | { ok: false; reply: Reply; why: string };

/** Signature algorithms accepted when token_signing_alg_values_expected is not set: asymmetric ones only. */
export const ASYMMETRIC_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
/** Introspection results kept at most (oldest dropped first). */
const INTROSPECTION_CACHE_MAX = 10_000;

/** The token in `Authorization: Bearer …`, else the client's X-Access-Token; '' when neither. */
export function bearerToken(authorization: string | undefined, xAccessToken: string | undefined): string {
  if (authorization !== undefined) {
    const m = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    return m ? m[1] : '';
  }
  return xAccessToken ?? '';
}

/** Imports `public_key` (PEM); throws a load error when it is not a public key. */
export function importPublicKey(pem: string): KeyObject {
  try {
    return createPublicKey(pem);
  } catch (err) {
    throw new Error(`public_key is not a valid PEM public key: ${(err as Error).message}`);
  }
}

/** A WWW-Authenticate value is a quoted-string: no quotes, backslashes or control characters from an error message. */
function quoted(s: string): string {
  return s.replace(/["\\]/g, "'").replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, 200);
}

/** 401 with APISIX's challenge. */
export function invalidToken(c: BearerConf, why: string): BearerResult {
  return {
    ok: false, why,
    reply: { status: 401, headers: { 'www-authenticate': `Bearer realm="${c.realm}", error="invalid_token", error_description="${quoted(why)}"` }, body: { message: 'invalid token' } },
  };
}

/** 503: the provider cannot be asked, so nothing can be decided (fail closed). */
export function unavailable(why: string): BearerResult {
  return { ok: false, why, reply: { status: 503, body: { message: 'identity provider unavailable' } } };
}

/** Introspection results by token, each until the token's expiry (or introspection_interval); bounded. */
export class IntrospectionCache {
  readonly #map = new Map<string, { until: number; claims: Record<string, unknown> }>();

  get(token: string): Record<string, unknown> | undefined {
    const hit = this.#map.get(token);
    if (!hit) return undefined;
    if (hit.until > Date.now()) return hit.claims;
    this.#map.delete(token);
    return undefined;
  }

  set(token: string, claims: Record<string, unknown>, until: number): void {
    if (!(until > Date.now())) return;
    if (this.#map.size >= INTROSPECTION_CACHE_MAX) this.#map.delete(this.#map.keys().next().value!);
    this.#map.set(token, { until, claims });
  }
}

/** Client authentication for a call to the provider (client_secret_basic or client_secret_post). */
export function clientAuth(method: string, clientId: string, secret: string | undefined, form: Record<string, string>): Record<string, string> {
  if (method === 'client_secret_post' || secret === undefined) {
    form.client_id = clientId;
    if (secret !== undefined) form.client_secret = secret;
    return {};
  }
  // RFC 6749 §2.3.1: both parts form-encoded before base64.
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return { authorization: `Basic ${Buffer.from(`${enc(clientId)}:${enc(secret)}`).toString('base64')}` };
}

async function introspect(c: BearerConf, doc: ProviderMetadata | undefined, cache: IntrospectionCache, token: string): Promise<BearerResult> {
  const cached = cache.get(token);
  if (cached) return { ok: true, claims: cached };
  const endpoint = c.introspectionEndpoint ?? doc?.introspection_endpoint;
  if (!endpoint) return unavailable('no introspection endpoint (configure introspection_endpoint, use_jwks or public_key)');
  const form: Record<string, string> = { token, token_type_hint: 'access_token' };
  const headers = clientAuth(c.introspectionAuth, c.clientId, c.clientSecret, form);
  const { status, json } = await callJson(endpoint, { timeoutMs: c.timeoutMs, sslVerify: c.sslVerify, headers, form });
  if (status !== 200) throw new ProviderUnavailable(`introspection endpoint answered ${status}`);
  if (json.active !== true) return invalidToken(c, 'token is not active');
  const exp = typeof json.exp === 'number' ? json.exp * 1000 : 0;
  const until = c.introspectionTtlMs > 0 ? Math.min(Date.now() + c.introspectionTtlMs, exp || Infinity) : exp;
  cache.set(token, json, until);
  return { ok: true, claims: json };
}

async function verifyJwt(c: BearerConf, discovery: Discovery, doc: ProviderMetadata | undefined, token: string): Promise<BearerResult> {
  const issuer = c.validIssuers ?? (doc ? [doc.issuer] : undefined);
  const key = c.publicKey ?? discovery.keys(doc!);
  // jwtVerify refuses `alg: none` and any algorithm not listed; exp and nbf are checked when present.
  const { payload } = await jwtVerify(token, key as Parameters<typeof jwtVerify>[1], { algorithms: c.algorithms, issuer, requiredClaims: ['exp'] });
  return { ok: true, claims: payload as JWTPayload & Record<string, unknown> };
}

/** Why a token was refused, or rethrows what is the provider's fault. */
function refusal(c: BearerConf, err: unknown): BearerResult {
  if (err instanceof ProviderUnavailable) return unavailable(err.message);
  if (err instanceof joseErrors.JWKSTimeout) return unavailable('JWKS fetch timed out');
  if (err instanceof joseErrors.JOSEError) return invalidToken(c, err.message);
  if (err instanceof TypeError || err instanceof SyntaxError) return invalidToken(c, err.message);
  throw err;
}

/** APISIX's audience (claim_validator.audience) and required_scopes checks, 403 as APISIX. */
function authorize(c: BearerConf, claims: Record<string, unknown>): BearerResult {
  if (c.requiredScopes) {
    const granted = new Set(typeof claims.scope === 'string' ? claims.scope.split(/\s+/) : []);
    if (!c.requiredScopes.every((s) => granted.has(s))) {
      return { ok: false, why: 'required scopes not present', reply: { status: 403, body: { error: `required scopes ${c.requiredScopes.join(', ')} not present` } } };
    }
  }
  const a = c.audience;
  if (a) {
    const aud = claims[a.claim];
    if ((a.required || a.matchClientId) && (aud === undefined || aud === null || aud === '')) {
      return { ok: false, why: 'required audience claim not present', reply: { status: 403, body: { error: 'required audience claim not present' } } };
    }
    if (a.matchClientId && !(Array.isArray(aud) ? aud.includes(c.clientId) : aud === c.clientId)) {
      return { ok: false, why: 'audience does not match the client id', reply: { status: 403, body: { error: 'mismatched audience' } } };
    }
  }
  return { ok: true, claims };
}

/** Verifies `token`: local (public_key, use_jwks, or no introspection endpoint anywhere) or by introspection. */
export async function verifyBearer(c: BearerConf, discovery: Discovery, cache: IntrospectionCache, token: string): Promise<BearerResult> {
  try {
    // The issuer comes from the document unless valid_issuers says it: without it, fail closed.
    const needDoc = !c.publicKey || !c.validIssuers;
    const doc = needDoc ? await discovery.metadata() : undefined;
    const local = c.publicKey !== undefined || c.useJwks || !(c.introspectionEndpoint ?? doc?.introspection_endpoint);
    const res = local ? await verifyJwt(c, discovery, doc, token) : await introspect(c, doc, cache, token);
    return res.ok ? authorize(c, res.claims) : res;
  } catch (err) {
    return refusal(c, err);
  }
}
