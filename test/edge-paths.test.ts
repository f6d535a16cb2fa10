/** The edge: one path and one host for routing and for the upstream; methods the gateway answers itself. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, rawExchange, rawStatus, request } from './helpers/harness.ts';

const f = fixture((port) => `
consumers:
  - username: alice
    plugins: { key-auth: { key: k1 } }
upstreams:
  - { id: up, nodes: { "127.0.0.1:${port}": 1 } }
routes:
  - { id: all, uri: "/*", upstream_id: up }
  - { id: pub, uri: "/pub/*", upstream_id: up }
  - { id: priv, uri: "/priv/*", upstream_id: up, plugins: { key-auth: {} } }
  - { id: raw, uri: "/raw/*", upstream_id: up, allow_encoded_slashes: true }
  - { id: admin, uri: "/*", host: admin.example.com, upstream_id: up, plugins: { key-auth: {} } }
  - { id: other, uri: /x, host: other.example, upstream_id: up }
  - { id: rw-evil, uri: "/rw1/*", upstream_id: up, plugins: { proxy-rewrite: { regex_uri: ["^/rw1/(.*)", "//$1"] } } }
  - { id: rw-up, uri: "/rw2/*", upstream_id: up, plugins: { proxy-rewrite: { regex_uri: ["^/rw2/(.*)", "/../../$1"] } } }
  - { id: rw-fixed, uri: /rw3, upstream_id: up, plugins: { proxy-rewrite: { uri: "/a/./b/../c//d?x=1" } } }
  - { id: rw-bad, uri: /rw4, upstream_id: up, plugins: { proxy-rewrite: { uri: "/a%zz" } } }
  - { id: trace, uri: /trace, methods: [GET, TRACE], upstream_id: up }
  - { id: purge, uri: /purge, methods: [PURGE], upstream_id: up }
`);

/** What the echo upstream saw for the last request, or undefined when it saw none. */
function upstreamUrl(before: number): string | undefined {
  return f.up.seen.length > before ? f.up.seen[f.up.seen.length - 1].url : undefined;
}

describe('edge: one path', () => {
  const cases: { desc: string; path: string; key?: boolean; want: number; upstream?: string }[] = [
    { desc: 'dot-dot from an open route into a guarded one needs the key', path: '/pub/../priv/secret', want: 401 },
    { desc: 'encoded dot-dot', path: '/pub/%2e%2e/priv/secret', want: 401 },
    { desc: 'half-encoded dot-dot', path: '/pub/.%2e/priv/secret', want: 401 },
    { desc: 'upper-case encoded dot-dot', path: '/pub/%2E%2E/priv/secret', want: 401 },
    { desc: 'dot-dot with an encoded slash is refused', path: '/pub/..%2fpriv/secret', want: 400 },
    { desc: 'encoded slash after the guarded prefix is refused', path: '/priv%2fx', want: 400 },
    { desc: 'double slash before the guarded prefix', path: '//priv/x', want: 401 },
    { desc: 'leading encoded slash is refused', path: '/%2fpriv/x', want: 400 },
    { desc: 'encoded backslash is refused', path: '/pub/..%5cpriv/x', want: 400 },
    { desc: 'raw backslash is refused', path: '/pub/..\\priv/x', want: 400 },
    { desc: 'servlet-style dot-dot is refused', path: '/pub/..;/priv/x', want: 400 },
    { desc: 'broken escape is refused', path: '/pub/a%zz', want: 400 },
    { desc: 'the routed path is the path sent upstream', path: '/pub/../priv/secret', key: true, want: 200, upstream: '/priv/secret' },
    { desc: 'merged slashes and dots go upstream normalised', path: '/pub//a/./b/../c', want: 200, upstream: '/pub/a/c' },
    { desc: 'unreserved escapes decoded, others kept', path: '/pub/%41%62c%3f', want: 200, upstream: '/pub/Abc%3F' },
    { desc: 'the query is not touched', path: '/pub/./x?a=../b&c=%2f', want: 200, upstream: '/pub/x?a=../b&c=%2f' },
    { desc: 'a route that allows encoded slashes gets them encoded', path: '/raw/a%2fb', want: 200, upstream: '/raw/a%2Fb' },
    { desc: 'a regex_uri result of //host/x is made a path', path: '/rw1/evil.example/x', want: 200, upstream: '/evil.example/x' },
    { desc: 'a regex_uri result cannot climb above the root', path: '/rw2/etc/passwd', want: 200, upstream: '/etc/passwd' },
    { desc: 'a fixed uri is normalised, its query kept', path: '/rw3', want: 200, upstream: '/a/c/d?x=1' },
    { desc: 'a rewrite to a path that cannot be normalised fails closed with GW_ERR_INTERNAL', path: '/rw4', want: 500 },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const before = f.up.seen.length;
      const res = await request(f.gw.port, c.path, { headers: c.key ? { apikey: 'k1' } : {} });
      assert.equal(res.status, c.want, res.body);
      assert.equal(upstreamUrl(before), c.upstream);
      if (c.want === 400) assert.equal(JSON.parse(res.body).code, 'GW_ERR_BAD_REQUEST');
      if (c.want === 500) assert.equal(JSON.parse(res.body).code, 'GW_ERR_INTERNAL');
    });
  }
});

