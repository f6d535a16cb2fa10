/** Config loading: every kind of error with its exact message and position; what a valid file compiles to. */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { formatIssues, loadConfigText } from '../src/config/load.ts';
import { FunctionPools } from '../src/serverless/pool.ts';
import './helpers/harness.ts';

const pools = new FunctionPools();
after(() => pools.close());
const load = (text: string, env: Record<string, string> = {}) =>
  loadConfigText(text, 'gateway.yaml', { env, functions: (s) => pools.host(s) });

// Every bundled plugin, sorted: the list grows as plugins are added.
const UP = '    upstream: { nodes: { "127.0.0.1:80": 1 } }\n';

const invalid: { desc: string; conf: string; env?: Record<string, string>; want: string }[] = [
  { desc: '$env:// reference to an unset variable (never the literal text as the key)', conf: 'consumers:\n  - username: a\n    plugins:\n      key-auth: { key: "REF" }\nroutes:\n  - { id: r, uri: /r, upstream: { nodes: { "127.0.0.1:1": 1 } }, plugins: { key-auth: {} } }\n'.replace('REF', '$env://NOPE'),
    want: 'gateway.yaml:4:24: environment variable NOPE is not set ($env://NOPE)' },
  { desc: '$env://NAME/key of a JSON value without that key', conf: 'consumers:\n  - username: a\n    plugins:\n      key-auth: { key: "REF" }\nroutes:\n  - { id: r, uri: /r, upstream: { nodes: { "127.0.0.1:1": 1 } }, plugins: { key-auth: {} } }\n'.replace('REF', '$env://J/nokey'), env: { J: '{"key":"x"}' },
    want: 'gateway.yaml:4:24: environment variable J has no "nokey" ($env://J/nokey reads a key of the JSON object it holds)' },
  { desc: 'a $env:// reference that names no variable', conf: 'consumers:\n  - username: a\n    plugins:\n      key-auth: { key: "REF" }\nroutes:\n  - { id: r, uri: /r, upstream: { nodes: { "127.0.0.1:1": 1 } }, plugins: { key-auth: {} } }\n'.replace('REF', '$env://bad-name'),
    want: 'gateway.yaml:4:24: $env://bad-name is not $env://NAME or $env://NAME/key' },
  { desc: '$secret:// (a secret manager)', conf: 'consumers:\n  - username: a\n    plugins:\n      key-auth: { key: "REF" }\nroutes:\n  - { id: r, uri: /r, upstream: { nodes: { "127.0.0.1:1": 1 } }, plugins: { key-auth: {} } }\n'.replace('REF', '$secret://vault/1/alice/key'),
    want: 'gateway.yaml:4:24: $secret://vault/1/alice/key: secret managers ($secret://) are not supported: use $env://NAME or ${{NAME}}' },
  { desc: 'empty file', conf: '# nothing yet\n', want: 'gateway.yaml:1:1: file is empty: a gateway needs at least one route' },
  { desc: 'not a mapping', conf: '- a\n- b\n', want: 'gateway.yaml:1:1: the file must be a mapping with routes, services, upstreams, consumers' },
  { desc: 'YAML syntax', conf: 'routes:\n  - id: a\n    uri: "/a\n', want: 'gateway.yaml:4:1: YAML: Missing closing "quote' },
  { desc: 'missing env var', conf: 'routes:\n  - id: a\n    uri: /a\n    upstream:\n      nodes: { "127.0.0.1:${{PORT}}": 1 }\n',
    want: 'gateway.yaml:5:27: environment variable PORT is not set and has no default (write ${{PORT:=default}} to give one)' },
  { desc: 'unknown field', conf: `routes:\n  - id: a\n    uri: /a\n    urll: /b\n${UP}`, want: 'gateway.yaml:4:5: routes[0].urll: unknown field "urll"' },
  { desc: 'wrong type', conf: `routes:\n  - id: a\n    uri: 42\n${UP}`, want: 'gateway.yaml:3:10: routes[0].uri: must be of type string' },
  { desc: 'bad enum', conf: 'routes:\n  - id: a\n    uri: /a\n    upstream: { type: random, nodes: { "127.0.0.1:80": 1 } }\n',
    want: 'gateway.yaml:4:23: routes[0].upstream.type: must be one of: "roundrobin", "chash", "least_conn"' },
  { desc: 'chash on a variable Turnpike does not know (it would spread requests with no hashing)', conf: 'routes:\n  - id: a\n    uri: /a\n    upstream: { type: chash, key: server_name, nodes: { "127.0.0.1:80": 1 } }\n',
    want: 'gateway.yaml:4:35: routes[0].upstream.key: "server_name" is not a variable Turnpike knows (known: remote_addr, consumer_name, route_id, service_id, uri, request_method, host, http_<header>, arg_<name>, cookie_<name>)' },
  { desc: 'empty nodes', conf: 'routes:\n  - id: a\n    uri: /a\n    upstream: { nodes: [] }\n',
    want: 'gateway.yaml:4:24: routes[0].upstream.nodes: is not valid; expected a map of "host:port": weight, or a list of {host, port, weight}' },
  { desc: 'no uri', conf: `routes:\n  - id: a\n${UP}`, want: 'gateway.yaml:2:5: routes[0]: route needs "uri" or "uris"' },
  { desc: 'uri and uris', conf: `routes:\n  - id: a\n    uri: /a\n    uris: [/b]\n${UP}`, want: 'gateway.yaml:4:5: routes[0].uris: give either uri or uris, not both' },
  { desc: 'missing service', conf: 'routes:\n  - id: a\n    uri: /a\n    service_id: nope\n', want: 'gateway.yaml:4:17: routes[0].service_id: service "nope" is not defined in services' },
  { desc: 'missing upstream', conf: 'services:\n  - id: s\n    upstream_id: gone\nroutes:\n  - id: a\n    uri: /a\n    service_id: s\n',
    want: 'gateway.yaml:3:18: services[0].upstream_id: upstream "gone" is not defined in upstreams' },
  { desc: 'duplicate id', conf: 'upstreams:\n  - id: u\n    nodes: { "127.0.0.1:80": 1 }\n  - id: u\n    nodes: { "127.0.0.1:81": 1 }\nroutes:\n  - id: a\n    uri: /a\n    upstream_id: u\n',
    want: 'gateway.yaml:4:9: upstreams[1].id: duplicate id "u" (first used at upstreams[0])' },
  { desc: 'route with no upstream and nothing to answer', conf: 'routes:\n  - id: a\n    uri: /a\n',
    want: 'gateway.yaml:2:5: routes[0]: route "a" has no upstream (upstream, upstream_id, or a service with one) and no plugin that answers requests itself (mocking, a serverless function)' },
  { desc: 'unknown plugin', conf: `routes:\n  - id: a\n    uri: /a\n    plugins:\n      no-such: {}\n${UP}`,
    want: 'gateway.yaml:5:7: routes[0].plugins.no-such: unknown plugin "no-such": neither Turnpike\'s nor APISIX\'s; a custom plugin is loaded through plugin_paths' },
  { desc: 'plugin schema', conf: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      mocking: { response_status: "x" }\n',
    want: 'gateway.yaml:5:35: routes[0].plugins.mocking.response_status: plugin mocking: must be of type integer' },
  { desc: 'plugin check()', conf: `routes:\n  - id: a\n    uri: /a\n${UP}    plugins:\n      proxy-rewrite: { uri: /x, regex_uri: ["a", "b"] }\n`,
    want: 'gateway.yaml:6:7: routes[0].plugins.proxy-rewrite: plugin proxy-rewrite: give either uri or regex_uri, not both' },
  { desc: 'same key for two consumers', conf: `consumers:\n  - username: a\n    plugins: { key-auth: { key: k } }\n  - username: b\n    plugins: { key-auth: { key: k } }\nroutes:\n  - id: a\n    uri: /a\n${UP}`,
    want: 'gateway.yaml:5:16: consumers[1].plugins.key-auth: plugin key-auth: the same credential is already used by consumer "a"' },
  { desc: 'missing plugin path', conf: `plugin_paths: [./missing]\nroutes:\n  - id: a\n    uri: /a\n${UP}`, want: 'gateway.yaml:1:16: plugin_paths[0]: plugin path "./missing" does not exist' },
  { desc: 'function that does not compile', conf: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      serverless-pre-function:\n        functions:\n          - |\n            let x = 1;\n            return function ( {\n            }\n',
    want: 'gateway.yaml:5:7: routes[0].plugins.serverless-pre-function: plugin serverless-pre-function: route "a" serverless-pre-function access[0] does not compile (line 3): Unexpected token \'}\'' },
  { desc: 'function that returns no function', conf: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      serverless-pre-function:\n        functions: ["return 42"]\n',
    want: 'gateway.yaml:5:7: routes[0].plugins.serverless-pre-function: plugin serverless-pre-function: route "a" serverless-pre-function access[0] must return a function (`return function (conf, ctx) { ... }`), but it returned number' },
  { desc: 'function that throws while loading', conf: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      pre-function:\n        rewrite:\n          - "return () => {}"\n          - |\n            const x = null;\n            x.boom();\n',
    want: 'gateway.yaml:5:7: routes[0].plugins.pre-function: plugin pre-function: route "a" pre-function rewrite[1] threw while loading (line 2): Cannot read properties of null (reading \'boom\')' },
  { desc: 'Kong form with no function', conf: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      pre-function: {}\n',
    want: 'gateway.yaml:5:7: routes[0].plugins.pre-function: plugin pre-function: needs "functions" or at least one of rewrite, access, before_proxy, header_filter, body_filter, log' },
  { desc: 'APISIX form with an empty list', conf: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      serverless-post-function: { functions: [] }\n',
    want: 'gateway.yaml:5:46: routes[0].plugins.serverless-post-function.functions: plugin serverless-post-function: must NOT have fewer than 1 items' },
  { desc: 'functions when serverless is off', conf: 'serverless: { enabled: false }\nroutes:\n  - id: a\n    uri: /a\n    plugins:\n      pre-function: { functions: ["return () => {}"] }\n',
    want: 'gateway.yaml:6:7: routes[0].plugins.pre-function: plugin pre-function: serverless functions are disabled in this gateway (serverless.enabled: false)' },
];

describe('invalid configs are rejected with every error and its position', () => {
  for (const c of invalid) {
    it(c.desc, async () => {
      const res = await load(c.conf, c.env);
      assert.equal(res.ok, false, 'config should be rejected');
      assert.equal(formatIssues(res.ok ? [] : res.issues), c.want);
    });
  }

  it('reports all errors at once, in file order', async () => {
    const res = await load('routes:\n  - id: a\n    uri: /a\n    service_id: s1\n  - id: b\n    uri: 7\n    plugins:\n      nope: {}\n');
    assert.equal(res.ok, false);
    assert.deepEqual(res.ok ? [] : res.issues.map((i) => `${i.line}:${i.col} ${i.code}`), ['4:17 GW_ERR_CONFIG_REF', '6:10 GW_ERR_CONFIG_SCHEMA', '8:7 GW_ERR_CONFIG_PLUGIN']);
    const res2 = await load('routes:\n  - id: a\n    uri: /a\n    service_id: s1\n  - id: b\n    uri: /b\n    service_id: s2\n');
    assert.deepEqual(res2.ok ? [] : res2.issues.map((i) => `${i.line}:${i.col} ${i.message}`), [
      '4:17 service "s1" is not defined in services',
      '7:17 service "s2" is not defined in services',
    ]);
  });
});

describe('valid configs', () => {
  it("APISIX's $env://NAME and $env://NAME/key (a key of a JSON value) are read from the environment", async () => {
    const res = await load('consumers:\n  - username: a\n    plugins:\n      key-auth: { key: "$env://ALICE_KEY" }\n  - username: b\n    plugins:\n      key-auth: { key: $env://CREDS/bob }\nroutes:\n  - { id: r, uri: /r, upstream: { nodes: { "127.0.0.1:1": 1 } }, plugins: { key-auth: {} } }\n',
      { ALICE_KEY: 'alice-secret', CREDS: '{"bob":"bob-secret"}' });
    assert.ok(res.ok, res.ok ? '' : formatIssues(res.issues));
    const found = (key: string) => res.snapshot.consumers.get('key-auth')?.get(key)?.consumer.username;
    assert.deepEqual([found('alice-secret'), found('bob-secret'), found('$env://ALICE_KEY')], ['a', 'b', undefined]);
  });

  it('substitutes ${{VAR}} and ${{VAR:=default}} but leaves JavaScript ${...} alone', async () => {
    const res = await load([
      'routes:',
      '  - id: a',
      '    uri: ${{PREFIX:=/api}}/x',
      '    upstream: { nodes: { "${{HOST}}:8080": 1 } }',
      '    plugins:',
      '      pre-function:',
      '        functions: ["return (conf, ctx) => ({ status: 200, body: `${ctx.route.id}` })"]',
    ].join('\n'), { HOST: '10.0.0.9' });
    assert.ok(res.ok, res.ok ? '' : formatIssues(res.issues));
    const route = res.snapshot.routes[0];
    assert.equal(route.uri, '/api/x');
    assert.equal(route.upstream?.nodes[0].origin, 'http://10.0.0.9:8080');
  });

  it('applies defaults and accepts both node forms', async () => {
    const res = await load([
      'upstreams:',
      '  - id: u1',
      '    nodes: { "a.internal:81": 2, "[::1]:82": 1 }',
      '  - id: u2',
      '    scheme: https',
      '    nodes: [{ host: b.internal }, { host: c.internal, port: 8443, weight: 3 }]',
      'routes:',
      '  - { id: r1, uri: /1, upstream_id: u1 }',
      '  - { id: r2, uri: /2, upstream_id: u2 }',
      '#END',
    ].join('\n'));
    assert.ok(res.ok, res.ok ? '' : formatIssues(res.issues));
    const [r1, r2] = res.snapshot.routes;
    assert.deepEqual(r1.upstream?.nodes.map((n) => [n.origin, n.weight]), [['http://a.internal:81', 2], ['http://[::1]:82', 1]]);
    assert.deepEqual(r2.upstream?.nodes.map((n) => [n.origin, n.weight, n.hostHeader]), [['https://b.internal:443', 1, 'b.internal'], ['https://c.internal:8443', 3, 'c.internal:8443']]);
    assert.deepEqual(r1.upstream?.timeout, { connect: 6000, send: 6000, read: 6000, tunnelIdle: 60_000 });
    assert.equal(r1.upstream?.retries, 1);
    assert.equal(res.snapshot.listen.port, 9080);
    assert.deepEqual(res.snapshot.admin, { host: '127.0.0.1', port: 9180, tls: false });
  });

  it('gives the function pool half the cores (at least one) unless serverless.threads says otherwise', async () => {
    const half = Math.max(1, Math.floor(availableParallelism() / 2));
    const cases = [
      { desc: 'no serverless block', conf: '', want: half },
      { desc: 'a block without threads', conf: 'serverless: { timeout_ms: 50 }\n', want: half },
      { desc: 'threads given', conf: 'serverless: { threads: 3 }\n', want: 3 },
    ];
    for (const c of cases) {
      const res = await load(`${c.conf}routes:\n  - { id: r, uri: /, plugins: { mocking: {} } }\n`);
      assert.ok(res.ok, res.ok ? '' : formatIssues(res.issues));
      assert.equal(res.snapshot.serverless.threads, c.want, c.desc);
    }
  });

  it('freezes the snapshot: the request path cannot change it', async () => {
    const res = await load('routes:\n  - id: a\n    uri: /a\n    plugins:\n      mocking: { response_example: hi }\n');
    assert.ok(res.ok);
    assert.ok(Object.isFrozen(res.snapshot) && Object.isFrozen(res.snapshot.routes[0]) && Object.isFrozen(res.snapshot.routes[0].chain.access));
    assert.throws(() => { (res.snapshot.routes[0].chain.access[0].conf as { status: number }).status = 500; });
  });
});
