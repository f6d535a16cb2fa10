/**
 * The browser's authorization-code flow (OpenID Connect Core §3.1): no
 * session → 302 to the provider with state, nonce (and a PKCE challenge when
 * use_pkce); the callback checks state against the pending session cookie,
 * exchanges the code, verifies the ID token (signature, iss, aud, exp,
 * nonce), reads userinfo and sets the session cookie; logout clears it.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { jwtVerify } from 'jose';
import type { Ctx, Reply } from '../../src/plugin.ts';
import { clientAuth } from './bearer.ts';
import type { Discovery, ProviderMetadata } from './discovery.ts';
import { callJson, ProviderUnavailable } from './http.ts';
import { MAX_COOKIE_BYTES, readCookie, setCookie, type CookieConf, type SessionCodec, type SessionData } from './session.ts';

/** The flow's settings, compiled at load. */
export interface FlowConf {
  clientId: string;
  clientSecret?: string;
  scope: string;
  /** redirect_uri as configured: absolute, a path, or undefined (request path + DEFAULT_SUFFIX). */
  redirectUri?: string;
  logoutPath: string;
  postLogoutRedirectUri?: string;
  pkce: boolean;
  authParams: Record<string, string>;
  unauthAction: 'auth' | 'deny' | 'pass';
  tokenAuth: string;
  cookie: CookieConf;
  lifetimeSec: number;
  iatSlackSec: number;
  algorithms: string[];
  renew: boolean;
  timeoutMs: number;
  sslVerify: boolean;
}

/** APISIX's default callback: the request path plus this suffix. */
export const DEFAULT_SUFFIX = '/.apisix/redirect';
/** A login must come back from the provider within this long. */
const PENDING_TTL_SEC = 600;
const HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** The session in force for a request (carried to the upstream as headers). */
export type Session = Extract<SessionData, { t: 'session' }>;

/** What the flow decided: a reply to send, or a session to forward (with a cookie to set on the response when it was renewed). */
export type FlowResult = { reply: Reply } | { session: Session; setCookie?: string } | { pass: true };

const b64url = (b: Buffer) => b.toString('base64url');
const reply = (status: number, message: string, headers?: Record<string, string | string[]>): FlowResult => ({ reply: { status, headers, body: { message } } });

/** The request's own origin, from its scheme and Host (undefined when Host is not a host). */
function origin(ctx: Ctx): string | undefined {
  const host = ctx.request.headers.host;
  return host && HOST.test(host) ? `${ctx.request.scheme}://${host}` : undefined;
}

/** Where to send the browser back: the request's own path and query, never another host (`//evil`, `/\evil`). */
export function sameHostTarget(requestUri: string): string {
  const p = requestUri.startsWith('/') ? requestUri : `/${requestUri}`;
  return p.replace(/^[/\\]+/, '/');
}

