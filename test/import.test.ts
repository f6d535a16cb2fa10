/**
 * `turnpike import`: Kong declarative files and apisix.yaml in, a gateway.yaml
 * out that validates (round trip), Kong's defaults kept on real sockets, and
 * everything not carried over listed by line.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { importText } from '../src/config/import/index.ts';
import { kongPath } from '../src/config/import/kong-match.ts';
import { formatIssues, loadConfigText } from '../src/config/load.ts';
import { builtinPlugins } from '../src/config/plugins.ts';
import { FunctionPools } from '../src/serverless/pool.ts';
import { pemYaml, TestCA } from './helpers/certs.ts';
import { request, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness.ts';

const pools = new FunctionPools();
after(() => pools.close());
const functions = (s: Parameters<FunctionPools['host']>[0]) => pools.host(s);

/** Imports, then checks the output loads as `validate` would; returns the output's document. */
async function roundTrip(text: string, file = 'kong.yml') {
  const res = await importText(text, file, functions);
  assert.ok(res.ok, res.ok ? '' : res.message);
  const loaded = await loadConfigText(res.output, 'gateway.yaml', { env: {}, functions });
  assert.ok(loaded.ok, loaded.ok ? '' : `${formatIssues(loaded.issues)}\n${res.output}`);
  return { res, doc: parse(res.output) as Record<string, any> };
}

describe('Kong paths', () => {
  const cases = [
    { desc: 'a plain path is a string prefix, as Kong matches it (/api takes /apix too)', path: '/api', want: { uris: ['/api*'], match: '/api', filter: false, plain: 4 } },
    { desc: 'a plain path ending in / does not take the path without it', path: '/api/', want: { uris: ['/api/*'], match: '/api/', filter: false, plain: 5 } },
    { desc: 'the root', path: '/', want: { uris: ['/*'], match: '/', filter: false, plain: 1 } },
    { desc: 'a plain path with regex characters is escaped for strip_path', path: '/v1.0', want: { uris: ['/v1.0*'], match: '/v1\\.0', filter: false, plain: 5 } },
    { desc: 'a plain path with a character the router reads (:) is the literal start and a uri condition', path: '/v1/items:batch', want: { uris: ['/v1/items*'], match: '/v1/items:batch', filter: true, plain: 15 } },
    { desc: 'a plain path with * (literal in Kong)', path: '/a*b', want: { uris: ['/a*'], match: '/a\\*b', filter: true, plain: 4 } },
    { desc: 'a literal regex is a string prefix, as Kong matches it', path: '~/v1/items', want: { uris: ['/v1/items*'], match: '/v1/items', filter: false } },
    { desc: 'a literal regex ending in $ is one path', path: '~/v1/items$', want: { uris: ['/v1/items'], match: '/v1/items$', filter: false } },
    { desc: 'a named capture: the literal start, and the regex (unnamed) as the condition', path: '~/movies/(?<id>\\d+)', want: { uris: ['/movies/*'], match: '/movies/(\\d+)', filter: true } },
    { desc: 'PCRE\'s (?P<name>) too, and a leading ^', path: '~^/users/(?P<id>[0-9]+)/orders$', want: { uris: ['/users/*'], match: '/users/([0-9]+)/orders$', filter: true } },
    { desc: 'a character a quantifier makes optional is not in the start', path: '~/api/v1?/x', want: { uris: ['/api/v*'], match: '/api/v1?/x', filter: true } },
    { desc: 'alternation at the top shares only /', path: '~/a/x|/b/y', want: { uris: ['/*'], match: '/a/x|/b/y', filter: true } },
    { desc: 'alternation inside a group keeps the start before it', path: '~/(a|b)/x', want: { uris: ['/*'], match: '/(a|b)/x', filter: true } },
    { desc: 'a colon ends the start (the router would read a parameter)', path: '~/v1:batch.*', want: { uris: ['/v1*'], match: '/v1:batch.*', filter: true } },
    { desc: 'a literal regex with a colon too', path: '~/v1:batch', want: { uris: ['/v1*'], match: '/v1:batch', filter: true } },
    { desc: 'a regex that backtracks is not carried', path: '~/(a)\\1', want: { why: 'path ~/(a)\\1: "^(?:/(a)\\\\1)" cannot run in linear time (backreferences, lookaround and repetition counts in the hundreds are not supported: a pattern that backtracks lets one request stall the gateway)' } },
    { desc: 'a regex that is not one', path: '~/(x', want: { why: 'path ~/(x is not a valid regular expression: Invalid regular expression: /^(?:/(x)/: Unterminated group' } },
  ];
  for (const c of cases) it(c.desc, () => assert.deepEqual(kongPath(c.path), c.want));
});

const KONG = `_format_version: "3.0"
_transform: true
services:
  - name: users-api
    url: http://127.0.0.1:3000/v1
    connect_timeout: 5000
    routes:
      - name: users
        paths: [/users]
        methods: [GET, POST]
      - name: by-header
        paths: [/h]
        headers: { x-version: ["2"] }
    plugins:
      - name: proxy-cache
  - name: billing
    host: billing.internal
    port: 8080
    routes:
      - paths: [/billing]
        plugins:
          - name: key-auth
            config: { key_names: [x-api-key] }
          - name: pre-function
            config:
              access:
                - "local h = kong.request.get_header('x') if h then kong.log.err(h) end"
consumers:
  - username: alice
    keyauth_credentials:
      - key: alice-secret
      - key: second-key
plugins:
  - name: correlation-id
    config: { header_name: X-Request-ID, echo_downstream: true }
`;

