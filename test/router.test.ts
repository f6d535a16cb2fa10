/** Routing tables: paths, methods, hosts, priorities. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Router, type RouteSpec } from '../src/router.ts';
import { normalizeHost, normalizePath, normalizeRewritten } from '../src/runtime/normalize.ts';
import type { RouteEntry } from '../src/snapshot.ts';

function spec(id: string, s: Partial<Omit<RouteSpec, 'route'>> & { uris: string[] }, order: number): RouteSpec {
  return { route: { id } as RouteEntry, priority: 0, order, ...s };
}

const table: RouteSpec[] = [
  spec('exact', { uris: ['/orders'] }, 0),
  spec('prefix', { uris: ['/orders/*'] }, 1),
  spec('param', { uris: ['/users/:id'] }, 2),
  spec('param-deep', { uris: ['/users/:id/orders/:oid'] }, 3),
  spec('post-only', { uris: ['/submit'], methods: new Set(['POST']) }, 4),
  spec('get-high', { uris: ['/both'], methods: new Set(['GET']), priority: 9 }, 15),
  spec('any-low', { uris: ['/both'] }, 16),
  spec('host-a', { uris: ['/api/*'], hosts: ['a.example.com'] }, 5),
  spec('wild', { uris: ['/api/*'], hosts: ['*.example.com'] }, 6),
  spec('wild-deeper', { uris: ['/api/*'], hosts: ['*.eu.example.com'] }, 7),
  spec('api-any', { uris: ['/api/*'] }, 8),
  spec('low', { uris: ['/overlap'], priority: 1 }, 9),
  spec('high', { uris: ['/overlap'], priority: 5 }, 10),
  spec('first', { uris: ['/tie'] }, 11),
  spec('second', { uris: ['/tie'] }, 12),
  spec('multi', { uris: ['/m1', '/m2'] }, 13),
  spec('host-only', { uris: ['/only-host'], hosts: ['b.example.com'] }, 14),
  spec('v1-get', { uris: ['/v1/*'], methods: new Set(['GET']) }, 17),
  spec('v1-items-get', { uris: ['/v1/items/:id'], methods: new Set(['GET']) }, 18),
  spec('v1-exact-put', { uris: ['/v1/exact'], methods: new Set(['PUT']) }, 19),
  spec('root', { uris: ['/*'], methods: new Set(['POST', 'DELETE']) }, 20),
  spec('filtered', { uris: ['/f/*'], filtered: true, priority: 1 }, 21),
  spec('unfiltered', { uris: ['/f/*'] }, 22),
];
const router = new Router(table);

const cases: { desc: string; method?: string; path: string; host?: string; want: string | undefined; params?: Record<string, string> }[] = [
  { desc: 'exact path', path: '/orders', want: 'exact' },
  { desc: 'prefix below', path: '/orders/42/items', want: 'prefix' },
  { desc: 'prefix with trailing slash', path: '/orders/', want: 'prefix' },
  { desc: 'parameter', path: '/users/7', want: 'param', params: { id: '7' } },
  { desc: 'two parameters', path: '/users/7/orders/9', want: 'param-deep', params: { id: '7', oid: '9' } },
  { desc: 'parameter needs a segment', path: '/users/', want: undefined },
  { desc: 'method allowed', method: 'POST', path: '/submit', want: 'post-only' },
  { desc: 'method not allowed', method: 'GET', path: '/submit', want: undefined },
  { desc: 'same path: the higher priority route allows the method', method: 'GET', path: '/both', want: 'get-high' },
  { desc: 'same path: the next route takes other methods', method: 'DELETE', path: '/both', want: 'any-low' },
  { desc: 'exact host', path: '/api/x', host: 'a.example.com', want: 'host-a' },
  { desc: 'exact host with port and case', path: '/api/x', host: 'A.Example.com:9080', want: 'host-a' },
  { desc: 'exact host with a trailing dot', path: '/api/x', host: 'a.example.com.', want: 'host-a' },
  { desc: 'exact host with a trailing dot and a port', path: '/api/x', host: 'A.EXAMPLE.COM.:80', want: 'host-a' },
  { desc: 'wildcard host', path: '/api/x', host: 'b.example.com', want: 'wild' },
  { desc: 'longest wildcard first', path: '/api/x', host: 'x.eu.example.com', want: 'wild-deeper' },
  { desc: 'wildcard does not match the bare domain', path: '/api/x', host: 'example.com', want: 'api-any' },
  { desc: 'no host falls to host-less routes', path: '/api/x', want: 'api-any' },
  { desc: 'a host route on another path does not hide host-less ones', path: '/orders', host: 'b.example.com', want: 'exact' },
  { desc: 'host-only route needs its host', path: '/only-host', host: 'c.example.com', want: undefined },
  { desc: 'host-only route with its host', path: '/only-host', host: 'b.example.com', want: 'host-only' },
  { desc: 'higher priority wins an overlap', path: '/overlap', want: 'high' },
  { desc: 'equal priority: first declared wins', path: '/tie', want: 'first' },
  { desc: 'several uris, second', path: '/m2', want: 'multi' },
  { desc: 'no match', path: '/nothing', want: 'root', method: 'POST' },
  { desc: 'no match for the method anywhere', path: '/nothing', want: undefined },
  { desc: 'a prefix route refusing the method lets a shorter prefix take it', method: 'POST', path: '/v1/x', want: 'root', params: { '*': 'v1/x' } },
  { desc: 'a parameter route refusing the method falls back past its own prefix', method: 'DELETE', path: '/v1/items/7', want: 'root' },
  { desc: 'an exact route refusing the method falls back to the prefix that takes it', method: 'GET', path: '/v1/exact', want: 'v1-get' },
  { desc: 'an exact route that takes the method', method: 'PUT', path: '/v1/exact', want: 'v1-exact-put' },
  { desc: 'an empty parameter falls back to a prefix', path: '/v1/items/', want: 'v1-get' },
  { desc: 'a filtered route is skipped when nothing accepts it', path: '/f/x', want: 'unfiltered' },
  { desc: 'paths are case-sensitive', path: '/ORDERS', want: undefined },
];

describe('router', () => {
  for (const c of cases) {
    it(c.desc, () => {
      const m = router.find(c.method ?? 'GET', c.path, c.host === undefined ? undefined : normalizeHost(c.host));
      assert.equal(m?.route.id, c.want);
      if (c.params) assert.deepEqual({ ...m?.params }, c.params);
    });
  }

  it('asks accept only of filtered routes, and takes the first it passes', () => {
    const asked: string[] = [];
    const m = router.find('GET', '/f/x', undefined, (r) => { asked.push(r.id); return true; });
    assert.equal(m?.route.id, 'filtered');
    assert.deepEqual(asked, ['filtered']);
    assert.equal(router.find('GET', '/f/x', undefined, () => false)?.route.id, 'unfiltered');
    assert.equal(router.filtered, true);
    assert.equal(new Router(table.filter((s) => !s.filtered)).filtered, false);
  });

  it('finds the last of 10,000 routes', () => {
    const many = Array.from({ length: 10_000 }, (_, i) => spec(`r${i}`, { uris: [`/svc${i}/items/:id`] }, i));
    const big = new Router(many);
    assert.equal(big.find('GET', '/svc9999/items/1', undefined)?.route.id, 'r9999');
    assert.equal(big.find('GET', '/svc10000/items/1', undefined), undefined);
  });
});

const paths: { desc: string; path: string; want: string | undefined }[] = [
  { desc: 'plain path is returned as is', path: '/a/b/c', want: '/a/b/c' },
  { desc: 'root', path: '/', want: '/' },
  { desc: 'dot-dot segment', path: '/pub/../priv/secret', want: '/priv/secret' },
  { desc: 'encoded dots', path: '/pub/%2e%2e/priv/secret', want: '/priv/secret' },
  { desc: 'half-encoded dots', path: '/pub/.%2e/priv/secret', want: '/priv/secret' },
  { desc: 'upper-case encoded dots', path: '/pub/%2E%2E/priv', want: '/priv' },
  { desc: 'dot-dot then encoded slash stays one segment', path: '/pub/..%2fpriv/x', want: '/pub/..%2Fpriv/x' },
  { desc: 'encoded slash kept encoded, upper-cased', path: '/priv%2fx', want: '/priv%2Fx' },
  { desc: 'double slash merged', path: '//priv/x', want: '/priv/x' },
  { desc: 'many slashes merged', path: '/a///b//', want: '/a/b/' },
  { desc: 'leading encoded slash kept', path: '/%2fpriv/x', want: '/%2Fpriv/x' },
  { desc: 'dot segment', path: '/a/./b/.', want: '/a/b/' },
  { desc: 'above the root is clamped', path: '/../../etc/passwd', want: '/etc/passwd' },
  { desc: 'trailing dot-dot keeps a slash', path: '/a/b/..', want: '/a/' },
  { desc: 'unreserved escapes decoded', path: '/%41%62c%7e%2D', want: '/Abc~-' },
  { desc: 'reserved escapes kept, upper-cased', path: '/a%3fb%20c', want: '/a%3Fb%20c' },
  { desc: 'non-ASCII escapes kept', path: '/caf%c3%a9', want: '/caf%C3%A9' },
  { desc: 'dots inside a name are not segments', path: '/a/..b/.c/...', want: '/a/..b/.c/...' },
  { desc: 'broken escape', path: '/a%zz', want: undefined },
  { desc: 'truncated escape', path: '/a%2', want: undefined },
  { desc: 'NUL byte', path: '/a%00b', want: undefined },
  { desc: 'raw backslash', path: '/pub/..\\priv', want: undefined },
  { desc: 'servlet path parameter on dot-dot', path: '/pub/..;/priv/x', want: undefined },
  { desc: 'not absolute', path: 'priv/x', want: undefined },
];

describe('path normalisation', () => {
  for (const c of paths) {
    it(c.desc, () => assert.equal(normalizePath(c.path), c.want));
  }
  const rewrites: { desc: string; path: string; want: string | undefined }[] = [
    { desc: 'protocol-relative result', path: '//evil.example/x', want: '/evil.example/x' },
    { desc: 'escape above the root', path: '/../../etc/passwd', want: '/etc/passwd' },
    { desc: 'relative result made absolute', path: 'x/../y', want: '/y' },
    { desc: 'a query in the result is kept, the path before it normalised', path: '/a/./b?x=/../1', want: '/a/b?x=/../1' },
  ];
  for (const c of rewrites) {
    it(`rewrite: ${c.desc}`, () => assert.equal(normalizeRewritten(c.path), c.want));
  }
});

describe('host normalisation', () => {
  const hosts: { desc: string; host: string; want: string | undefined }[] = [
    { desc: 'lower-cased, port removed', host: 'Admin.Example.COM:8080', want: 'admin.example.com' },
    { desc: 'trailing dot removed', host: 'admin.example.com.', want: 'admin.example.com' },
    { desc: 'IPv6 literal with port', host: '[::1]:9080', want: '[::1]' },
    { desc: 'userinfo refused', host: 'a@b.example', want: undefined },
    { desc: 'slash refused', host: 'a.example/x', want: undefined },
    { desc: 'empty label refused', host: 'a..example', want: undefined },
    { desc: 'non-numeric port refused', host: 'a.example:x', want: undefined },
  ];
  for (const c of hosts) {
    it(c.desc, () => assert.equal(normalizeHost(c.host), c.want));
  }
});
