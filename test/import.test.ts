/**
 * `turnpike import`: Kong declarative files and apisix.yaml in, a gateway.yaml
 * out that validates (round trip), Kong's defaults kept on real sockets, and
 * everything not carried over listed by line.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { importText } from '../src/config/import/index.ts';
import { kongPath } from '../src/config/import/kong.ts';
import { formatIssues, loadConfigText } from '../src/config/load.ts';
import { FunctionPools } from '../src/serverless/pool.ts';
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
    { desc: 'a plain path is a prefix', path: '/api', want: { uris: ['/api', '/api/*'], prefix: '/api', approx: false } },
    { desc: 'the root', path: '/', want: { uris: ['/*'], prefix: '', approx: false } },
    { desc: 'a regex of literal segments', path: '~/v1/items$', want: { uris: ['/v1/items'], prefix: '/v1/items', approx: false } },
    { desc: 'a named capture becomes a parameter', path: '~/users/(?<id>\\d+)$', want: { uris: ['/users/:id'], prefix: '', approx: true } },
    { desc: 'an unanchored one-segment pattern', path: '~/files/[^/]+', want: { uris: ['/files/:p1', '/files/:p1/*'], prefix: '', approx: true } },
    { desc: 'alternation cannot be carried', path: '~/(a|b)/x', want: { why: 'this regular expression cannot be expressed as a Turnpike path yet' } },
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
      - name: prometheus
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
      '13: route "by-header": it matches on headers, which Turnpike cannot match yet',
      '15: plugin prometheus: no Turnpike counterpart',
      '24: plugin pre-function: its functions are Lua: port them to JavaScript (README "Lua → JavaScript")',
      '32: keyauth_credentials[1] of consumer "alice": a Turnpike consumer holds one key-auth credential; the first was kept',
    ]);
    assert.match(res.output, /^# Imported by `turnpike import` from kong\.yml \(Kong declarative format\)\.\n# Not carried over \(4\):\n# {3}kong\.yml:13: route "by-header": it matches on headers/);
    assert.deepEqual(doc.routes.map((r: any) => [r.id, r.uris, r.service_id, r.methods]), [
      ['users', ['/users', '/users/*'], 'users-api', ['GET', 'POST']],
      ['billing-1', ['/billing', '/billing/*'], 'billing', undefined],
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
    assert.deepEqual(res.dropped.map((d) => `${d.line}: ${d.what}: ${d.why}`), ['7: plugin no-such-kong-plugin: no Turnpike counterpart']);
    assert.deepEqual(doc.services[0].plugins, { mocking: { response_status: 418, response_example: '{"message":"teapot"}', content_type: 'application/json; charset=utf-8' } });
  });

  it('a mapped config Turnpike\'s plugin refuses is taken out and listed, so the output still validates', async () => {
    const text = '_format_version: "3.0"\nservices:\n  - name: s\n    url: http://127.0.0.1:1\n    routes:\n      - name: r\n        paths: [/]\n        plugins:\n          - name: correlation-id\n            config: { header_name: 42 }\n';
    const { res, doc } = await roundTrip(text);
    if (!res.ok) return;
    assert.deepEqual(res.dropped.map((d) => `${d.line}: ${d.what}: ${d.why}`), ['9: plugin request-id of route "r": plugin request-id: must be of type string']);
    assert.equal(doc.routes[0].plugins, undefined);
  });

  it('hostile input: not a mapping, YAML errors, and nonsense values never crash and never produce an invalid file', async () => {
    assert.deepEqual(await importText('- a\n', 'x.yml', functions), { ok: false, message: 'x.yml: not a Kong declarative file or an apisix.yaml (expected a mapping)' });
    assert.deepEqual(await importText('a: "b\n', 'x.yml', functions), { ok: false, message: 'x.yml:2:1: YAML: Missing closing "quote' });
    const { res } = await roundTrip('_format_version: "3.0"\nservices:\n  - name: "../../etc"\n    url: "not a url"\n  - name: ok\n    url: http://127.0.0.1:1\n    routes: [{ paths: ["relative"] }, { paths: [/a], hosts: ["bad host!"] }, 7, null]\n  - 42\nconsumers: [{ username: "a b" , keyauth_credentials: [{ key: k }] }]\nroutes: { not: a-list }\n');
    if (res.ok) assert.deepEqual(res.dropped.map((d) => d.what), ['service "..-..-etc" and its routes', 'route "ok-1" path relative', 'route "ok-1"', 'route "ok-2"']);
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
    { desc: 'the bare prefix', path: '/api', headers: {}, want: { status: 200, url: '/base/', host: '127.0.0.1:PORT' } },
    { desc: 'strip_path false keeps the path; preserve_host true sends the client\'s Host', path: '/keep/x', headers: { host: 'client.example' }, want: { status: 200, url: '/base/keep/x', host: 'client.example' } },
    { desc: 'key-auth with Kong\'s default key name (apikey), no key', path: '/locked', headers: {}, want: { status: 401, url: undefined, host: undefined } },
    { desc: 'key-auth with the consumer\'s key', path: '/locked', headers: { apikey: 'alice-key' }, want: { status: 200, url: '/base/', host: '127.0.0.1:PORT' } },
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
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const cases = [
    { desc: 'everything carried: exit 0, stdout', args: ['import', 'clean.yml'], want: { code: 0, stdout: /^# Imported by .*\n# Everything was carried over\.\n\nservices:/, stderr: /^clean\.yml: imported as Kong; everything carried over\n$/ } },
    { desc: 'something dropped: exit 1, each item on stderr with its line', args: ['import', 'kong.yml', '-o', 'out.yaml'], want: { code: 1, stdout: /^$/, stderr: /^kong\.yml:13: not carried over: route "by-header": it matches on headers, which Turnpike cannot match yet\n(.*\n){3}kong\.yml: imported as Kong into out\.yaml; 4 items not carried over\n$/ } },
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
    assert.match(r.stdout, /^out\.yaml: ok \(2 routes, sha256 [0-9a-f]{12}\)\n$/);
  });
});