describe('edge: one host', () => {
  const cases: { desc: string; host: string; key?: boolean; want: number }[] = [
    { desc: 'trailing dot does not skip a guarded host route', host: 'admin.example.com.', want: 401 },
    { desc: 'case and port do not skip it', host: 'ADMIN.Example.com:9080', want: 401 },
    { desc: 'with the key it passes', host: 'admin.example.com.', key: true, want: 200 },
    { desc: 'a Host that is no host name is refused', host: 'admin.example.com@evil', want: 400 },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await request(f.gw.port, '/anything', { headers: { host: c.host, ...(c.key ? { apikey: 'k1' } : {}) } });
      assert.equal(res.status, c.want, res.body);
    });
  }

  it('answers 400 to two Host headers', async () => {
    const before = f.up.seen.length;
    const out = await rawExchange(f.gw.port, 'GET /pub/x HTTP/1.1\r\nHost: a.example\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n');
    assert.equal(rawStatus(out), 400);
    assert.match(out, /GW_ERR_BAD_REQUEST/);
    assert.equal(upstreamUrl(before), undefined);
  });

  it('routes an absolute-form target by its authority and forwards origin form', async () => {
    const before = f.up.seen.length;
    const out = await rawExchange(f.gw.port, 'GET http://Other.Example/x?q=1 HTTP/1.1\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n');
    assert.equal(rawStatus(out), 200, out);
    const seen = f.up.seen[f.up.seen.length - 1];
    assert.equal(f.up.seen.length, before + 1);
    assert.equal(seen.url, '/x?q=1');
    assert.equal(seen.headers.host, 'Other.Example');
  });
});

describe('edge: methods', () => {
  it('answers TRACE 405 on a route that does not list it', async () => {
    const before = f.up.seen.length;
    const res = await request(f.gw.port, '/pub/x', { method: 'TRACE', headers: { cookie: 'session=secret' } });
    assert.equal(res.status, 405);
    assert.equal(JSON.parse(res.body).code, 'GW_ERR_METHOD_NOT_ALLOWED');
    assert.equal(upstreamUrl(before), undefined);
  });

  it('forwards TRACE on a route that lists it', async () => {
    const res = await request(f.gw.port, '/trace', { method: 'TRACE' });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).method, 'TRACE');
  });

  it('routes PURGE on a route that lists it', async () => {
    const res = await request(f.gw.port, '/purge', { method: 'PURGE' });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).method, 'PURGE');
  });

  it('answers CONNECT 405 and closes', async () => {
    const out = await rawExchange(f.gw.port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    assert.equal(rawStatus(out), 405);
    assert.match(out, /GW_ERR_METHOD_NOT_ALLOWED/);
  });
});