describe('Kong import', () => {
  it('lists what it cannot carry with its line, in the output too, and the output validates', async () => {
    const { res, doc } = await roundTrip(KONG);
    if (!res.ok) return;
    assert.deepEqual(res.dropped.map((d) => `${d.line}: ${d.what}: ${d.why}`), [
      '15: plugin proxy-cache: not available in Turnpike (yet)',
      '24: plugin pre-function: its functions are Lua: port them to JavaScript (README "Lua → JavaScript")',
      '32: keyauth_credentials[1] of consumer "alice": a Turnpike consumer holds one key-auth credential; the first was kept',
    ]);
    assert.match(res.output, /^# Imported by `turnpike import` from kong\.yml \(Kong declarative format\)\.\n# Not carried over \(3\):\n# {3}kong\.yml:15: plugin proxy-cache: not available/);
    assert.deepEqual(doc.routes.map((r: any) => [r.id, r.uris, r.service_id, r.methods]), [
      ['users', ['/users*'], 'users-api', ['GET', 'POST']],
      ['by-header', ['/h*'], 'users-api', undefined],
      ['billing-1', ['/billing*'], 'billing', undefined],
    ]);
    assert.deepEqual(doc.services[0].upstream, {
      scheme: 'http', nodes: { '127.0.0.1:3000': 1 }, pass_host: 'node', timeout: { connect: 5, send: 60, read: 60 }, retries: 5,
    });
    assert.deepEqual(doc.consumers, [{ username: 'alice', plugins: { 'key-auth': { key: 'alice-secret' } } }]);
    assert.deepEqual(doc.global_rules, [{ id: 'kong-global-plugins', plugins: { 'request-id': { header_name: 'X-Request-ID', include_in_response: true } } }]);
  });

  it('a Kong plugin whose Turnpike target does not exist is listed, asked of the plugin registry', async () => {
    const text = '_format_version: "3.0"\nservices:\n  - name: s\n    url: http://127.0.0.1:1\n    routes: [{ name: r, paths: [/] }]\n    plugins:\n      - name: no-such-kong-plugin\n      - name: request-termination\n        config: { status_code: 418, message: teapot }\n';
    const { res, doc } = await roundTrip(text);
    if (!res.ok) return;
    assert.deepEqual(res.dropped.map((d) => `${d.line}: ${d.what}: ${d.why}`), ['7: plugin no-such-kong-plugin: not available in Turnpike (yet)']);
    assert.deepEqual(doc.services[0].plugins, { mocking: { response_status: 418, response_example: '{"message":"teapot"}', content_type: 'application/json; charset=utf-8' } });
  });

  it('a mapped config Turnpike\'s plugin refuses is taken out and listed, so the output still validates', async () => {
    const text = '_format_version: "3.0"\nservices:\n  - name: s\n    url: http://127.0.0.1:1\n    routes:\n      - name: r\n        paths: [/]\n        plugins:\n          - name: correlation-id\n            config: { header_name: 42 }\n';
    const { res, doc } = await roundTrip(text);
    if (!res.ok) return;
    assert.deepEqual(res.dropped.map((d) => `${d.line}: ${d.what}: ${d.why}`), ['9: plugin request-id of route "r": plugin request-id: must be of type string']);
    assert.equal(doc.routes[0].plugins, undefined);
  });

  it('a host it cannot carry is listed with the reason: a placeholder left unfilled, a trailing wildcard, a character no host has', async () => {
    const route = (name: string, host: string) => `      - name: ${name}\n        paths: [/${name}]\n        hosts: [${JSON.stringify(host)}]\n`;
    const { res } = await roundTrip(`_format_version: "3.0"\nservices:\n  - name: s\n    url: http://127.0.0.1:1\n    routes:\n${route('env', 'idva-${ENVIRONMENT_NAME}.app.cloud.gov')}${route('tail', 'example.*')}${route('odd', 'bad host!')}`);
    assert.ok(res.ok);
    if (res.ok) assert.deepEqual(res.dropped.map((d) => `${d.line}: ${d.what}: ${d.why}`), [
      '8: route "env": host idva-${ENVIRONMENT_NAME}.app.cloud.gov holds ${ENVIRONMENT_NAME}, a placeholder nothing filled in (Kong refuses it as it is): fill the file in first (envsubst < kong.yml > filled.yml), then import that',
      '11: route "tail": host example.*: a trailing wildcard cannot be matched yet (only a leading * wildcard)',
      "14: route \"odd\": host bad host! is not a host name Turnpike can match (letters, digits, '.', '-', '_', a leading * wildcard)",
    ]);
  });

  it('hostile input: not a mapping, YAML errors, and nonsense values never crash and never produce an invalid file', async () => {
    assert.deepEqual(await importText('- a\n', 'x.yml', functions), { ok: false, message: 'x.yml: not a Kong declarative file or an apisix.yaml (expected a mapping)' });
    assert.deepEqual(await importText('a: "b\n', 'x.yml', functions), { ok: false, message: 'x.yml:2:1: YAML: Missing closing "quote' });
    const { res } = await roundTrip('_format_version: "3.0"\nservices:\n  - name: "../../etc"\n    url: "not a url"\n  - name: ok\n    url: http://127.0.0.1:1\n    routes: [{ paths: ["relative"] }, { paths: [/a], hosts: ["bad host!"] }, 7, null]\n  - 42\nconsumers: [{ username: "a b" , keyauth_credentials: [{ key: k }] }]\nroutes: { not: a-list }\n');
    if (res.ok) assert.deepEqual(res.dropped.map((d) => d.what), ['service "..-..-etc" and its routes', 'route "ok-1" path relative', 'route "ok-1"', 'route "ok-2"']);
  });
});

/** A Kong file with one route (line 10 holds its plugin, one line) and what follows it (consumers, top-level credentials). */
const kongWith = (plugin: string, rest = '', strip = false) => `_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:1
    routes:
      - name: r
        paths: [/r]
        strip_path: ${strip}
        plugins:
          - ${plugin}
${rest}`;

const HAVE = new Set((await builtinPlugins()).keys());
const RSA_PUBLIC = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();

describe('Kong plugins and their Turnpike counterparts (input → output fragment, exit code, then validate)', () => {
  const cases: { desc: string; kong: string; want: { plugins?: Record<string, unknown>; consumers?: unknown[]; dropped: string[] } }[] = [
    { desc: 'jwt → jwt-auth; jwt_secrets (top level and nested) → credentials; the names and claims carried, the extra names listed',
      kong: kongWith('{ name: jwt, config: { key_claim_name: kid, header_names: [authorization, x-jwt], cookie_names: [token], uri_param_names: [t], claims_to_verify: [exp, nbf], maximum_expiration: 3600 } }',
        `consumers:\n  - username: alice\n    jwt_secrets: [{ key: alice-iss, secret: s3cret }]\n  - username: bob\njwt_secrets:\n  - consumer: bob\n    key: bob-iss\n    algorithm: RS256\n    rsa_public_key: ${JSON.stringify(RSA_PUBLIC)}\n`),
      want: {
        plugins: { 'jwt-auth': { key_claim_name: 'kid', header: 'authorization', query: 't', cookie: 'token', claims_to_verify: ['exp', 'nbf'] } },
        consumers: [
          { username: 'alice', plugins: { 'jwt-auth': { key: 'alice-iss', secret: 's3cret', algorithm: 'HS256' } } },
          { username: 'bob', plugins: { 'jwt-auth': { key: 'bob-iss', algorithm: 'RS256', public_key: RSA_PUBLIC } } },
        ],
        dropped: ['10: plugin jwt: header_names: only "authorization" is read: jwt-auth has no equivalent', '10: plugin jwt: maximum_expiration (not carried over): jwt-auth has no equivalent'],
      } },
    { desc: 'rate-limiting with several windows, limit_by ip: one limit-count rule per window (exit 0)',
      kong: kongWith('{ name: rate-limiting, config: { second: 5, minute: 100, hour: 1000, limit_by: ip, policy: local } }'),
      want: {
        plugins: { 'limit-count': { rejected_code: 429, rules: [
          { count: 5, time_window: 1, key: '$remote_addr second', header_prefix: 'second' },
          { count: 100, time_window: 60, key: '$remote_addr minute', header_prefix: 'minute' },
          { count: 1000, time_window: 3600, key: '$remote_addr hour', header_prefix: 'hour' },
        ] } },
        dropped: [],
      } },
    { desc: 'rate-limiting by consumer in a file without authentication: Kong can only count by address, so rules on $remote_addr',
      kong: kongWith('{ name: rate-limiting, config: { minute: 600, hour: 500 } }'),
      want: {
        plugins: { 'limit-count': { rejected_code: 429, rules: [
          { count: 600, time_window: 60, key: '$remote_addr minute', header_prefix: 'minute' },
          { count: 500, time_window: 3600, key: '$remote_addr hour', header_prefix: 'hour' },
        ] } },
        dropped: [],
      } },
    { desc: 'rate-limiting on a consumer: rules on $consumer_name (a consumer plugin runs only for that consumer)',
      kong: kongWith('{ name: key-auth }', 'consumers:\n  - username: alice\n    keyauth_credentials: [{ key: k }]\nplugins:\n  - name: rate-limiting\n    consumer: alice\n    config: { minute: 10, hour: 100 }\n'),
      want: {
        plugins: { 'key-auth': { header: 'apikey', query: 'apikey' } },
        consumers: [{ username: 'alice', plugins: { 'key-auth': { key: 'k' }, 'limit-count': { rejected_code: 429, rules: [
          { count: 10, time_window: 60, key: '$consumer_name minute', header_prefix: 'minute' },
          { count: 100, time_window: 3600, key: '$consumer_name hour', header_prefix: 'hour' },
        ] } } }],
        dropped: [],
      } },
    { desc: 'rate-limiting by consumer on a route, authentication in the file: Kong counts a request without a consumer by address, which no rule can say; the window a burst reaches first is kept',
      kong: kongWith('{ name: rate-limiting, config: { minute: 600, hour: 500 } }', 'consumers:\n  - username: alice\n    keyauth_credentials: [{ key: k }]\nplugins:\n  - name: key-auth\n    route: r\n'),
      want: {
        plugins: { 'limit-count': { rejected_code: 429, count: 500, time_window: 3600, key_type: 'var', key: 'consumer_name' }, 'key-auth': { header: 'apikey', query: 'apikey' } },
        dropped: ['10: plugin rate-limiting: minute: 600 (the hour window, which a burst reaches first, was kept: a limit-count rule skips a request with no consumer, where Kong counts it by client address): limit-count has no equivalent'],
      } },
    { desc: 'rate-limiting by header with several windows: the same, for a missing header',
      kong: kongWith('{ name: rate-limiting, config: { second: 5, minute: 100, limit_by: header, header_name: X-Team } }'),
      want: {
        plugins: { 'limit-count': { rejected_code: 429, count: 5, time_window: 1, key_type: 'var', key: 'http_x_team' } },
        dropped: ['10: plugin rate-limiting: minute: 100 (the second window, which a burst reaches first, was kept: a limit-count rule skips a request with no X-Team header, where Kong counts it by client address): limit-count has no equivalent'],
      } },
    { desc: 'rate-limiting as decK writes it (every field, unset ones null), redis policy',
      kong: kongWith('{ name: rate-limiting, config: { second: null, minute: 10, hour: null, limit_by: consumer, policy: redis, redis_host: redis.local, redis_port: 6379, redis_password: null, redis_database: 0, fault_tolerant: true, hide_client_headers: false } }',
        'consumers:\n  - username: issuer\n    keyauth_credentials: [{ key: k }]\n'),
      want: {
        plugins: { 'limit-count': { rejected_code: 429, count: 10, time_window: 60, key_type: 'var', key: 'consumer_name', policy: 'redis', redis_host: 'redis.local', redis_port: 6379, redis_database: 0, allow_degradation: true } },
        consumers: [{ username: 'issuer', plugins: { 'key-auth': { key: 'k' } } }],
        dropped: [],
      } },
    { desc: 'cors with credentials and no origins: Kong echoes the Origin (**), its method list written out, request headers echoed',
      kong: kongWith('{ name: cors, config: { credentials: true, max_age: 3600, exposed_headers: [x-total] } }'),
      want: { plugins: { cors: { allow_origins: '**', allow_methods: 'GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT', allow_headers: '**', expose_headers: 'x-total', allow_credential: true, max_age: 3600 } }, dropped: [] } },
    { desc: 'cors with listed origins, methods and headers',
      kong: kongWith('{ name: cors, config: { origins: ["https://a.example", "https://b.example"], methods: [GET, POST], headers: [content-type] } }'),
      want: { plugins: { cors: { allow_origins: 'https://a.example,https://b.example', allow_methods: 'GET,POST', allow_headers: 'content-type' } }, dropped: [] } },
    { desc: 'ip-restriction allow/deny → whitelist/blacklist, status and message',
      kong: kongWith('{ name: ip-restriction, config: { allow: [10.0.0.0/8], status: 404, message: nope } }'),
      want: { plugins: { 'ip-restriction': { whitelist: ['10.0.0.0/8'], response_code: 404, message: 'nope' } }, dropped: [] } },
    { desc: 'ip-restriction deny; a status ip-restriction cannot answer is listed',
      kong: kongWith('{ name: ip-restriction, config: { deny: [192.0.2.1], status: 451 } }'),
      want: { plugins: { 'ip-restriction': { blacklist: ['192.0.2.1'] } }, dropped: ['10: plugin ip-restriction: status: 451 (ip-restriction answers 403 or 404; 403 is sent): ip-restriction has no equivalent'] } },
    { desc: 'acl allow groups → consumer-restriction whitelist of the consumers in them (acls nested and top level)',
      kong: kongWith('{ name: acl, config: { allow: [admins] } }', 'consumers:\n  - username: alice\n    acls: [{ group: admins }]\n  - username: bob\n  - username: carol\nacls:\n  - { consumer: bob, group: admins }\n  - { consumer: carol, group: users }\n'),
      want: { plugins: { 'consumer-restriction': { rejected_code: 403, whitelist: ['alice', 'bob'] } }, consumers: [{ username: 'alice' }, { username: 'bob' }, { username: 'carol' }], dropped: [] } },
    { desc: 'acl deny → blacklist',
      kong: kongWith('{ name: acl, config: { deny: [banned] } }', 'consumers:\n  - username: mallory\n    acls: [{ group: banned }]\n'),
      want: { plugins: { 'consumer-restriction': { rejected_code: 403, blacklist: ['mallory'] } }, consumers: [{ username: 'mallory' }], dropped: [] } },
    { desc: 'request-size-limiting → client-control max_body_size in bytes',
      kong: kongWith('{ name: request-size-limiting, config: { allowed_payload_size: 10, size_unit: kilobytes } }'),
      want: { plugins: { 'client-control': { max_body_size: 10240 } }, dropped: [] } },
    { desc: 'key-auth: the first key name as header and query, hide_credentials; key_in_body listed',
      kong: kongWith('{ name: key-auth, config: { key_names: [x-api-key, apikey], hide_credentials: true, key_in_body: true } }'),
      want: { plugins: { 'key-auth': { header: 'x-api-key', query: 'x-api-key', hide_credentials: true } },
        dropped: ['10: plugin key-auth: key_names: only "x-api-key" is read: key-auth has no equivalent', '10: plugin key-auth: key_in_body (not carried over): key-auth has no equivalent'] } },
    { desc: 'an authentication plugin on a consumer (Kong refuses it) is listed; the consumer keeps its credential',
      kong: kongWith('{ name: basic-auth, config: { hide_credentials: true } }', 'consumers:\n  - username: alice\n    basicauth_credentials: [{ username: alice, password: pw }]\n    plugins: [{ name: basic-auth }]\n'),
      want: { plugins: { 'basic-auth': { hide_credentials: true } }, consumers: [{ username: 'alice', plugins: { 'basic-auth': { username: 'alice', password: 'pw' } } }],
        dropped: ['14: plugin basic-auth of consumer "alice": an authentication plugin cannot be set on a consumer (Kong refuses it too); its credential is kept'] } },
    { desc: 'proxy-cache is not available: listed',
      kong: kongWith('{ name: proxy-cache, config: { strategy: memory } }'),
      want: { dropped: ['10: plugin proxy-cache: not available in Turnpike (yet)'] } },
    { desc: 'request-transformer: replace.uri and header rules → proxy-rewrite; querystring listed',
      kong: kongWith('{ name: request-transformer, config: { replace: { uri: /v2/items }, add: { headers: ["x-from:kong"], querystring: ["a:1"] }, remove: { headers: [cookie] } } }'),
      want: { plugins: { 'proxy-rewrite': { uri: '/v2/items', headers: { set: { 'x-from': 'kong' }, remove: ['cookie'] } } },
        dropped: ['10: plugin request-transformer: add.querystring (not carried over): proxy-rewrite has no equivalent'] } },
    { desc: 'request-transformer on a route that strips its path: one proxy-rewrite does both',
      kong: kongWith('{ name: request-transformer, config: { add: { headers: ["x-from:kong"] } } }', '', true),
      want: { plugins: { 'proxy-rewrite': { regex_uri: ['^(?:/r)(?:\\.\\.?(?:/|$)|/)?(.*)', '/$1'], headers: { set: { 'x-from': 'kong' } } } }, dropped: [] } },
    { desc: 'response-transformer header rules → response-rewrite',
      kong: kongWith('{ name: response-transformer, config: { add: { headers: ["x-a:1"] }, append: { headers: ["x-b:2"] }, remove: { headers: [server] } } }'),
      want: { plugins: { 'response-rewrite': { headers: { set: { 'x-a': '1' }, add: { 'x-b': '2' }, remove: ['server'] } } }, dropped: [] } },
    { desc: 'correlation-id → request-id',
      kong: kongWith('{ name: correlation-id, config: { header_name: X-Trace, echo_downstream: true } }'),
      want: { plugins: { 'request-id': { header_name: 'X-Trace', include_in_response: true } }, dropped: [] } },
    { desc: 'file-log → file-logger, http-log → http-logger (timeout in seconds)',
      kong: kongWith('{ name: file-log, config: { path: /tmp/kong.log } }\n          - { name: http-log, config: { http_endpoint: "http://127.0.0.1:1/logs", timeout: 5000 } }'),
      want: { plugins: { 'file-logger': { path: '/tmp/kong.log' }, 'http-logger': { uri: 'http://127.0.0.1:1/logs', timeout: 5 } }, dropped: [] } },
    { desc: 'prometheus → prometheus (Turnpike exports the metrics Kong\'s flags turn on); per_consumer listed',
      kong: kongWith('{ name: prometheus, config: { status_code_metrics: true, latency_metrics: true, per_consumer: true } }'),
      want: { plugins: { prometheus: {} }, dropped: ['10: plugin prometheus: per_consumer (not carried over): prometheus has no equivalent'] } },
    HAVE.has('opentelemetry')
      ? { desc: 'opentelemetry → opentelemetry: the sampling rate; the endpoint listed', kong: kongWith('{ name: opentelemetry, config: { endpoint: "http://127.0.0.1:4318/v1/traces", sampling_rate: 0.25 } }'),
        want: { plugins: { opentelemetry: { sampler: { name: 'trace_id_ratio', options: { fraction: 0.25 } } } }, dropped: ['10: plugin opentelemetry: endpoint (not carried over): opentelemetry has no equivalent'] } }
      : { desc: 'opentelemetry → opentelemetry (listed while this Turnpike has none)', kong: kongWith('{ name: opentelemetry, config: { endpoint: "http://127.0.0.1:4318/v1/traces", sampling_rate: 0.25 } }'),
        want: { dropped: ['10: plugin opentelemetry: not available in Turnpike (yet): it maps to opentelemetry, which this Turnpike does not have'] } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const { res, doc } = await roundTrip(c.kong);
      if (!res.ok) return;
      assert.deepEqual(res.dropped.map((d) => `${d.line}: ${d.what}: ${d.why}`), c.want.dropped);
      assert.deepEqual(doc.routes[0].plugins, c.want.plugins);
      if (c.want.consumers) assert.deepEqual(doc.consumers, c.want.consumers);
    });
  }
});

