/**
 * A real OpenID Provider for tests: oidc-provider (the certified Node
 * implementation) on 127.0.0.1, port 0, behind a small server of ours so the
 * provider behind the same issuer URL can be replaced (key rotation) or
 * stopped answering (outage) while the port stays. Client `gw` (secret
 * GW_SECRET) may use authorization_code, refresh_token and
 * client_credentials; resources give JWT access tokens; introspection is on;
 * logins go through oidc-provider's devInteractions (any login, any password).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider from 'oidc-provider';

export const CLIENT_ID = 'gw';
export const GW_SECRET = 'gw-client-secret-0123456789';
/** Resources the provider issues JWT access tokens for: audience, scope and lifetime. */
export const RESOURCES: Record<string, { audience: string; scope: string; ttl: number }> = {
  'https://api.test': { audience: 'https://api.test', scope: 'api:read api:write', ttl: 600 },
  'https://gw.test': { audience: CLIENT_ID, scope: 'api:read', ttl: 600 },
  'https://short.test': { audience: 'https://short.test', scope: 'api:read', ttl: 1 },
};

export interface TestOp {
  port: number;
  issuer: string;
  discovery: string;
  /** Requests the provider answered, by path (e.g. '/jwks'). */
  hits: Map<string, number>;
  /** Registers the gateway's callback URLs (the client is made again). */
  setRedirects(redirects: string[], postLogout: string[]): Promise<void>;
  /** A new signing key: the provider signs with it and publishes only it. */
  rotateKeys(): Promise<void>;
  /** While down, every request is answered by closing the connection. */
  down: boolean;
  /** An access token from client_credentials: JWT for a resource, opaque without. */
  clientToken(opts?: { resource?: string; scope?: string }): Promise<string>;
  close(): Promise<void>;
}

async function signingKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: `k${Math.random().toString(36).slice(2, 10)}`, alg: 'RS256', use: 'sig' };
}

function makeProvider(issuer: string, key: JWK, redirects: string[], postLogout: string[], accessTokenTtl: number): Provider {
  return new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID, client_secret: GW_SECRET, redirect_uris: redirects.length ? redirects : ['http://127.0.0.1/none'],
      post_logout_redirect_uris: postLogout, grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic', scope: 'openid profile email offline_access api:read api:write',
    }],
    jwks: { keys: [key] },
    cookies: { keys: ['test-cookie-key-1'] },
    scopes: ['openid', 'profile', 'email', 'offline_access', 'api:read', 'api:write'],
    claims: { openid: ['sub'], profile: ['name'], email: ['email', 'email_verified'] },
    findAccount: (_ctx: unknown, id: string) => ({ accountId: id, claims: () => ({ sub: id, name: `User ${id}`, email: `${id}@example.test`, email_verified: true }) }),
    features: {
      devInteractions: { enabled: true },
      introspection: { enabled: true },
      clientCredentials: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => {
          const r = RESOURCES[indicator];
          if (!r) throw new Error(`unknown resource ${indicator}`);
          return { audience: r.audience, scope: r.scope, accessTokenTTL: r.ttl, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
    // Refresh tokens for the browser flow without offline_access's consent rules.
    issueRefreshToken: async () => true,
    pkce: { required: () => false },
    ttl: { AccessToken: accessTokenTtl, ClientCredentials: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) => token.resourceServer?.accessTokenTTL ?? 600, IdToken: 600, Interaction: 600, Session: 600, Grant: 600, AuthorizationCode: 60, RefreshToken: 600 },
  });
}

/** Starts the provider (browser access tokens live `accessTokenTtl` seconds, 600 by default); the discovery document is at `discovery`. */
export async function startOp(opts: { accessTokenTtl?: number } = {}): Promise<TestOp> {
  let provider: Provider | undefined;
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    if (op.down) { req.socket.destroy(); return; }
    const p = new URL(req.url!, 'http://x').pathname;
    hits.set(p, (hits.get(p) ?? 0) + 1);
    handler!(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;
  let key = await signingKey();
  let redirects: string[] = [];
  let postLogout: string[] = [];
  const rebuild = () => {
    provider = makeProvider(issuer, key, redirects, postLogout, opts.accessTokenTtl ?? 600);
    handler = provider.callback() as unknown as (req: IncomingMessage, res: ServerResponse) => void;
  };
  rebuild();
  const op: TestOp = {
    port, issuer, discovery: `${issuer}/.well-known/openid-configuration`, hits, down: false,
    async setRedirects(r, l) { redirects = r; postLogout = l; rebuild(); },
    async rotateKeys() { key = await signingKey(); rebuild(); },
    async clientToken(o = {}) {
      const form = new URLSearchParams({ grant_type: 'client_credentials' });
      if (o.resource) form.set('resource', o.resource);
      if (o.scope) form.set('scope', o.scope);
      const res = await fetch(`${issuer}/token`, {
        method: 'POST', body: form,
        headers: { authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${GW_SECRET}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      });
      const json = (await res.json()) as { access_token?: string };
      if (!json.access_token) throw new Error(`no token: ${JSON.stringify(json)}`);
      return json.access_token;
    },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
  return op;
}
