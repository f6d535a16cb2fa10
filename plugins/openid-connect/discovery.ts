/**
 * The provider's discovery document and key set, fetched lazily (never at
 * load: a config with a provider that is down still loads) and cached. One
 * fetch at a time; a failure is remembered for a moment so a provider outage
 * does not turn every request into another call to it; a stale document keeps
 * serving while a refresh fails.
 */
import { createRemoteJWKSet, customFetch, type JWTVerifyGetKey } from 'jose';
import { callJson, jwksFetch, ProviderUnavailable } from './http.ts';

/** The fields of the discovery document the plugin uses. */
export interface ProviderMetadata {
  issuer: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
  userinfo_endpoint?: string;
  jwks_uri?: string;
  introspection_endpoint?: string;
  end_session_endpoint?: string;
}

/** A document is re-read after this long (providers rotate endpoints rarely; keys have their own cache). */
const DOC_TTL_MS = 3600_000;
/** After a failed fetch, requests within this window fail at once instead of calling the provider again. */
const RETRY_AFTER_MS = 1000;
/**
 * A token whose kid is not in the cached key set refetches the set at most
 * once per this window: rotation is picked up at once, and a flood of tokens
 * with made-up kids costs the provider one call per second.
 */
export const JWKS_COOLDOWN_MS = 1000;

const URL_FIELDS = ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri', 'introspection_endpoint', 'end_session_endpoint'] as const;

/** Checks what the provider sent: an issuer, and http(s) URLs where URLs belong. */
function parseMetadata(url: string, json: Record<string, unknown>): ProviderMetadata {
  if (typeof json.issuer !== 'string' || !json.issuer) throw new ProviderUnavailable(`${url}: the discovery document has no issuer`);
  const out: ProviderMetadata = { issuer: json.issuer };
  for (const f of URL_FIELDS) {
    const v = json[f];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !/^https?:\/\//i.test(v) || !URL.canParse(v)) throw new ProviderUnavailable(`${url}: "${f}" in the discovery document is not an http(s) URL`);
    out[f] = v;
  }
  return out;
}

/** One provider as one plugin instance sees it. Mutable state lives in private fields (plugin state is frozen at load). */
export class Discovery {
  readonly url: string;
  readonly #timeoutMs: number;
  readonly #sslVerify: boolean;
  readonly #jwksMaxAgeMs: number;
  #doc: ProviderMetadata | undefined;
  #docAt = 0;
  #failedAt = 0;
  #failure: Error | undefined;
  #pending: Promise<ProviderMetadata> | undefined;
  #jwks: { uri: string; set: JWTVerifyGetKey } | undefined;

  constructor(url: string, o: { timeoutMs: number; sslVerify: boolean; jwksMaxAgeMs: number }) {
    this.url = url;
    this.#timeoutMs = o.timeoutMs;
    this.#sslVerify = o.sslVerify;
    this.#jwksMaxAgeMs = o.jwksMaxAgeMs;
  }

  /** The document; throws ProviderUnavailable when it cannot be had (and none was ever fetched). */
  metadata(): Promise<ProviderMetadata> {
    const now = Date.now();
    if (this.#doc && now - this.#docAt < DOC_TTL_MS) return Promise.resolve(this.#doc);
    if (this.#pending) return this.#pending;
    if (this.#failure && now - this.#failedAt < RETRY_AFTER_MS) {
      return this.#doc ? Promise.resolve(this.#doc) : Promise.reject(this.#failure);
    }
    this.#pending = this.#fetch().finally(() => { this.#pending = undefined; });
    return this.#pending;
  }

  async #fetch(): Promise<ProviderMetadata> {
    try {
      const { status, json } = await callJson(this.url, { timeoutMs: this.#timeoutMs, sslVerify: this.#sslVerify });
      if (status !== 200) throw new ProviderUnavailable(`${this.url}: answered ${status}`);
      this.#doc = parseMetadata(this.url, json);
      this.#docAt = Date.now();
      this.#failure = undefined;
      return this.#doc;
    } catch (err) {
      this.#failure = err instanceof ProviderUnavailable ? err : new ProviderUnavailable(String(err));
      this.#failedAt = Date.now();
      if (this.#doc) return this.#doc; // stale beats none while the provider is away
      throw this.#failure;
    }
  }

  /** The key set at the document's jwks_uri (jose caches it, refetching on an unknown kid within the cooldown). */
  keys(doc: ProviderMetadata): JWTVerifyGetKey {
    if (!doc.jwks_uri) throw new ProviderUnavailable(`${this.url}: the discovery document has no jwks_uri`);
    if (this.#jwks?.uri !== doc.jwks_uri) {
      const set = createRemoteJWKSet(new URL(doc.jwks_uri), {
        timeoutDuration: this.#timeoutMs, cooldownDuration: JWKS_COOLDOWN_MS, cacheMaxAge: this.#jwksMaxAgeMs,
        [customFetch]: jwksFetch(this.#timeoutMs, this.#sslVerify),
      });
      this.#jwks = { uri: doc.jwks_uri, set };
    }
    return this.#jwks.set;
  }
}