describe('Kong TLS: certificates → ssls, https-only routes', () => {
  const ca = new TestCA();
  after(() => ca.close());
  const rsa = ca.leaf({ names: ['api.example.com'] });
  const ec = ca.leaf({ names: ['api.example.com'], kind: 'ec' });
  const other = ca.leaf({ names: ['other.example.com'] });
  const old = ca.leaf({ names: ['old.example.com'], expired: true });
  const kong = `_format_version: "3.0"
certificates:
  - id: main
    cert: ${pemYaml(rsa.cert, 6)}
    key: ${pemYaml(rsa.key, 6)}
    cert_alt: ${pemYaml(ec.cert, 6)}
    key_alt: ${pemYaml(ec.key, 6)}
    snis: [{ name: api.example.com }, { name: "*.api.example.com" }]
  - id: other
    cert: ${pemYaml(other.cert, 6)}
    key: ${pemYaml(other.key, 6)}
  - id: unused
    cert: ${pemYaml(other.cert, 6)}
    key: ${pemYaml(other.key, 6)}
  - id: old
    cert: ${pemYaml(old.cert, 6)}
    key: ${pemYaml(old.key, 6)}
    snis: [old.example.com]
snis:
  - name: other.example.com
    certificate: { id: other }
  - name: ghost.example.com
    certificate: { id: nowhere }
services:
  - name: s
    url: http://127.0.0.1:1
    routes:
      - { name: secure, paths: [/s], protocols: [https], strip_path: false }
      - { name: moved, paths: [/m], protocols: [https], https_redirect_status_code: 301, strip_path: false }
      - { name: both, paths: [/b], strip_path: false }
`;
  const line = (text: string) => kong.split('\n').findIndex((l) => l.includes(text)) + 1;

  it('certificates with SNIs become ssls (the alternate pair beside the first), served on a TLS listener; the others are listed', async () => {
    const { res, doc } = await roundTrip(kong);
    if (!res.ok) return;
    assert.deepEqual(doc.ssls, [
      { id: 'main', snis: ['api.example.com', '*.api.example.com'], cert: rsa.cert, key: rsa.key, certs: [ec.cert], keys: [ec.key] },
      { id: 'other', snis: ['other.example.com'], cert: other.cert, key: other.key },
    ]);
    assert.deepEqual(doc.listen, [{ port: 9080 }, { port: 9443, tls: true, http2: true }]);
    assert.deepEqual(res.dropped.map((d) => `${d.line}: ${d.what}: ${d.why}`), [
      `${line('- id: unused')}: certificate "unused": it has no SNI, so Kong serves it to no client; a service's client_certificate is not imported yet`,
      `${line('- id: old')}: ssl "old": the certificate expired on ${new Date(new X509Certificate(old.cert).validTo).toISOString()} (CN=old.example.com)`,
      `${line('- name: ghost.example.com')}: sni ghost.example.com: its certificate "nowhere" is not in the file`,
      `${line("name: secure")}: route "secure" https_redirect_status_code 426: plain HTTP gets a redirect to HTTPS (301; 308 for methods other than GET and HEAD) where Kong answers 426`,
    ].sort((a, b) => parseInt(a) - parseInt(b)));
  });

  it('when the only certificate is expired, the TLS listener made for it is listed by its port too', async () => {
    const text = `_format_version: "3.0"\ncertificates:\n  - id: old\n    cert: ${pemYaml(old.cert, 6)}\n    key: ${pemYaml(old.key, 6)}\n    snis: [old.example.com]\nservices:\n  - name: s\n    url: http://127.0.0.1:1\n    routes: [{ name: r, paths: [/r] }]\n`;
    const { res, doc } = await roundTrip(text);
    if (!res.ok) return;
    assert.deepEqual(res.dropped.map((d) => `${d.what}: ${d.why}`), [
      'listen[1] (port 9443): a TLS listener needs at least one served ssls entry',
      `ssl "old": the certificate expired on ${new Date(new X509Certificate(old.cert).validTo).toISOString()} (CN=old.example.com)`,
    ]);
    assert.deepEqual(doc.listen, [{ port: 9080 }]);
  });

  it('https-only routes redirect plain HTTP to HTTPS; a route that takes both does not', async () => {
    const { doc } = await roundTrip(kong);
    const plugins = Object.fromEntries(doc.routes.map((r: { id: string; plugins?: unknown }) => [r.id, r.plugins]));
    assert.deepEqual(plugins.secure, { redirect: { http_to_https: true } });
    assert.deepEqual(plugins.moved, { redirect: { http_to_https: true } });
    assert.equal(plugins.both, undefined);
  });
});

