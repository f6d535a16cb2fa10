/**
 * openid-connect, bearer tokens: against a real OpenID Provider
 * (oidc-provider on loopback, test/helpers/oidc.ts), the gateway verifies JWT
 * access tokens with the provider's JWKS (and its key rotation), opaque ones
 * by introspection, and fails closed when the provider is away.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { captureLogs, refusedPort, request, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.ts';
import { pluginConfigErrors } from '../helpers/load.ts';
import { CLIENT_ID, GW_SECRET, startOp, type TestOp } from '../helpers/oidc.ts';

const decode = (h: unknown) => JSON.parse(Buffer.from(String(h), 'base64').toString('utf8')) as Record<string, unknown>;
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('openid-connect: bearer tokens', () => {
  let op: TestOp;
  let up: Upstream;
  let gw: TestGateway;
  let dead: number;
  before(async () => {
    op = await startOp();
    up = await startUpstream();
    dead = await refusedPort();
    const base = `discovery: "${op.discovery}", client_id: ${CLIENT_ID}, client_secret: ${GW_SECRET}, bearer_only: true`;
    const route = (id: string, conf: string) => `  - { id: ${id}, uri: /${id}, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }, plugins: { openid-connect: { ${conf} } } }\n`;
    gw = await startGateway('routes:\n'
      + route('jwks', `${base}, use_jwks: true`)
      + route('authz', `${base}, use_jwks: true, access_token_in_authorization_header: true, set_userinfo_header: false`)
      + route('aud', `${base}, use_jwks: true, claim_validator: { audience: { match_with_client_id: true } }`)
      + route('scopes', `${base}, use_jwks: true, required_scopes: [api:write]`)
      + route('es256', `${base}, use_jwks: true, token_signing_alg_values_expected: ES256`)
      + route('issuers', `${base}, use_jwks: true, claim_validator: { issuer: { valid_issuers: ["https://other.example"] } }`)
      + route('introspect', base)
      + route('down', `discovery: "http://127.0.0.1:${dead}/.well-known/openid-configuration", client_id: x, bearer_only: true, use_jwks: true`)
      + route('jwks-rot', `${base}, use_jwks: true`));
  });
  after(async () => { await gw?.close(); await up?.close(); await op?.close(); });

  it('a valid JWT access token reaches the upstream with X-Access-Token and X-Userinfo (its claims); client copies of the headers are dropped', async () => {
    const token = await op.clientToken({ resource: 'https://api.test', scope: 'api:read' });
    const res = await request(gw.port, '/jwks', { headers: { ...bearer(token), 'x-id-token': 'forged', 'x-userinfo': 'forged', 'x-refresh-token': 'forged' } });
    assert.equal(res.status, 200);
    const seen = JSON.parse(res.body).headers;
    assert.equal(seen['x-access-token'], token);
    assert.equal(seen['x-id-token'], undefined);
    assert.equal(seen['x-refresh-token'], undefined);
    const info = decode(seen['x-userinfo']);
    assert.equal(info.iss, op.issuer);
    assert.equal(info.aud, 'https://api.test');
    assert.equal(info.client_id, CLIENT_ID);
    assert.equal(info.scope, 'api:read');
  });

  it('access_token_in_authorization_header sends it as Authorization; set_userinfo_header: false sends no X-Userinfo', async () => {
    const token = await op.clientToken({ resource: 'https://api.test' });
    const res = await request(gw.port, '/authz', { headers: bearer(token) });
    assert.equal(res.status, 200);
    const seen = JSON.parse(res.body).headers;
    assert.equal(seen.authorization, `Bearer ${token}`);
    assert.equal(seen['x-access-token'], undefined);
    assert.equal(seen['x-userinfo'], undefined);
  });

  const challenge = (why: RegExp) => (v: unknown) => assert.match(String(v), new RegExp(`^Bearer realm="apisix", error="invalid_token", error_description="${why.source}"$`));
  const refusals: { desc: string; path: string; token: () => Promise<string | undefined>; want: { status: number; body: unknown; auth?: (v: unknown) => void } }[] = [
    { desc: 'no token: 401 with the realm', path: '/jwks', token: async () => undefined, want: { status: 401, body: { message: 'No bearer token found in request.' }, auth: (v) => assert.equal(v, 'Bearer realm="apisix"') } },
    { desc: 'not a JWT', path: '/jwks', token: async () => 'not-a-jwt', want: { status: 401, body: { message: 'invalid token' }, auth: challenge(/.*/) } },
    {
      desc: 'alg none', path: '/jwks',
      token: async () => {
        const [, payload] = (await op.clientToken({ resource: 'https://api.test' })).split('.');
        return `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${payload}.`;
      },
      want: { status: 401, body: { message: 'invalid token' }, auth: challenge(/.*/) },
    },
    {
      desc: 'payload changed, signature kept', path: '/jwks',
      token: async () => {
        const [h, p, sig] = (await op.clientToken({ resource: 'https://api.test' })).split('.');
        const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
        claims.scope = 'api:read api:write admin';
        return `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`;
      },
      want: { status: 401, body: { message: 'invalid token' }, auth: challenge(/signature verification failed/) },
    },
    { desc: 'audience is not client_id (match_with_client_id): 403', path: '/aud', token: () => op.clientToken({ resource: 'https://api.test' }), want: { status: 403, body: { error: 'mismatched audience' } } },
    { desc: 'a required scope missing: 403', path: '/scopes', token: () => op.clientToken({ resource: 'https://api.test', scope: 'api:read' }), want: { status: 403, body: { error: 'required scopes api:write not present' } } },
    { desc: 'an algorithm other than token_signing_alg_values_expected', path: '/es256', token: () => op.clientToken({ resource: 'https://api.test' }), want: { status: 401, body: { message: 'invalid token' }, auth: challenge(/.*alg.*/) } },
    { desc: 'an issuer outside valid_issuers', path: '/issuers', token: () => op.clientToken({ resource: 'https://api.test' }), want: { status: 401, body: { message: 'invalid token' }, auth: challenge(/unexpected 'iss' claim value/) } },
    { desc: 'introspection: unknown opaque token is not active', path: '/introspect', token: async () => 'x'.repeat(43), want: { status: 401, body: { message: 'invalid token' }, auth: challenge(/token is not active/) } },
  ];
  for (const c of refusals) {
    it(`refused: ${c.desc}`, async () => {
      const t = await c.token();
      const res = await request(gw.port, c.path, { headers: t === undefined ? {} : bearer(t) });
      assert.equal(res.status, c.want.status);
      assert.deepEqual(JSON.parse(res.body), c.want.body);
      if (c.want.auth) c.want.auth(res.headers['www-authenticate']);
      else assert.equal(res.headers['www-authenticate'], undefined);
    });
  }

  const accepted: { desc: string; path: string; token: () => Promise<string> }[] = [
    { desc: 'audience equal to client_id (match_with_client_id)', path: '/aud', token: () => op.clientToken({ resource: 'https://gw.test' }) },
    { desc: 'the required scope granted', path: '/scopes', token: () => op.clientToken({ resource: 'https://api.test', scope: 'api:read api:write' }) },
    { desc: 'X-Access-Token from the client, without Authorization (as APISIX)', path: '/jwks', token: () => op.clientToken({ resource: 'https://api.test' }) },
  ];
  for (const c of accepted) {
    it(`accepted: ${c.desc}`, async () => {
      const t = await c.token();
      const res = await request(gw.port, c.path, { headers: c.desc.startsWith('X-Access') ? { 'x-access-token': t } : bearer(t) });
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.body).headers['x-access-token'], t);
    });
  }

  it('an expired token is refused (401, exp)', async () => {
    const token = await op.clientToken({ resource: 'https://short.test' });
    await sleep(2100);
    const res = await request(gw.port, '/jwks', { headers: bearer(token) });
    assert.equal(res.status, 401);
    challenge(/.*exp.*/)(res.headers['www-authenticate']);
  });

  it('introspection: an active opaque token passes, with the introspection answer in X-Userinfo; the answer is cached', async () => {
    const token = await op.clientToken({ scope: 'api:read' });
    assert.equal(token.split('.').length, 1, 'opaque');
    const before = op.hits.get('/token/introspection') ?? 0;
    for (let i = 0; i < 3; i++) {
      const res = await request(gw.port, '/introspect', { headers: bearer(token) });
      assert.equal(res.status, 200);
      const info = decode(JSON.parse(res.body).headers['x-userinfo']);
      assert.equal(info.active, true);
      assert.equal(info.client_id, CLIENT_ID);
    }
    assert.equal((op.hits.get('/token/introspection') ?? 0) - before, 1);
  });

  it('JWKS key rotation: a token signed with a new key is accepted after one refetch; the old key is gone; unknown kids refetch at most once a second', async () => {
    const old = await op.clientToken({ resource: 'https://api.test' });
    assert.equal((await request(gw.port, '/jwks-rot', { headers: bearer(old) })).status, 200);
    await op.rotateKeys();
    await sleep(1100); // past the refetch cooldown of the first fetch
    const fresh = await op.clientToken({ resource: 'https://api.test' });
    assert.notEqual(JSON.parse(Buffer.from(fresh.split('.')[0], 'base64url').toString()).kid, JSON.parse(Buffer.from(old.split('.')[0], 'base64url').toString()).kid);
    const before = op.hits.get('/jwks') ?? 0;
    assert.equal((await request(gw.port, '/jwks-rot', { headers: bearer(fresh) })).status, 200);
    assert.equal((op.hits.get('/jwks') ?? 0) - before, 1);
    // Within the cooldown, tokens with unknown kids cost no further fetch.
    const [h, p, sig] = fresh.split('.');
    const forged = (kid: string) => `${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(h, 'base64url').toString()), kid })).toString('base64url')}.${p}.${sig}`;
    const statuses = await Promise.all(['a', 'b', 'c', 'd'].map((k) => request(gw.port, '/jwks-rot', { headers: bearer(forged(k)) }).then((r) => r.status)));
    assert.deepEqual(statuses, [401, 401, 401, 401]);
    assert.ok((op.hits.get('/jwks') ?? 0) - before <= 2, 'at most one refetch for the flood');
    assert.equal((await request(gw.port, '/jwks-rot', { headers: bearer(old) })).status, 401);
  });

  it('provider unreachable: 503 (fail closed) with a log line naming the discovery URL; the gateway keeps serving', async () => {
    const logs = captureLogs();
    try {
      const token = await op.clientToken({ resource: 'https://api.test' });
      const res = await request(gw.port, '/down', { headers: bearer(token) });
      assert.equal(res.status, 503);
      assert.deepEqual(JSON.parse(res.body), { message: 'identity provider unavailable' });
      const line = logs.lines.find((l) => l.msg === 'openid-connect: identity provider unavailable');
      assert.ok(line, 'logged');
      assert.equal(line.discovery, `http://127.0.0.1:${dead}/.well-known/openid-configuration`);
    } finally {
      logs.restore();
    }
    assert.equal((await request(gw.port, '/jwks', { headers: bearer(await op.clientToken({ resource: 'https://api.test' })) })).status, 200);
  });
});

