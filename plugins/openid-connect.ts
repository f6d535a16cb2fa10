/**
 * OpenID Connect (APISIX's openid-connect, priority 2599). Two modes:
 *
 * - Bearer tokens: `Authorization: Bearer <access token>` verified locally
 *   (`use_jwks`: the provider's JWKS, with key rotation; `public_key`) or at
 *   the introspection endpoint; 401 with `WWW-Authenticate: Bearer …,
 *   error="invalid_token"` when it fails.
 * - Browser: the authorization-code flow (state, nonce, PKCE with use_pkce)
 *   ending in an encrypted session cookie; `logout_path` ends it.
 *
 * The upstream gets X-Access-Token, X-ID-Token (base64 of the ID token's
 * claims as JSON) and X-Userinfo (base64 JSON); whatever the client sent in
 * those headers is dropped. The provider unreachable: 503 (fail closed).
 *
 * ```yaml
 * routes:
 *   - id: api                       # machine clients
 *     uri: /api/*
 *     plugins:
 *       openid-connect:
 *         discovery: https://idp.example.com/.well-known/openid-configuration
 *         client_id: gateway
 *         client_secret: "${{OIDC_SECRET}}"
 *         bearer_only: true
 *         use_jwks: true
 *   - id: app                       # browsers
 *     uri: /app/*
 *     plugins:
 *       openid-connect:
 *         discovery: https://idp.example.com/.well-known/openid-configuration
 *         client_id: gateway
 *         client_secret: "${{OIDC_SECRET}}"
 *         redirect_uri: https://app.example.com/app/callback
 *         scope: openid profile email
 *         use_pkce: true
 *         session: { secret: "${{SESSION_SECRET}}" }
 * ```
 */
import { errors as joseErrors } from 'jose';
import schema from '../schemas/openid-connect.json' with { type: 'json' };
import { definePlugin, type Ctx, type HandlerResult, type Reply } from '../src/plugin.ts';
import { ASYMMETRIC_ALGS, bearerToken, importPublicKey, IntrospectionCache, verifyBearer, type BearerConf } from './openid-connect/bearer.ts';
import { Discovery } from './openid-connect/discovery.ts';
import { browserFlow, type FlowConf, type Session } from './openid-connect/flow.ts';
import { ProviderUnavailable } from './openid-connect/http.ts';
import { SessionCodec } from './openid-connect/session.ts';

interface Conf {
  client_id: string; client_secret?: string; discovery: string; scope: string; realm: string; bearer_only: boolean;
  introspection_endpoint?: string; introspection_endpoint_auth_method: string; introspection_interval: number;
  token_endpoint_auth_method: string; public_key?: string; use_jwks: boolean; jwk_expires_in: number;
  token_signing_alg_values_expected?: string; set_access_token_header: boolean; access_token_in_authorization_header: boolean;
  set_id_token_header: boolean; set_userinfo_header: boolean; set_refresh_token_header: boolean;
  unauth_action: 'auth' | 'deny' | 'pass'; redirect_uri?: string; logout_path: string; post_logout_redirect_uri?: string;
  use_pkce: boolean; renew_access_token_on_expiry: boolean; iat_slack: number; authorization_params?: Record<string, string>;
  timeout: number; ssl_verify: boolean; required_scopes?: string[];
  claim_validator?: { issuer?: { valid_issuers?: string[] }; audience?: { claim: string; required: boolean; match_with_client_id: boolean } };
  session?: {
    secret: string; cookie_name: string; cookie_path: string; cookie_domain?: string; cookie_secure?: boolean;
    cookie_http_only: boolean; cookie_same_site: string; absolute_timeout?: number; cookie?: { lifetime?: number };
  };
}

interface State {
  bearer: BearerConf;
  /** bearer_only, or a way to verify tokens configured: a bearer token is looked for (APISIX's rule). */
  tokens: boolean;
  bearerOnly: boolean;
  missing: Reply;
  out: { accessToken: boolean; inAuthorization: boolean; idToken: boolean; userinfo: boolean; refreshToken: boolean };
  discovery: Discovery;
  cache: IntrospectionCache;
  flow?: FlowConf;
  codec?: SessionCodec;
}

/** Headers this plugin sets upstream: a client's own values never get through. */
const OUTPUTS = ['x-access-token', 'x-id-token', 'x-userinfo', 'x-refresh-token'] as const;
const SET_COOKIE = 'openid-connect.set-cookie';

const b64json = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64');

function setAccessToken(s: State, ctx: Ctx, token: string): void {
  if (!s.out.accessToken) return;
  if (s.out.inAuthorization) ctx.request.headers.authorization = `Bearer ${token}`;
  else ctx.request.headers['x-access-token'] = token;
}

function forwardSession(s: State, ctx: Ctx, ses: Session): void {
  const h = ctx.request.headers;
  setAccessToken(s, ctx, ses.at);
  if (s.out.idToken) h['x-id-token'] = b64json(ses.id);
  if (s.out.userinfo && ses.ui) h['x-userinfo'] = b64json(ses.ui);
  if (s.out.refreshToken && ses.rt) h['x-refresh-token'] = ses.rt;
}

/** Provider trouble is 503 (fail closed) with one log line; a token or ID token that does not verify is 401. */
function failure(s: State, ctx: Ctx, err: unknown): Reply {
  if (err instanceof ProviderUnavailable || err instanceof joseErrors.JWKSTimeout) {
    ctx.log.error('openid-connect: identity provider unavailable', { discovery: s.discovery.url, reason: err.message });
    return { status: 503, body: { message: 'identity provider unavailable' } };
  }
  if (err instanceof joseErrors.JOSEError) {
    ctx.log.warn('openid-connect: authorization failed', { reason: err.message });
    return { status: 401, body: { message: 'authorization failed' } };
  }
  throw err;
}