describe('Kong files as decK writes them', () => {
  it('no _format_version (decK\'s _info) is still Kong; credentials at the top level; unknown top-level keys listed, never "cannot be repaired"', async () => {
    const text = '_info:\n  select_tags: [team-a]\nservices:\n  - name: s\n    url: http://127.0.0.1:1\n    routes: [{ name: r, paths: [/r], plugins: [{ name: key-auth }] }]\nconsumers:\n  - username: alice\nkeyauth_credentials:\n  - { consumer: alice, key: k1 }\n  - { consumer: nobody, key: k2 }\nca_certificates: []\n';
    const { res, doc } = await roundTrip(text);
    if (!res.ok) return;
    assert.equal(res.format, 'kong');
    assert.deepEqual(res.dropped.map((d) => `${d.line}: ${d.what}: ${d.why}`), ['11: keyauth_credentials[1]: its consumer "nobody" is not in the file', '12: ca_certificates: Turnpike has no equivalent yet']);
    assert.deepEqual(doc.consumers, [{ username: 'alice', plugins: { 'key-auth': { key: 'k1' } } }]);
  });

  it('an apisix.yaml with a top-level key Turnpike does not know: taken out and listed', async () => {
    const { res, doc } = await roundTrip('routes:\n  - uri: /a\n    upstream: { nodes: { "127.0.0.1:1": 1 } }\nmy_extension: { a: 1 }\n', 'apisix.yaml');
    if (!res.ok) return;
    assert.deepEqual(res.dropped.map((d) => `${d.line}: ${d.what}: ${d.why}`), ['4: my_extension: unknown field "my_extension"']);
    assert.equal(doc.my_extension, undefined);
  });
});