describe('openid-connect: provider outage and recovery', () => {
  it('a provider that drops connections is 503 until it answers again; a public_key route needs no provider call for keys', async () => {
    const op = await startOp();
    const up = await startUpstream();
    const token = await op.clientToken({ resource: 'https://api.test' });
    const jwk = (await (await fetch(`${op.issuer}/jwks`)).json() as { keys: import('node:crypto').JsonWebKey[] }).keys[0];
    const pem = createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
    const base = `discovery: "${op.discovery}", client_id: ${CLIENT_ID}, client_secret: ${GW_SECRET}, bearer_only: true`;
    const gw = await startGateway(`routes:\n  - { id: a, uri: /a, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }, plugins: { openid-connect: { ${base}, use_jwks: true, timeout: 1 } } }\n`
      + `  - id: pk\n    uri: /pk\n    upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }\n    plugins:\n      openid-connect:\n        discovery: "${op.discovery}"\n        client_id: ${CLIENT_ID}\n        bearer_only: true\n        claim_validator: { issuer: { valid_issuers: ["${op.issuer}"] } }\n        public_key: |\n${pem.trim().split('\n').map((l) => `          ${l}`).join('\n')}\n`);
    try {
      op.down = true;
      assert.equal((await request(gw.port, '/a', { headers: bearer(token) })).status, 503);
      assert.equal((await request(gw.port, '/pk', { headers: bearer(token) })).status, 200);
      op.down = false;
      await sleep(1100); // the failure is remembered for a second
      assert.equal((await request(gw.port, '/a', { headers: bearer(token) })).status, 200);
    } finally {
      await gw.close(); await up.close(); await op.close();
    }
  });
});

