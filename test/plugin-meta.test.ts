/** APISIX's `_meta` on a plugin entry: filter, priority, error_response; refused at load when wrong, honoured on real sockets. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, request } from './helpers/harness.ts';
import { loadIssues, loadWarnings } from './helpers/load.ts';
import { IssueList } from '../src/config/issues.ts';
import { takeMeta, withMeta } from '../src/config/plugin-meta.ts';
import type { Ctx } from '../src/plugin.ts';

describe('_meta.filter is decided once per request, for all the plugin\'s phases (as APISIX caches it)', () => {
  it('a header changed after the first phase does not change the answer; another request is asked afresh', () => {
    const meta = takeMeta('p', { _meta: { filter: [['http_x_a', '==', '1']] } }, [], new IssueList('gateway.yaml'))!;
    const ran: string[] = [];
    const rewrite = withMeta(() => { ran.push('rewrite'); }, meta, 'rewrite');
    const headerFilter = withMeta(() => { ran.push('header_filter'); }, meta, 'header_filter');
    const ctx = { request: { headers: { 'x-a': '1' } } } as unknown as Ctx;
    rewrite({}, ctx);
    ctx.request.headers['x-a'] = '2';
    headerFilter({}, ctx);
    const other = { request: { headers: { 'x-a': '2' } } } as unknown as Ctx;
    rewrite({}, other);
    assert.deepEqual(ran, ['rewrite', 'header_filter']);
  });
});

describe('_meta on real sockets', () => {
  const f = fixture((port) => `
upstreams:
  - { id: up, nodes: { "127.0.0.1:${port}": 1 } }
consumers:
  - { username: alice, plugins: { key-auth: { key: alice-key } } }
  - { username: bob, plugins: { key-auth: { key: bob-key } } }
routes:
  - id: filtered
    uri: /filtered
    upstream_id: up
    plugins:
      key-auth: &open-unless-asked { _meta: { filter: [["arg_open", "~=", "1"]] } }
  - id: aliased
    uri: /aliased
    upstream_id: up
    plugins:
      key-auth: *open-unless-asked
  - id: by-consumer
    uri: /by-consumer
    upstream_id: up
    plugins:
      key-auth: {}
      ip-restriction: { blacklist: ["0.0.0.0/0", "::/0"], _meta: { filter: [["consumer_name", "==", "bob"]] } }
  - id: json-error
    uri: /json-error
    upstream_id: up
    plugins:
      key-auth: { _meta: { error_response: { message: denied } } }
  - id: text-error
    uri: /text-error
    upstream_id: up
    plugins:
      key-auth: { _meta: { error_response: go away } }
  - id: ok-reply
    uri: /ok-reply
    plugins:
      mocking: { response_example: hi, _meta: { error_response: never shown } }
  - id: plain-order
    uri: /plain-order
    upstream_id: up
    plugins:
      key-auth: {}
      serverless-pre-function: { phase: rewrite, functions: ["return () => ({ status: 200, body: 'function first' })"] }
  - id: meta-order
    uri: /meta-order
    upstream_id: up
    plugins:
      key-auth: { _meta: { priority: 20000 } }
      serverless-pre-function: { phase: rewrite, functions: ["return () => ({ status: 200, body: 'function first' })"] }
`);

  const cases: { desc: string; path: string; headers?: Record<string, string>; want: { status: number; body?: unknown; type?: string | undefined; upstream?: boolean } }[] = [
    { desc: 'filter holds: the plugin runs (no key: 401)', path: '/filtered', want: { status: 401, upstream: false } },
    { desc: 'filter fails: the plugin is skipped', path: '/filtered?open=1', want: { status: 200, upstream: true } },
    { desc: 'a YAML alias of the same entry carries its _meta to the second route too: filter holds', path: '/aliased', want: { status: 401, upstream: false } },
    { desc: 'a YAML alias of the same entry carries its _meta to the second route too: filter fails', path: '/aliased?open=1', want: { status: 200, upstream: true } },
    { desc: 'a filter on consumer_name, known after auth: alice passes', path: '/by-consumer', headers: { apikey: 'alice-key' }, want: { status: 200, upstream: true } },
    { desc: 'a filter on consumer_name, known after auth: bob is refused', path: '/by-consumer', headers: { apikey: 'bob-key' }, want: { status: 403, upstream: false } },
    { desc: 'error_response as a mapping replaces the body, sent as JSON', path: '/json-error', want: { status: 401, body: { message: 'denied' }, type: 'application/json', upstream: false } },
    { desc: 'error_response as text replaces the body, without the plugin\'s JSON type', path: '/text-error', want: { status: 401, body: 'go away', type: undefined, upstream: false } },
    { desc: 'a valid key is not an error: no error_response', path: '/json-error', headers: { apikey: 'alice-key' }, want: { status: 200, upstream: true } },
    { desc: 'a reply under 400 keeps its body', path: '/ok-reply', want: { status: 200, body: 'hi' } },
    { desc: 'without _meta.priority the function (priority 10000) answers before key-auth (2500), both in rewrite', path: '/plain-order', want: { status: 200, body: 'function first', upstream: false } },
    { desc: '_meta.priority 20000 puts key-auth first: no key, 401', path: '/meta-order', want: { status: 401, upstream: false } },
    { desc: '_meta.priority 20000 puts key-auth first: with a key, the function answers', path: '/meta-order', headers: { apikey: 'alice-key' }, want: { status: 200, body: 'function first', upstream: false } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const before = f.up.seen.length;
      const res = await request(f.gw.port, c.path, { headers: c.headers });
      assert.equal(res.status, c.want.status);
      if (c.want.body !== undefined) assert.deepEqual(typeof c.want.body === 'string' ? res.body : JSON.parse(res.body), c.want.body);
      if ('type' in c.want) assert.equal(res.headers['content-type'], c.want.type);
      if (c.want.upstream !== undefined) assert.equal(f.up.seen.length, before + (c.want.upstream ? 1 : 0));
    });
  }
});

/** A filter `depth` levels of AND deep. */
const nested = (depth: number): string => {
  let rule = '["arg_a", "==", "1"]';
  for (let i = 0; i < depth; i++) rule = `["AND", ${rule}, ["arg_b", "==", "1"]]`;
  return `[${rule}]`;
};