describe('APISIX import', () => {
  it('normalises to Turnpike\'s form: ids, merged plugin_configs; exit 0 when everything is carried', async () => {
    const text = 'plugin_configs:\n  - id: 1\n    plugins:\n      request-id:\nroutes:\n  - uri: /hello\n    plugin_config_id: 1\n    upstream:\n      nodes:\n        "127.0.0.1:1980": 1\n      type: roundrobin\n#END\n';
    const { res, doc } = await roundTrip(text, 'apisix.yaml');
    if (!res.ok) return;
    assert.equal(res.format, 'apisix');
    assert.deepEqual(res.dropped, []);
    assert.deepEqual(doc, { routes: [{ uri: '/hello', upstream: { nodes: { '127.0.0.1:1980': 1 }, type: 'roundrobin' }, id: 'arr_1', plugins: { 'request-id': {} } }] });
  });

  it('what APISIX files carry that Turnpike ignores or cannot run is listed', async () => {
    const text = 'deployment: { role: data_plane }\nroutes:\n  - uri: /a\n    upstream: { nodes: { "127.0.0.1:1980": 1 }, retry_timeout: 3 }\n  - uri: /lua\n    plugins:\n      serverless-pre-function:\n        functions: ["return function(conf, ctx) ngx.say(1) end"]\n';
    const { res, doc } = await roundTrip(text, 'apisix.yaml');
    if (!res.ok) return;
    assert.deepEqual(res.dropped.map((d) => `${d.line}: ${d.what}: ${d.why}`), [
      '1: deployment: "deployment" belongs in APISIX\'s config.yaml; Turnpike ignores it here',
      '4: routes[0].upstream.retry_timeout: retry_timeout is not implemented: retries are bounded by "retries" and each try by "timeout"',
      '5: route "arr_2": route "arr_2" has no upstream (upstream, upstream_id, or a service with one) and no plugin that answers requests itself (mocking, a serverless function)',
      '7: plugin serverless-pre-function of route "arr_2": this is Lua; Turnpike runs JavaScript: see "Lua → JavaScript" in README.md (and MIGRATING.md)',
    ]);
    assert.deepEqual(doc.routes.map((r: any) => r.id), ['arr_1']);
  });
});