/** The callback URL and path for this request. */
function redirectFor(f: FlowConf, ctx: Ctx, own: string): { uri: string; path: string } {
  const r = f.redirectUri;
  if (r && /^https?:\/\//i.test(r)) return { uri: r, path: new URL(r).pathname };
  const path = r ?? (ctx.request.path.endsWith(DEFAULT_SUFFIX) ? ctx.request.path : ctx.request.path.replace(/\/$/, '') + DEFAULT_SUFFIX);
  return { uri: own + path, path };
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a), y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function secureFor(ctx: Ctx): boolean {
  return ctx.request.scheme === 'https';
}

/** 302 to the authorization endpoint, with the pending login in the cookie. */
async function startLogin(f: FlowConf, codec: SessionCodec, ctx: Ctx, doc: ProviderMetadata, redirect: string): Promise<FlowResult> {
  if (!doc.authorization_endpoint) throw new ProviderUnavailable('the discovery document has no authorization_endpoint');
  const state = b64url(randomBytes(16)), nonce = b64url(randomBytes(16));
  const verifier = f.pkce ? b64url(randomBytes(32)) : undefined;
  const url = new URL(doc.authorization_endpoint);
  const q = url.searchParams;
  for (const [k, v] of Object.entries(f.authParams)) q.set(k, v);
  q.set('response_type', 'code');
  q.set('client_id', f.clientId);
  q.set('redirect_uri', redirect);
  q.set('scope', f.scope);
  q.set('state', state);
  q.set('nonce', nonce);
  if (verifier) {
    q.set('code_challenge', b64url(createHash('sha256').update(verifier).digest()));
    q.set('code_challenge_method', 'S256');
  }
  const pending: SessionData = { t: 'pending', state, nonce, verifier, url: sameHostTarget(ctx.downstream.request_uri), redirect };
  const cookie = setCookie(f.cookie, await codec.seal(pending, Date.now() + PENDING_TTL_SEC * 1000), secureFor(ctx));
  return { reply: { status: 302, headers: { location: url.href, 'set-cookie': cookie } } };
}

/** Token endpoint call (authorization_code or refresh_token grant); the parsed answer, or why it failed. */
async function tokenCall(f: FlowConf, doc: ProviderMetadata, form: Record<string, string>): Promise<Record<string, unknown> | string> {
  if (!doc.token_endpoint) throw new ProviderUnavailable('the discovery document has no token_endpoint');
  const headers = clientAuth(f.tokenAuth, f.clientId, f.clientSecret, form);
  const { status, json } = await callJson(doc.token_endpoint, { timeoutMs: f.timeoutMs, sslVerify: f.sslVerify, headers, form });
  if (status >= 500) throw new ProviderUnavailable(`token endpoint answered ${status}`);
  if (status !== 200 || typeof json.access_token !== 'string') return `token endpoint answered ${status}${typeof json.error === 'string' ? ` ${json.error}` : ''}`;
  return json;
}

/** The session a token response makes (ID token verified when there is one; userinfo read when the provider has it). */
async function sessionFrom(f: FlowConf, discovery: Discovery, doc: ProviderMetadata, ctx: Ctx, tok: Record<string, unknown>, nonce: string | undefined, prev?: Session): Promise<Session | string> {
  let id = prev?.id;
  let idt = prev?.idt;
  if (typeof tok.id_token === 'string') {
    const { payload } = await jwtVerify(tok.id_token, discovery.keys(doc), {
      issuer: doc.issuer, audience: f.clientId, algorithms: f.algorithms, clockTolerance: f.iatSlackSec, requiredClaims: ['exp', 'iat', 'sub'],
    });
    if (nonce !== undefined && (typeof payload.nonce !== 'string' || !safeEqual(payload.nonce, nonce))) return 'ID token nonce does not match';
    if (prev && payload.sub !== prev.id.sub) return 'refreshed ID token names another subject';
    id = payload as Record<string, unknown>;
    idt = tok.id_token;
  }
  if (!id) return 'token endpoint answered without an id_token';
  const at = tok.access_token as string;
  let ui = prev?.ui;
  if (doc.userinfo_endpoint) {
    const res = await callJson(doc.userinfo_endpoint, { timeoutMs: f.timeoutMs, sslVerify: f.sslVerify, headers: { authorization: `Bearer ${at}` } }).catch((err: Error) => err);
    if (res instanceof Error || res.status !== 200 || res.json.sub !== id.sub) ctx.log.warn('openid-connect: userinfo not available', { reason: res instanceof Error ? res.message : `status ${res.status}` });
    else ui = res.json;
  }
  const expiresIn = typeof tok.expires_in === 'number' ? tok.expires_in : undefined;
  return {
    t: 'session', at, id, idt, ui,
    rt: typeof tok.refresh_token === 'string' ? tok.refresh_token : prev?.rt,
    atExp: expiresIn !== undefined ? Date.now() + expiresIn * 1000 : undefined,
    // The login's deadline: renewing the access token never extends the session (absolute_timeout).
    end: prev?.end ?? Date.now() + f.lifetimeSec * 1000,
  };
}

/** The session cookie for `s`; an oversized session keeps no raw ID token (the claims stay). */
async function sealSession(f: FlowConf, codec: SessionCodec, s: Session, ctx: Ctx): Promise<string | undefined> {
  let value = await codec.seal(s, s.end);
  if (value.length > MAX_COOKIE_BYTES && s.idt) value = await codec.seal({ ...s, idt: undefined }, s.end);
  if (value.length > MAX_COOKIE_BYTES) {
    ctx.log.error('openid-connect: the session does not fit in a cookie', { bytes: value.length });
    return undefined;
  }
  return setCookie(f.cookie, value, secureFor(ctx));
}

/** The provider's callback: state checked first, then the code exchanged; a session only when every check passed. */
async function callback(f: FlowConf, codec: SessionCodec, discovery: Discovery, ctx: Ctx, pending: SessionData | undefined): Promise<FlowResult> {
  const q = ctx.request.query;
  const one = (k: string) => (typeof q[k] === 'string' ? (q[k] as string) : undefined);
  const state = one('state'), code = one('code');
  if (!pending || pending.t !== 'pending' || !state || !safeEqual(state, pending.state)) {
    ctx.log.warn('openid-connect: callback state does not match the pending login');
    return reply(401, 'state mismatch');
  }
  if (one('error') || !code) return reply(401, `authorization failed: ${one('error') ?? 'no code'}`);
  const doc = await discovery.metadata();
  const form: Record<string, string> = { grant_type: 'authorization_code', code, redirect_uri: pending.redirect };
  if (pending.verifier) form.code_verifier = pending.verifier;
  const tok = await tokenCall(f, doc, form);
  if (typeof tok === 'string') { ctx.log.warn(`openid-connect: ${tok}`); return reply(401, 'authorization failed'); }
  const s = await sessionFrom(f, discovery, doc, ctx, tok, pending.nonce);
  if (typeof s === 'string') { ctx.log.warn(`openid-connect: ${s}`); return reply(401, 'authorization failed'); }
  const cookie = await sealSession(f, codec, s, ctx);
  if (!cookie) return reply(500, 'session too large');
  return { reply: { status: 302, headers: { location: pending.url, 'set-cookie': cookie } } };
}

/** Clears the session; sends the browser to the provider's end_session_endpoint (RP-initiated logout). */
async function logout(f: FlowConf, discovery: Discovery, ctx: Ctx, s: SessionData | undefined): Promise<FlowResult> {
  const doc = await discovery.metadata();
  const clear = setCookie(f.cookie, '', secureFor(ctx), 0);
  if (doc.end_session_endpoint) {
    const url = new URL(doc.end_session_endpoint);
    if (s?.t === 'session' && s.idt) url.searchParams.set('id_token_hint', s.idt);
    url.searchParams.set('client_id', f.clientId);
    if (f.postLogoutRedirectUri) url.searchParams.set('post_logout_redirect_uri', f.postLogoutRedirectUri);
    return { reply: { status: 302, headers: { location: url.href, 'set-cookie': clear } } };
  }
  if (f.postLogoutRedirectUri) return { reply: { status: 302, headers: { location: f.postLogoutRedirectUri, 'set-cookie': clear } } };
  return { reply: { status: 200, headers: { 'set-cookie': clear }, body: { message: 'logged out' } } };
}

/**
 * Renewals by refresh token, in flight and for a few seconds after: a page's
 * parallel requests, and those its browser sent before the new cookie
 * arrived, share one token call (a provider that rotates refresh tokens
 * would refuse the second, logging the user out).
 */
const renewing = new Map<string, Promise<FlowResult | undefined>>();
const RENEWAL_KEPT_MS = 5000;

/** Renews an expired access token with the refresh token, once for concurrent requests; undefined when it cannot (the user logs in again). */
function renew(f: FlowConf, codec: SessionCodec, discovery: Discovery, ctx: Ctx, s: Session): Promise<FlowResult | undefined> | undefined {
  if (!f.renew || !s.rt) return undefined;
  const key = `${f.clientId}\u0000${s.rt}`;
  let p = renewing.get(key);
  if (!p) {
    p = renewOnce(f, codec, discovery, ctx, s).finally(() => { setTimeout(() => renewing.delete(key), RENEWAL_KEPT_MS).unref(); });
    renewing.set(key, p);
  }
  return p;
}

async function renewOnce(f: FlowConf, codec: SessionCodec, discovery: Discovery, ctx: Ctx, s: Session): Promise<FlowResult | undefined> {
  const doc = await discovery.metadata();
  const tok = await tokenCall(f, doc, { grant_type: 'refresh_token', refresh_token: s.rt! });
  if (typeof tok === 'string') { ctx.log.warn(`openid-connect: refresh failed: ${tok}`); return undefined; }
  const next = await sessionFrom(f, discovery, doc, ctx, tok, undefined, s);
  if (typeof next === 'string') { ctx.log.warn(`openid-connect: refresh failed: ${next}`); return undefined; }
  const cookie = await sealSession(f, codec, next, ctx);
  return cookie ? { session: next, setCookie: cookie } : undefined;
}

/** The browser flow for one request without a bearer token. ProviderUnavailable escapes to the caller (503). */
export async function browserFlow(f: FlowConf, codec: SessionCodec, discovery: Discovery, ctx: Ctx): Promise<FlowResult> {
  const s = await codec.open(readCookie(ctx.request.headers.cookie, f.cookie.name));
  if (ctx.request.path === f.logoutPath) return logout(f, discovery, ctx, s);
  const own = origin(ctx);
  if (!own) return reply(400, 'invalid Host header');
  const redirect = redirectFor(f, ctx, own);
  if (ctx.request.path === redirect.path) return callback(f, codec, discovery, ctx, s);
  if (s?.t === 'session') {
    if (s.atExp === undefined || s.atExp > Date.now()) return { session: s };
    const renewed = await renew(f, codec, discovery, ctx, s);
    if (renewed) return renewed;
  }
  if (f.unauthAction === 'pass') return { pass: true };
  if (f.unauthAction === 'deny') return reply(401, 'unauthorized');
  return startLogin(f, codec, ctx, await discovery.metadata(), redirect.uri);
}