async function browser(s: State, ctx: Ctx): Promise<HandlerResult> {
  try {
    const res = await browserFlow(s.flow!, s.codec!, s.discovery, ctx);
    if ('reply' in res) return res.reply;
    if ('session' in res) {
      forwardSession(s, ctx, res.session);
      if (res.setCookie) ctx.vars[SET_COOKIE] = res.setCookie;
    }
    return undefined;
  } catch (err) {
    return failure(s, ctx, err);
  }
}

export default definePlugin<Conf, State>({
  name: 'openid-connect',
  version: '0.2.0',
  priority: 2599,
  schema,
  check(conf) {
    if (!conf.bearer_only && !conf.session) return 'property "session.secret" is required when "bearer_only" is false';
    const secretOptional = conf.bearer_only ? Boolean(conf.public_key || conf.use_jwks) : conf.use_pkce;
    if (!secretOptional && !conf.client_secret) return 'property "client_secret" is required';
    return undefined;
  },
  init(conf): State {
    // APISIX reads a timeout of 1000 or more, in whole thousands, as already in ms (older configs stored it so).
    const timeoutMs = conf.timeout >= 1000 && conf.timeout % 1000 === 0 ? conf.timeout : conf.timeout * 1000;
    const algorithms = conf.token_signing_alg_values_expected ? [conf.token_signing_alg_values_expected] : ASYMMETRIC_ALGS;
    const a = conf.claim_validator?.audience;
    const bearer: BearerConf = {
      realm: conf.realm, clientId: conf.client_id, clientSecret: conf.client_secret,
      publicKey: conf.public_key ? importPublicKey(conf.public_key) : undefined, useJwks: conf.use_jwks,
      introspectionEndpoint: conf.introspection_endpoint, introspectionAuth: conf.introspection_endpoint_auth_method,
      algorithms, validIssuers: conf.claim_validator?.issuer?.valid_issuers,
      audience: a && (a.required || a.match_with_client_id) ? { claim: a.claim, required: a.required, matchClientId: a.match_with_client_id } : undefined,
      requiredScopes: conf.required_scopes?.length ? conf.required_scopes : undefined,
      timeoutMs, sslVerify: conf.ssl_verify, introspectionTtlMs: conf.introspection_interval * 1000,
    };
    const ses = conf.session;
    const flow: FlowConf | undefined = conf.bearer_only || !ses ? undefined : {
      clientId: conf.client_id, clientSecret: conf.client_secret, scope: conf.scope, redirectUri: conf.redirect_uri,
      logoutPath: conf.logout_path, postLogoutRedirectUri: conf.post_logout_redirect_uri, pkce: conf.use_pkce,
      authParams: conf.authorization_params ?? {}, unauthAction: conf.unauth_action, tokenAuth: conf.token_endpoint_auth_method,
      cookie: { name: ses.cookie_name, path: ses.cookie_path, domain: ses.cookie_domain, secure: ses.cookie_secure, httpOnly: ses.cookie_http_only, sameSite: ses.cookie_same_site },
      lifetimeSec: ses.absolute_timeout ?? ses.cookie?.lifetime ?? 86400, iatSlackSec: conf.iat_slack, algorithms,
      renew: conf.renew_access_token_on_expiry, timeoutMs, sslVerify: conf.ssl_verify,
    };
    return {
      bearer, flow, codec: flow ? new SessionCodec(ses!.secret) : undefined,
      tokens: conf.bearer_only || conf.introspection_endpoint !== undefined || conf.public_key !== undefined || conf.use_jwks,
      bearerOnly: conf.bearer_only,
      missing: { status: 401, headers: { 'www-authenticate': `Bearer realm="${conf.realm}"` }, body: { message: 'No bearer token found in request.' } },
      out: {
        accessToken: conf.set_access_token_header, inAuthorization: conf.access_token_in_authorization_header,
        idToken: conf.set_id_token_header, userinfo: conf.set_userinfo_header, refreshToken: conf.set_refresh_token_header,
      },
      discovery: new Discovery(conf.discovery, { timeoutMs, sslVerify: conf.ssl_verify, jwksMaxAgeMs: conf.jwk_expires_in * 1000 }),
      cache: new IntrospectionCache(),
    };
  },
  activePhases: (s) => (s.flow ? ['rewrite', 'header_filter'] : ['rewrite']),
  phases: {
    rewrite(s, ctx) {
      const h = ctx.request.headers;
      const xat = h['x-access-token'];
      for (const name of OUTPUTS) delete h[name];
      const token = s.tokens ? bearerToken(h.authorization, typeof xat === 'string' ? xat : undefined) : '';
      if (token) {
        return verifyBearer(s.bearer, s.discovery, s.cache, token).then((res) => {
          if (!res.ok) {
            if (res.reply.status === 503) ctx.log.error('openid-connect: identity provider unavailable', { discovery: s.discovery.url, reason: res.why });
            else ctx.log.warn('openid-connect: bearer token refused', { reason: res.why });
            return res.reply;
          }
          setAccessToken(s, ctx, token);
          if (s.out.userinfo) h['x-userinfo'] = b64json(res.claims);
          return undefined;
        });
      }
      if (s.bearerOnly || !s.flow) return s.missing;
      return browser(s, ctx);
    },
    header_filter(_s, ctx) {
      const c = ctx.vars[SET_COOKIE];
      if (typeof c !== 'string' || !ctx.response) return;
      const prev = ctx.response.headers['set-cookie'];
      ctx.response.headers['set-cookie'] = prev === undefined ? [c] : [...(Array.isArray(prev) ? prev : [String(prev)]), c];
    },
  },
});
