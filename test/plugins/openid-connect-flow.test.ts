/**
 * openid-connect, the browser: the authorization-code flow against a real
 * OpenID Provider (oidc-provider on loopback, its devInteractions login and
 * consent forms), driven by a cookie-jar client that follows redirects by
 * hand, ending on the upstream with the user's claims.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { refusedPort, request, startGateway, startUpstream, type Res, type TestGateway, type Upstream } from '../helpers/harness.ts';
import { CLIENT_ID, GW_SECRET, startOp, type TestOp } from '../helpers/oidc.ts';
import { sameHostTarget } from '../../plugins/openid-connect/flow.ts';

const decode = (h: unknown) => JSON.parse(Buffer.from(String(h), 'base64').toString('utf8')) as Record<string, unknown>;
const SECRET = 'a-session-secret-of-32-characters';

/** Cookies by host:port (paths ignored: enough for one provider and one gateway). */
class Browser {
  jar = new Map<string, Map<string, string>>();

  cookies(hostPort: string): Map<string, string> {
    let m = this.jar.get(hostPort);
    if (!m) this.jar.set(hostPort, (m = new Map()));
    return m;
  }

  /** One exchange; Set-Cookie stored (Max-Age=0 deletes). */
  send(url: string, opts: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Res & { url: string }> {
    const u = new URL(url);
    const jar = this.cookies(u.host);
    const headers: Record<string, string> = { ...opts.headers };
    if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const body = opts.form ? new URLSearchParams(opts.form).toString() : undefined;
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    return new Promise((resolve, reject) => {
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: opts.method ?? 'GET', headers, agent: false }, (res) => {
        for (const c of res.headers['set-cookie'] ?? []) {
          const [pair] = c.split(';');
          const eq = pair.indexOf('=');
          const name = pair.slice(0, eq).trim(), value = pair.slice(eq + 1).trim();
          if (/;\s*max-age=0/i.test(c) || /expires=Thu, 01 Jan 1970/i.test(c)) jar.delete(name); else jar.set(name, value);
        }
        const chunks: Buffer[] = [];
        res.on('data', (d) => chunks.push(d));
        res.on('end', () => resolve({ url, status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /**
   * Follows redirects from `url`; on the provider's login and consent pages,
   * submits the form (login as `user`). Returns every response in order.
   */
  async walk(url: string, user: string, max = 20): Promise<(Res & { url: string })[]> {
    const trace: (Res & { url: string })[] = [];
    let next: { url: string; method?: string; form?: Record<string, string> } | undefined = { url };
    while (next && trace.length < max) {
      const res = await this.send(next.url, next);
      trace.push(res);
      const loc = res.headers.location;
      if (res.status >= 300 && res.status < 400 && loc) { next = { url: new URL(loc, next.url).href }; continue; }
      const action = /<form[^>]*action="([^"]+)"/.exec(res.body)?.[1];
      if (res.status === 200 && action && /\/interaction\//.test(action)) {
        const form: Record<string, string> = /name="prompt" value="login"/.test(res.body) ? { prompt: 'login', login: user, password: 'any' } : { prompt: 'consent' };
        next = { url: new URL(action, next.url).href, method: 'POST', form };
        continue;
      }
      next = undefined;
    }
    return trace;
  }
}

describe('openid-connect: browser authorization-code flow', () => {
  let op: TestOp;
  let up: Upstream;
  let gw: TestGateway;
  let gwBase: string;
  before(async () => {
    op = await startOp();
    up = await startUpstream();
    const dead = await refusedPort();
    const base = `discovery: "${op.discovery}", client_id: ${CLIENT_ID}, client_secret: ${GW_SECRET}, session: { secret: ${SECRET} }`;
    const route = (id: string, uri: string, conf: string) => `  - { id: ${id}, uri: "${uri}", upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }, plugins: { openid-connect: { ${conf} } } }\n`;
    gw = await startGateway('routes:\n'
      + route('app', '/app/*', `${base}, scope: "openid profile email", redirect_uri: /app/callback, logout_path: /app/logout, post_logout_redirect_uri: "https://app.test/bye", use_pkce: true, set_refresh_token_header: true`)
      + route('plain', '/plain/*', base)
      + route('deny', '/deny', `${base}, unauth_action: deny`)
      + route('pass', '/pass', `${base}, unauth_action: pass`)
      + route('down', '/down', `discovery: "http://127.0.0.1:${dead}/.well-known/openid-configuration", client_id: x, client_secret: y, session: { secret: ${SECRET} }`));
    gwBase = `http://127.0.0.1:${gw.port}`;
    await op.setRedirects([`${gwBase}/app/callback`], ['https://app.test/bye']);
  });
  after(async () => { await gw?.close(); await up?.close(); await op?.close(); });

  it('a login ends on the upstream with the user\'s claims in X-Userinfo and X-ID-Token, the access and refresh tokens', async () => {
    const b = new Browser();
    const trace = await b.walk(`${gwBase}/app/page?x=1`, 'alice');
    const first = new URL(trace[0].headers.location!);
    assert.equal(trace[0].status, 302);
    assert.equal(first.origin + first.pathname, `${op.issuer}/auth`);
    const q = Object.fromEntries(first.searchParams);
    assert.equal(q.response_type, 'code');
    assert.equal(q.client_id, CLIENT_ID);
    assert.equal(q.redirect_uri, `${gwBase}/app/callback`);
    assert.equal(q.scope, 'openid profile email');
    assert.equal(q.code_challenge_method, 'S256');
    assert.match(q.code_challenge, /^[A-Za-z0-9_-]{43}$/);
    assert.match(q.state, /^[A-Za-z0-9_-]{22}$/);
    assert.match(q.nonce, /^[A-Za-z0-9_-]{22}$/);
    const cb = trace.find((r) => r.url.startsWith(`${gwBase}/app/callback`))!;
    assert.equal(cb.status, 302);
    assert.equal(cb.headers.location, '/app/page?x=1');
    assert.match(String(cb.headers['set-cookie']), /^session=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/);
    const last = trace.at(-1)!;
    assert.equal(last.status, 200);
    const seen = JSON.parse(last.body);
    assert.equal(seen.url, '/app/page?x=1');
    const info = decode(seen.headers['x-userinfo']);
    assert.deepEqual(info, { sub: 'alice', name: 'User alice', email: 'alice@example.test', email_verified: true });
    const id = decode(seen.headers['x-id-token']);
    assert.equal(id.sub, 'alice');
    assert.equal(id.aud, CLIENT_ID);
    assert.equal(id.iss, op.issuer);
    assert.equal(id.nonce, q.nonce);
    assert.match(seen.headers['x-access-token'], /^[A-Za-z0-9_-]{20,}$/);
    assert.match(seen.headers['x-refresh-token'], /^[A-Za-z0-9_-]{20,}$/);
    // The cookie is encrypted: nothing of the user readable in it.
    const cookie = b.cookies(`127.0.0.1:${gw.port}`).get('session')!;
    assert.equal(cookie.split('.').length, 5, 'a compact JWE');
    assert.doesNotMatch(cookie.split('.').map((p) => Buffer.from(p, 'base64url').toString('latin1')).join(''), /alice/);
    // The next request rides on the session, the provider not involved.
    const again = await b.send(`${gwBase}/app/other`, { headers: { 'x-userinfo': 'forged' } });
    assert.equal(again.status, 200);
    assert.equal(decode(JSON.parse(again.body).headers['x-userinfo']).sub, 'alice');
  });

  it('a tampered or foreign session cookie is no session: the browser is sent to log in', async () => {
    const b = new Browser();
    await b.walk(`${gwBase}/app/page`, 'bob');
    const jar = b.cookies(`127.0.0.1:${gw.port}`);
    const good = jar.get('session')!;
    const parts = good.split('.');
    const ct = Buffer.from(parts[3], 'base64url');
    ct[0] ^= 1;
    for (const forged of [[...parts.slice(0, 3), ct.toString('base64url'), parts[4]].join('.'), 'garbage', parts.slice(0, 4).join('.')]) {
      const res = await request(gw.port, '/app/page', { headers: { cookie: `session=${forged}`, 'x-userinfo': 'forged' } });
      assert.equal(res.status, 302);
      assert.ok(res.headers.location!.startsWith(`${op.issuer}/auth?`));
    }
    assert.equal(up.seen.filter((s) => s.headers['x-userinfo'] === 'forged').length, 0);
  });

  it('a callback whose state does not match the pending login is 401 and sets no session; a forged code too', async () => {
    const b = new Browser();
    const start = await b.send(`${gwBase}/app/page`);
    const state = new URL(start.headers.location!).searchParams.get('state')!;
    const cases: { desc: string; query: string; cookie: boolean; want: { status: number; body: unknown } }[] = [
      { desc: 'other state', query: `code=abc&state=${'A'.repeat(22)}`, cookie: true, want: { status: 401, body: { message: 'state mismatch' } } },
      { desc: 'no state', query: 'code=abc', cookie: true, want: { status: 401, body: { message: 'state mismatch' } } },
      { desc: 'no pending login', query: `code=abc&state=${state}`, cookie: false, want: { status: 401, body: { message: 'state mismatch' } } },
      { desc: 'right state, forged code', query: `code=forged&state=${state}`, cookie: true, want: { status: 401, body: { message: 'authorization failed' } } },
      { desc: 'the provider reports an error', query: `error=access_denied&state=${state}`, cookie: true, want: { status: 401, body: { message: 'authorization failed: access_denied' } } },
    ];
    for (const c of cases) {
      const headers: Record<string, string> = c.cookie ? { cookie: `session=${b.cookies(`127.0.0.1:${gw.port}`).get('session')}` } : {};
      const res = await request(gw.port, `/app/callback?${c.query}`, { headers });
      assert.equal(res.status, c.want.status, c.desc);
      assert.deepEqual(JSON.parse(res.body), c.want.body, c.desc);
      assert.equal(res.headers['set-cookie'], undefined, c.desc);
    }
  });

  it('after login the browser goes back to the same host only: a path like //evil.example stays a path', async () => {
    const b = new Browser();
    const trace = await b.walk(`${gwBase}//app//evil.example`, 'carol');
    const cb = trace.find((r) => r.url.startsWith(`${gwBase}/app/callback`))!;
    assert.equal(cb.headers.location, '/app//evil.example');
    for (const [raw, want] of [['//evil.example/x', '/evil.example/x'], ['/\\evil.example', '/evil.example'], ['/\\/\\evil', '/evil'], ['/ok?a=//b', '/ok?a=//b']]) {
      assert.equal(sameHostTarget(raw), want, raw);
    }
  });

  it('logout clears the session and sends the browser to the end_session_endpoint with id_token_hint and post_logout_redirect_uri', async () => {
    const b = new Browser();
    await b.walk(`${gwBase}/app/page`, 'dave');
    const res = await b.send(`${gwBase}/app/logout`);
    assert.equal(res.status, 302);
    const loc = new URL(res.headers.location!);
    assert.equal(loc.origin + loc.pathname, `${op.issuer}/session/end`);
    assert.equal(loc.searchParams.get('post_logout_redirect_uri'), 'https://app.test/bye');
    assert.equal(loc.searchParams.get('client_id'), CLIENT_ID);
    assert.equal(loc.searchParams.get('id_token_hint')!.split('.').length, 3);
    assert.match(String(res.headers['set-cookie']), /^session=; Path=\/; Max-Age=0; HttpOnly; SameSite=Lax$/);
    const provider = await b.send(loc.href);
    assert.equal(provider.status, 200, 'the provider accepts the logout request (its confirmation page)');
    assert.equal((await b.send(`${gwBase}/app/page`)).status, 302);
  });

  const unauth: { desc: string; path: string; want: { status: number; location?: RegExp; body?: unknown } }[] = [
    { desc: 'auth (default): 302, callback under the path (APISIX\'s /.apisix/redirect)', path: '/plain/x/', want: { status: 302, location: /redirect_uri=http%3A%2F%2F127\.0\.0\.1%3A\d+%2Fplain%2Fx%2F\.apisix%2Fredirect&/ } },
    { desc: 'deny: 401', path: '/deny', want: { status: 401, body: { message: 'unauthorized' } } },
  ];
  for (const c of unauth) {
    it(`unauth_action ${c.desc}`, async () => {
      const res = await request(gw.port, c.path);
      assert.equal(res.status, c.want.status);
      if (c.want.location) assert.match(res.headers.location!, c.want.location);
      if (c.want.body) assert.deepEqual(JSON.parse(res.body), c.want.body);
    });
  }

  it('unauth_action pass: the request goes on without identity headers, forged ones dropped', async () => {
    const res = await request(gw.port, '/pass', { headers: { 'x-userinfo': 'forged', 'x-id-token': 'forged', 'x-access-token': 'forged' } });
    assert.equal(res.status, 200);
    const h = JSON.parse(res.body).headers;
    assert.equal(h['x-userinfo'], undefined);
    assert.equal(h['x-id-token'], undefined);
    assert.equal(h['x-access-token'], undefined);
  });

  it('the provider unreachable: 503, never a redirect or the upstream', async () => {
    const before = up.seen.length;
    const res = await request(gw.port, '/down');
    assert.equal(res.status, 503);
    assert.deepEqual(JSON.parse(res.body), { message: 'identity provider unavailable' });
    assert.equal(up.seen.length, before);
  });
});

describe('openid-connect: an expired session access token', () => {
  let op: TestOp;
  let up: Upstream;
  let gw: TestGateway;
  let gwBase: string;
  before(async () => {
    op = await startOp({ accessTokenTtl: 1 });
    up = await startUpstream();
    const base = `discovery: "${op.discovery}", client_id: ${CLIENT_ID}, client_secret: ${GW_SECRET}, session: { secret: ${SECRET} }`;
    gw = await startGateway('routes:\n'
      + `  - { id: app, uri: "/app/*", upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }, plugins: { openid-connect: { ${base}, redirect_uri: /app/callback } } }\n`
      + `  - { id: norenew, uri: "/norenew/*", upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }, plugins: { openid-connect: { ${base}, redirect_uri: /norenew/callback, renew_access_token_on_expiry: false } } }\n`
      + `  - { id: short, uri: "/short/*", upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }, plugins: { openid-connect: { ${base.replace('session: {', 'session: { absolute_timeout: 3,')}, redirect_uri: /short/callback } } }\n`);
    gwBase = `http://127.0.0.1:${gw.port}`;
    await op.setRedirects([`${gwBase}/app/callback`, `${gwBase}/norenew/callback`, `${gwBase}/short/callback`], []);
  });
  after(async () => { await gw?.close(); await up?.close(); await op?.close(); });

  it('is renewed with the refresh token: a new access token upstream and a new session cookie on the response', async () => {
    const b = new Browser();
    const trace = await b.walk(`${gwBase}/app/page`, 'erin');
    const first = JSON.parse(trace.at(-1)!.body).headers['x-access-token'];
    await new Promise((r) => setTimeout(r, 1100));
    const tokenCalls = op.hits.get('/token') ?? 0;
    const res = await b.send(`${gwBase}/app/page`);
    assert.equal(res.status, 200);
    const seen = JSON.parse(res.body).headers;
    assert.notEqual(seen['x-access-token'], first);
    assert.equal(decode(seen['x-userinfo']).sub, 'erin');
    assert.match(String(res.headers['set-cookie']), /^session=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/);
    assert.equal((op.hits.get('/token') ?? 0) - tokenCalls, 1);
    const next = await b.send(`${gwBase}/app/page`);
    assert.equal(JSON.parse(next.body).headers['x-access-token'], seen['x-access-token'], 'the renewed session is used');
    assert.equal(next.headers['set-cookie'], undefined);
  });

  it('requests sent together with an expired access token share one renewal (one token call, one new token)', async () => {
    const b = new Browser();
    await b.walk(`${gwBase}/app/page`, 'hana');
    await new Promise((r) => setTimeout(r, 1100));
    const tokenCalls = op.hits.get('/token') ?? 0;
    const all = await Promise.all([1, 2, 3].map(() => b.send(`${gwBase}/app/page`)));
    assert.deepEqual(all.map((r) => r.status), [200, 200, 200]);
    assert.equal(new Set(all.map((r) => JSON.parse(r.body).headers['x-access-token'])).size, 1);
    assert.equal((op.hits.get('/token') ?? 0) - tokenCalls, 1);
  });

  it('renewing the access token never extends the session past absolute_timeout from the login', async () => {
    const b = new Browser();
    await b.walk(`${gwBase}/short/page`, 'gina');
    await new Promise((r) => setTimeout(r, 1100));
    const renewed = await b.send(`${gwBase}/short/page`);
    assert.equal(renewed.status, 200);
    assert.ok(renewed.headers['set-cookie'], 'the access token was renewed');
    await new Promise((r) => setTimeout(r, 2300));
    const res = await b.send(`${gwBase}/short/page`);
    assert.equal(res.status, 302, 'the session ended 3 s after the login, renewed or not');
    assert.ok(res.headers.location!.startsWith(`${op.issuer}/auth?`));
  });

  it('renew_access_token_on_expiry: false sends the browser to log in again', async () => {
    const b = new Browser();
    await b.walk(`${gwBase}/norenew/page`, 'frank');
    await new Promise((r) => setTimeout(r, 1100));
    const res = await b.send(`${gwBase}/norenew/page`);
    assert.equal(res.status, 302);
    assert.ok(res.headers.location!.startsWith(`${op.issuer}/auth?`));
  });
});