describe('import on real sockets: Kong defaults kept', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    const kong = `_format_version: "3.0"
services:
  - name: api
    url: http://127.0.0.1:${up.port}/base
    routes:
      - name: stripped
        paths: [/api]
      - name: kept
        paths: [/keep]
        strip_path: false
        preserve_host: true
      - name: locked
        paths: [/locked]
        plugins: [{ name: key-auth }]
      - name: movie
        paths: ['~/movies/(?<id>\\d+)$', /films]
      - name: movie-kept
        paths: ['~/kept/(?<id>[0-9]+)']
        strip_path: false
      - name: beta
        paths: [/hdr]
        headers: { x-version: ["v2", "~*^beta-[0-9]+$"] }
consumers:
  - username: alice
    keyauth_credentials: [{ key: alice-key }]
`;
    const res = await importText(kong, 'kong.yml', functions);
    assert.ok(res.ok && res.dropped.length === 0, JSON.stringify(res));
    gw = await startGateway(res.output);
  });
  after(async () => { await gw?.close(); await up?.close(); });

  const cases: { desc: string; path: string; headers: Record<string, string>; want: { status: number; url?: string; host?: string } }[] = [
    { desc: 'strip_path (Kong\'s default) removes the matched prefix; the service path goes first; preserve_host false sends the service host',
      path: '/api/items?x=1', headers: {}, want: { status: 200, url: '/base/items?x=1', host: `127.0.0.1:PORT` } },
    { desc: 'the bare prefix: the service path alone (Kong\'s path_handling v0)', path: '/api', headers: {}, want: { status: 200, url: '/base', host: '127.0.0.1:PORT' } },
    { desc: 'strip_path false keeps the path; preserve_host true sends the client\'s Host', path: '/keep/x', headers: { host: 'client.example' }, want: { status: 200, url: '/base/keep/x', host: 'client.example' } },
    { desc: 'key-auth with Kong\'s default key name (apikey), no key', path: '/locked', headers: {}, want: { status: 401, url: undefined, host: undefined } },
    { desc: 'key-auth with the consumer\'s key', path: '/locked', headers: { apikey: 'alice-key' }, want: { status: 200, url: '/base', host: '127.0.0.1:PORT' } },
    { desc: 'a regex path takes what its regex matches, stripped', path: '/movies/42', headers: {}, want: { status: 200, url: '/base', host: '127.0.0.1:PORT' } },
    { desc: 'a regex path refuses what its regex does not match', path: '/movies/abc', headers: {}, want: { status: 404 } },
    { desc: 'an anchored regex path refuses a longer path', path: '/movies/42/cast', headers: {}, want: { status: 404 } },
    { desc: 'the plain path beside it on the same route', path: '/films/x', headers: {}, want: { status: 200, url: '/base/x', host: '127.0.0.1:PORT' } },
    { desc: 'an unanchored regex path is a prefix match from the path\'s start; strip_path false keeps it', path: '/kept/7abc/x', headers: {}, want: { status: 200, url: '/base/kept/7abc/x', host: '127.0.0.1:PORT' } },
    { desc: 'a regex is matched from the path\'s start only', path: '/x/kept/7', headers: {}, want: { status: 404 } },
    { desc: 'a route on headers: a listed value, in any case', path: '/hdr', headers: { 'x-version': 'V2' }, want: { status: 200, url: '/base', host: '127.0.0.1:PORT' } },
    { desc: 'a route on headers: a value the ~* regex matches', path: '/hdr', headers: { 'x-version': 'Beta-7' }, want: { status: 200, url: '/base', host: '127.0.0.1:PORT' } },
    { desc: 'a route on headers: another value is refused', path: '/hdr', headers: { 'x-version': 'v22' }, want: { status: 404 } },
    { desc: 'a route on headers: no header is refused', path: '/hdr', headers: {}, want: { status: 404 } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const before = up.seen.length;
      const res = await request(gw.port, c.path, { headers: c.headers });
      assert.equal(res.status, c.want.status);
      const seen = up.seen.slice(before)[0];
      assert.equal(seen?.url, c.want.url);
      assert.equal(seen?.headers.host, c.want.host?.replace('PORT', String(up.port)));
    });
  }
});

describe('import on real sockets: plain paths are string prefixes, strip_path and the service path as Kong joins them', () => {
  let up: Upstream;
  let gw: TestGateway;
  // One route per host: the same paths, each way Kong joins them (kong/router/utils.lua get_upstream_uri_v0).
  const routes: [host: string, path: string, strip: boolean, service: string][] = [
    ['strip.test', '/p', true, 'root'], ['kept.test', '/p', false, 'root'], ['slash.test', '/p/', true, 'root'],
    ['svc.test', '/p', true, 'base'], ['svcslash.test', '/p/', true, 'base-slash'], ['svckept.test', '/p', false, 'base'], ['svcroot.test', '/', true, 'base'],
  ];
  before(async () => {
    up = await startUpstream();
    const svc = (name: string, path: string) => `  - name: ${name}\n    url: http://127.0.0.1:${up.port}${path}\n    routes:\n${routes.filter((r) => r[3] === name).map(([host, p, strip]) => `      - { name: ${host.replace(/\./g, '-')}, hosts: [${host}], paths: ["${p}"], strip_path: ${strip} }`).join('\n')}\n`;
    const kong = `_format_version: "3.0"\nservices:\n${svc('root', '')}${svc('base', '/base')}${svc('base-slash', '/base/')}`;
    const res = await importText(kong, 'kong.yml', functions);
    assert.ok(res.ok && res.dropped.length === 0, JSON.stringify(res));
    gw = await startGateway(res.output);
  });
  after(async () => { await gw?.close(); await up?.close(); });

  const cases: { desc: string; host: string; paths: Record<string, string | 404> }[] = [
    { desc: '/p, strip_path: the matched prefix is removed, a / kept in front', host: 'strip.test', paths: { '/p': '/', '/p/': '/', '/pxyz?q=1': '/xyz?q=1', '/p/x': '/x', '/other': 404 } },
    { desc: '/p, strip_path false: the path as it came', host: 'kept.test', paths: { '/p': '/p', '/p/': '/p/', '/pxyz': '/pxyz', '/p/x': '/p/x', '/other': 404 } },
    { desc: '/p/ does not take /p nor /pxyz', host: 'slash.test', paths: { '/p': 404, '/p/': '/', '/pxyz': 404, '/p/x': '/x', '/other': 404 } },
    { desc: '/p with service path /base: the rest joined with one /, the service path alone when nothing is left', host: 'svc.test', paths: { '/p': '/base', '/p/': '/base/', '/pxyz': '/base/xyz', '/p/x': '/base/x', '/other': 404 } },
    { desc: '/p/ with service path /base/', host: 'svcslash.test', paths: { '/p': 404, '/p/': '/base/', '/pxyz': 404, '/p/x': '/base/x', '/other': 404 } },
    { desc: '/p, strip_path false, service path /base: the service path before the request path', host: 'svckept.test', paths: { '/p': '/base/p', '/p/': '/base/p/', '/pxyz': '/base/pxyz', '/p/x': '/base/p/x', '/other': 404 } },
    { desc: '/ with service path /base', host: 'svcroot.test', paths: { '/': '/base', '/x': '/base/x', '/x/': '/base/x/' } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const got: Record<string, string | number> = {};
      for (const p of Object.keys(c.paths)) {
        const before = up.seen.length;
        const res = await request(gw.port, p, { headers: { host: c.host } });
        got[p] = res.status === 200 ? up.seen.slice(before)[0]?.url ?? 'nothing upstream' : res.status;
      }
      assert.deepEqual(got, c.paths);
    });
  }
});