describe('_meta refused at load, at its place', () => {
  const conf = (meta: string) => `routes:\n  - id: r\n    uri: /r\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n    plugins:\n      key-auth:\n        _meta: ${meta}\n`;
  const at = 'gateway.yaml:7';
  const cases: { desc: string; meta: string; want: string[] }[] = [
    { desc: 'not a mapping', meta: '[1]', want: [`${at}:16: routes[0].plugins.key-auth._meta: plugin key-auth: _meta must be a mapping (disable, error_response, filter, pre_function, priority)`] },
    { desc: 'a field _meta does not have', meta: '{ prority: 1 }', want: [`${at}:18: routes[0].plugins.key-auth._meta.prority: plugin key-auth: _meta has no field "prority" (it has disable, error_response, filter, pre_function, priority)`] },
    { desc: 'a priority that is not an integer', meta: '{ priority: 1.5 }', want: [`${at}:28: routes[0].plugins.key-auth._meta.priority: plugin key-auth: _meta.priority must be an integer`] },
    { desc: 'an error_response that is a list', meta: '{ error_response: [a] }', want: [`${at}:34: routes[0].plugins.key-auth._meta.error_response: plugin key-auth: _meta.error_response must be a string or a mapping`] },
    { desc: 'a filter with an unknown operator', meta: '{ filter: [["arg_a", "=~", "b"]] }', want: [`${at}:37: routes[0].plugins.key-auth._meta.filter[0][1]: plugin key-auth: _meta.filter: invalid operator '=~' (known: == ~= > >= < <= ~~ ~* in has ipmatch)`] },
    { desc: 'a filter on a variable Turnpike does not know', meta: '{ filter: [["nope", "==", "b"]] }', want: [`${at}:28: routes[0].plugins.key-auth._meta.filter[0][0]: plugin key-auth: _meta.filter: "nope" is not a variable Turnpike knows here (known: remote_addr, consumer_name, route_id, service_id, uri, request_method, host, request_uri, args, scheme, remote_port, server_addr, server_port, status, upstream_addr, request_time, upstream_response_time, bytes_sent, time_iso8601, msec, http_<header>, arg_<name>, cookie_<name>)`] },
    { desc: 'a filter regex that backtracks (one request could stall the gateway)', meta: '{ filter: [["arg_a", "~~", "(a)\\\\1"]] }', want: [`${at}:43: routes[0].plugins.key-auth._meta.filter[0][2]: plugin key-auth: _meta.filter: the pattern: "(a)\\\\1" cannot run in linear time (backreferences, lookaround and repetition counts in the hundreds are not supported: a pattern that backtracks lets one request stall the gateway)`] },
    { desc: 'a filter nested past 16 levels', meta: `{ filter: ${nested(20)} }`, want: [`${at}:155: routes[0].plugins.key-auth._meta.filter[0]${'[1]'.repeat(16)}: plugin key-auth: _meta.filter: nested deeper than 16 levels`] },
    { desc: 'pre_function is Lua', meta: '{ pre_function: "return function(conf, ctx) end" }', want: [`${at}:32: routes[0].plugins.key-auth._meta.pre_function: plugin key-auth: _meta.pre_function: this is Lua; Turnpike runs JavaScript: see "Lua → JavaScript" in README.md (and MIGRATING.md); run the code in a serverless-pre-function instead`] },
  ];
  for (const c of cases) it(c.desc, async () => assert.deepEqual(await loadIssues(conf(c.meta)), c.want));

  it('disable: true still drops the plugin, with a warning', async () => {
    assert.deepEqual(await loadWarnings(conf('{ disable: true }')), ['gateway.yaml:6:7: routes[0].plugins.key-auth: warning: plugin key-auth is disabled (disable: true): not run']);
  });
});