describe('openid-connect: config', () => {
  const d = 'http://127.0.0.1:1/.well-known/openid-configuration';
  const cases: { desc: string; conf: Record<string, unknown>; want: RegExp | null }[] = [
    { desc: 'bearer_only with use_jwks needs no secret', conf: { discovery: d, client_id: 'c', bearer_only: true, use_jwks: true }, want: null },
    { desc: 'the browser flow needs session.secret', conf: { discovery: d, client_id: 'c', client_secret: 's' }, want: /property "session.secret" is required when "bearer_only" is false/ },
    { desc: 'session.secret of 16 characters at least', conf: { discovery: d, client_id: 'c', client_secret: 's', session: { secret: 'short' } }, want: /secret.*(16|fewer)/ },
    { desc: 'introspection needs client_secret', conf: { discovery: d, client_id: 'c', bearer_only: true }, want: /property "client_secret" is required/ },
    { desc: 'discovery is required', conf: { client_id: 'c', bearer_only: true, use_jwks: true }, want: /discovery/ },
    { desc: 'discovery is an http(s) URL', conf: { discovery: 'file:///etc/passwd', client_id: 'c', bearer_only: true, use_jwks: true }, want: /discovery/ },
    { desc: 'public_key must be a key', conf: { discovery: d, client_id: 'c', bearer_only: true, public_key: 'nope' }, want: /public_key is not a valid PEM public key/ },
    { desc: 'unauth_action is auth, deny or pass', conf: { discovery: d, client_id: 'c', client_secret: 's', session: { secret: 'x'.repeat(16) }, unauth_action: 'maybe' }, want: /unauth_action/ },
    { desc: 'a full browser config loads', conf: { discovery: d, client_id: 'c', client_secret: 's', session: { secret: 'x'.repeat(16), cookie: { lifetime: 60 } }, use_pkce: true, redirect_uri: '/cb' }, want: null },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const errs = (await pluginConfigErrors('openid-connect', c.conf)).join('\n');
      if (c.want === null) assert.equal(errs, '');
      else assert.match(errs, c.want);
    });
  }
});