describe('Kong credential fields Kong makes up (auto = true): made up the same way, said in a note, exit 0', () => {
  let up: Upstream;
  let gw: TestGateway;
  let res: Extract<Awaited<ReturnType<typeof importText>>, { ok: true }>;
  let doc: Record<string, any>;
  before(async () => {
    up = await startUpstream();
    const kong = `_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:${up.port}
    routes:
      - { name: jwt, paths: [/jwt], plugins: [{ name: jwt }] }
      - { name: key, paths: [/key], plugins: [{ name: key-auth }] }
consumers:
  - username: issuer
  - username: bob
    keyauth_credentials: [{}]
    jwt_secrets: [{ secret: bob-secret }]
jwt_secrets:
  - consumer: issuer
    key: null
`;
    const r = await importText(kong, 'kong.yml', functions);
    assert.ok(r.ok, r.ok ? '' : r.message);
    res = r;
    doc = parse(r.output);
    gw = await startGateway(r.output);
  });
  after(async () => { await gw?.close(); await up?.close(); });
  const cred = (user: string, plugin: string) => doc.consumers.find((c: any) => c.username === user).plugins[plugin];
  const token = (iss: string, secret: string) => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss })}`;
    return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
  };

  it('nothing is listed as not carried; each made-up field is a note at its line, in the output too', () => {
    assert.deepEqual(res.dropped, []);
    assert.deepEqual(res.notes.map((d) => `${d.line}: ${d.what}: ${d.why}`), [
      '11: keyauth_credentials[0] of consumer "bob": no key: made up as Kong does (32 random letters and digits), written in this file',
      '12: jwt_secrets[0] of consumer "bob": no key: made up as Kong does (32 random letters and digits), written in this file; tokens name it in iss (key_claim_name)',
      '14: jwt_secrets[0] of consumer "issuer": no key or secret: made up as Kong does (32 random letters and digits), written in this file; tokens name it in iss (key_claim_name)',
    ]);
    assert.match(res.output, /^# Everything was carried over\.\n# Notes \(3\):\n# {3}kong\.yml:11: keyauth_credentials\[0\] of consumer "bob": no key: made up/m);
  });

  it('the made-up values have Kong\'s shape, differ, and a given secret is kept', () => {
    const made = [cred('bob', 'key-auth').key, cred('bob', 'jwt-auth').key, cred('issuer', 'jwt-auth').key, cred('issuer', 'jwt-auth').secret];
    for (const v of made) assert.match(v, /^[A-Za-z0-9]{32}$/);
    assert.equal(new Set(made).size, 4);
    assert.equal(cred('bob', 'jwt-auth').secret, 'bob-secret');
  });

  it('the gateway takes the made-up key and a token naming the made-up jwt key, and refuses others', async () => {
    const got = [
      (await request(gw.port, '/key', { headers: { apikey: cred('bob', 'key-auth').key } })).status,
      (await request(gw.port, '/key', { headers: { apikey: 'guess' } })).status,
      (await request(gw.port, '/jwt', { headers: { authorization: `Bearer ${token(cred('issuer', 'jwt-auth').key, cred('issuer', 'jwt-auth').secret)}` } })).status,
      (await request(gw.port, '/jwt', { headers: { authorization: `Bearer ${token(cred('bob', 'jwt-auth').key, 'bob-secret')}` } })).status,
      (await request(gw.port, '/jwt', { headers: { authorization: `Bearer ${token(cred('issuer', 'jwt-auth').key, 'wrong')}` } })).status,
    ];
    assert.deepEqual(got, [200, 401, 200, 200, 401]);
  });
});

describe('import on real sockets: routes tried in Kong\'s order (more fields first, then a regex path before a plain one, then the longer plain path)', () => {
  let up: Upstream;
  let gw: TestGateway;
  let doc: Record<string, any>;
  before(async () => {
    up = await startUpstream();
    // strip_path false: the service path tells which route took the request.
    const svc = (name: string, route: string) => `  - name: ${name}\n    url: http://127.0.0.1:${up.port}/${name}\n    routes:\n      - ${route}\n`;
    const kong = `_format_version: "3.0"\nservices:\n${[
      svc('versioned', '{ name: versioned, paths: ["~/api/v\\\\d+/.*"], strip_path: false }'),
      svc('users', '{ name: users, paths: [/api/v1/users], strip_path: false }'),
      svc('get', '{ name: api-get, paths: [/api], methods: [GET], strip_path: false }'),
      svc('low', '{ name: low, paths: ["~/api/v1/users/.*"], strip_path: false, regex_priority: -1 }'),
      svc('high', '{ name: high, paths: ["~/api/(v\\\\d)/me$"], strip_path: false, regex_priority: 5 }'),
      svc('tail', '{ name: tail, paths: [/api/v1xy], strip_path: false }'),
    ].join('')}`;
    const res = await importText(kong, 'kong.yml', functions);
    assert.ok(res.ok && res.dropped.length === 0 && res.notes.length === 0, JSON.stringify(res));
    doc = parse(res.output);
    gw = await startGateway(res.output);
  });
  after(async () => { await gw?.close(); await up?.close(); });

  const cases: { desc: string; method: string; path: string; want: string | number }[] = [
    { desc: 'a route matching on more fields (methods) first, though its path is shorter', method: 'GET', path: '/api/v1/users', want: '/get/api/v1/users' },
    { desc: 'a regex path before a longer plain path', method: 'POST', path: '/api/v1/users', want: '/versioned/api/v1/users' },
    { desc: 'regex_priority orders the regexes: a lower one after, though its uri is more specific', method: 'POST', path: '/api/v1/users/x', want: '/versioned/api/v1/users/x' },
    { desc: 'regex_priority orders the regexes: the higher first, though its uri is less specific', method: 'POST', path: '/api/v1/me', want: '/high/api/v1/me' },
    { desc: 'the next route in Kong\'s order where the first ones\' regexes refuse: a plain path, a string prefix', method: 'POST', path: '/api/v1xyz', want: '/tail/api/v1xyz' },
    { desc: 'a plain path is a string prefix', method: 'GET', path: '/apix', want: '/get/apix' },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const before = up.seen.length;
      const res = await request(gw.port, c.path, { method: c.method });
      assert.equal(res.status === 200 ? up.seen.slice(before)[0]?.url : res.status, c.want);
    });
  }

  it('the ranks are priorities; a route Kong tries first takes the more specific uris of the later routes it overlaps', () => {
    assert.deepEqual(doc.routes.map((r: any) => [r.id, r.uris, r.priority]), [
      ['versioned', ['/api/v*', '/api/v1/users*', '/api/v1/users/*', '/api/v1xy*'], 3],
      ['users', ['/api/v1/users*'], 1],
      ['api-get', ['/api*', '/api/*', '/api/v*', '/api/v1/users*', '/api/v1/users/*', '/api/v1xy*'], 5],
      ['low', ['/api/v1/users/*'], 2],
      ['high', ['/api/*', '/api/v*', '/api/v1/users*', '/api/v1/users/*', '/api/v1xy*'], 4],
      ['tail', ['/api/v1xy*'], undefined],
    ]);
  });
});

describe('Kong\'s order where Turnpike\'s router cannot follow it: noted', () => {
  it('a route without hosts that Kong tries first (it matches on more) beside a route with hosts', async () => {
    const kong = '_format_version: "3.0"\nservices:\n  - name: s\n    url: http://127.0.0.1:1\n    routes:\n      - { name: many, paths: [/a], methods: [GET], headers: { x-v: ["1"] } }\n      - { name: hosted, paths: [/a/b], hosts: [x.example] }\n      - { name: mixed, paths: ["~/c/\\\\d+", /c/long, /c] }\n      - { name: other, paths: [/c/x] }\n';
    const { res } = await roundTrip(kong);
    assert.ok(res.ok);
    assert.deepEqual(res.dropped, []);
    assert.deepEqual(res.notes.map((d) => `${d.line}: ${d.what}: ${d.why}`), [
      '6: route "many": Kong tries it before route "hosted" (it matches on more, or more exactly), where both match; Turnpike tries a route with hosts (the more exact host) first',
      '8: route "mixed": Kong orders its regex paths and its plain paths of each length apart; here the route has one place in the order, its first part\'s',
    ]);
  });

  it('path_handling v1 is joined the v0 way, as Kong\'s default router does: noted', async () => {
    const { res, doc } = await roundTrip('_format_version: "3.0"\nservices:\n  - name: s\n    url: http://127.0.0.1:1/base\n    routes:\n      - { name: v1, paths: [/p], path_handling: v1 }\n');
    assert.ok(res.ok);
    assert.deepEqual(res.notes.map((d) => `${d.line}: ${d.what}: ${d.why}`), ['6: route "v1": path_handling v1: the upstream path is joined the v0 way, as Kong\'s default router (traditional_compatible) does']);
    assert.deepEqual(doc.routes[0].plugins['proxy-rewrite'].regex_uri.slice(0, 2), ['^(?:/p)(?:\\.\\.?)?$', '/base']);
  });
});

describe('turnpike import (the command)', () => {
  const BIN = fileURLToPath(new URL('../bin/turnpike.js', import.meta.url));
  const run = (args: string[], cwd: string) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'turnpike-import-'));
    await writeFile(path.join(dir, 'kong.yml'), KONG);
    await writeFile(path.join(dir, 'clean.yml'), '_format_version: "3.0"\nservices:\n  - name: s\n    url: http://127.0.0.1:1\n    routes: [{ name: r, paths: [/] }]\n');
    await writeFile(path.join(dir, 'other.yml'), 'hello: world\n');
    await writeFile(path.join(dir, 'made-up.yml'), '_format_version: "3.0"\nconsumers:\n  - username: a\n    keyauth_credentials: [{}]\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const cases = [
    { desc: 'everything carried: exit 0, stdout', args: ['import', 'clean.yml'], want: { code: 0, stdout: /^# Imported by .*\n# Everything was carried over\.\n\nservices:/, stderr: /^clean\.yml: imported as Kong; everything carried over\n$/ } },
    { desc: 'something dropped: exit 1, each item on stderr with its line', args: ['import', 'kong.yml', '-o', 'out.yaml'], want: { code: 1, stdout: /^$/, stderr: /^kong\.yml:15: not carried over: plugin proxy-cache: not available in Turnpike \(yet\)\n(.*\n){2}kong\.yml: imported as Kong into out\.yaml; 3 items not carried over\n$/ } },
    { desc: 'a key made up as Kong does: exit 0, a note on stderr', args: ['import', 'made-up.yml'], want: { code: 0, stdout: /^# Imported by .*\n# Everything was carried over\.\n# Notes \(1\):\n/, stderr: /^made-up\.yml:4: note: keyauth_credentials\[0\] of consumer "a": no key: made up as Kong does \(32 random letters and digits\), written in this file\nmade-up\.yml: imported as Kong; everything carried over\n$/ } },
    { desc: 'no file: exit 2', args: ['import'], want: { code: 2, stdout: /^$/, stderr: /^import needs exactly one FILE\nusage: turnpike import FILE \[--output\|-o OUT\]/ } },
    { desc: 'neither format: exit 2', args: ['import', 'other.yml'], want: { code: 2, stdout: /^$/, stderr: /^other\.yml: not a Kong declarative file \(no _format_version\) or an apisix\.yaml/ } },
    { desc: 'a missing file: exit 2', args: ['import', 'nope.yml'], want: { code: 2, stdout: /^$/, stderr: /^nope\.yml: file not found/ } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const r = await run(c.args, dir);
      assert.equal(r.code, c.want.code, r.stderr);
      assert.match(r.stdout, c.want.stdout);
      assert.match(r.stderr, c.want.stderr);
    });
  }

  it('validate prints warnings and exits 0 when there are only warnings', async () => {
    await writeFile(path.join(dir, 'apisix.yaml'), 'etcd: { host: [] }\nroutes:\n  - uri: /hello\n    upstream: { nodes: { "127.0.0.1:1980": 1 } }\n#END\n');
    const r = await run(['validate', 'apisix.yaml'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, 'apisix.yaml:1:1: etcd: warning: "etcd" belongs in APISIX\'s config.yaml; Turnpike ignores it here\n');
    assert.match(r.stdout, /^apisix\.yaml: ok \(1 routes, sha256 [0-9a-f]{12}, 1 warning\)\n$/);
  });

  it('the written file passes turnpike validate', async () => {
    assert.match(await readFile(path.join(dir, 'out.yaml'), 'utf8'), /^# Imported by `turnpike import` from kong\.yml/);
    const r = await run(['validate', 'out.yaml'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^out\.yaml: ok \(3 routes, sha256 [0-9a-f]{12}\)\n$/);
  });
});

describe('Kong active health checks → checks.active', () => {
  const kong = (active: string) => `_format_version: "3.0"
upstreams:
  - name: pool
    targets: [{ target: "127.0.0.1:3001" }, { target: "127.0.0.1:3002" }]
    healthchecks:
      active: ${active}
services:
  - name: s
    host: pool
    routes: [{ name: r, paths: [/r] }]
`;
  const cases: { desc: string; active: string; want: { active?: unknown; dropped: string[] } }[] = [
    { desc: 'Kong\'s defaults (both intervals 0): no probing, nothing listed',
      active: '{ type: http, http_path: /, healthy: { interval: 0 }, unhealthy: { interval: 0 } }',
      want: { dropped: [] } },
    { desc: 'http probes: the shared fields carried, headers as req_headers lines',
      active: '{ type: http, http_path: /health, timeout: 2, concurrency: 4, headers: { x-probe: [a, b] }, healthy: { interval: 5, successes: 2, http_statuses: [200] }, unhealthy: { interval: 3, http_failures: 3, tcp_failures: 2, timeouts: 2, http_statuses: [500, 503] } }',
      want: { active: { type: 'http', timeout: 2, concurrency: 4, http_path: '/health', req_headers: ['x-probe: a', 'x-probe: b'], healthy: { interval: 5, successes: 2, http_statuses: [200] }, unhealthy: { interval: 3, http_failures: 3, tcp_failures: 2, timeouts: 2, http_statuses: [500, 503] } }, dropped: [] } },
    { desc: 'one side at 0 probes at the other side\'s interval; https_sni listed',
      active: '{ type: https, https_verify_certificate: false, https_sni: api.internal, healthy: { interval: 0, successes: 1 }, unhealthy: { interval: 2, tcp_failures: 1 } }',
      want: { active: { type: 'https', https_verify_certificate: false, healthy: { interval: 2, successes: 1 }, unhealthy: { interval: 2, tcp_failures: 1 } }, dropped: ['6: active health checks https_sni: probes use the node\'s address as SNI'] } },
    { desc: 'gRPC probes have no equivalent: listed, no checks',
      active: '{ type: grpc, healthy: { interval: 5 }, unhealthy: { interval: 5 } }',
      want: { dropped: ['6: active health checks of type grpc: Turnpike probes over http, https or tcp only'] } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const { res, doc } = await roundTrip(kong(c.active));
      if (!res.ok) return;
      assert.deepEqual(res.dropped.map((d) => `${d.line}: ${d.what}: ${d.why}`), c.want.dropped);
      assert.deepEqual(doc.services[0].upstream.checks?.active, c.want.active);
    });
  }
});
