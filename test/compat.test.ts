/**
 * APISIX standalone files load as they are: files shaped like APISIX's own
 * examples validate unchanged, what Turnpike ignores is a warning at its line,
 * what it cannot honour is an error, and the compatibility forms behave as in
 * APISIX on real sockets.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatIssues, loadConfigText } from '../src/config/load.ts';
import { formatIssue } from '../src/errors.ts';
import { FunctionPools } from '../src/serverless/pool.ts';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { captureLogs, eventually, fixture, request, startGateway, startUpstream } from './helpers/harness.ts';

const pools = new FunctionPools();
after(() => pools.close());
const load = (text: string) => loadConfigText(text, 'apisix.yaml', { env: {}, functions: (s) => pools.host(s) });

/** Shaped after APISIX's conf/apisix.yaml (the documented hello-world). */
const HELLO_WORLD = `# example
routes:
  -
    uri: /hello
    upstream:
      nodes:
        "127.0.0.1:1980": 1
      type: roundrobin
#END
`;

/** Shaped after apisix-docker's example/apisix_conf/apisix-standalone.yaml. */
const DOCKER_STANDALONE = `
routes:
  -
    uri: /get
    upstream:
        nodes:
            "web1:80": 1
        type: roundrobin
#END
`;

/** The forms of APISIX's deployment-modes page: route + service + upstream by number, plugin_configs, the plugins list. */
const DEPLOYMENT_MODES = `
routes:
    -
        uri: /hello
        service_id: 1
    -   id: 2
        uri: /configs
        plugin_config_id: 1
        upstream_id: 2
services:
    -
        id: 1
        upstream_id: 2
upstreams:
    -
        id: 2
        nodes:
            "127.0.0.1:1980": 1
        type: roundrobin
plugin_configs:
    -
        id: 1
        plugins:
            response-rewrite:
                body: "hello\\n"
plugins:
  - name: ip-restriction
  - name: jwt-auth
#END
`;

describe('APISIX examples validate unchanged', () => {
  const cases = [
    { desc: 'conf/apisix.yaml hello-world (id-less route)', conf: HELLO_WORLD, routes: ['arr_1'], warnings: [] },
    { desc: 'apisix-docker standalone example', conf: DOCKER_STANDALONE, routes: ['arr_1'], warnings: [] },
    { desc: 'deployment-modes: services, upstreams, plugin_configs, plugins list', conf: DEPLOYMENT_MODES, routes: ['arr_1', '2'],
      warnings: ['apisix.yaml:26:1: plugins: warning: the top-level plugins list is not needed: Turnpike enables every plugin it has; ignored'] },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await load(c.conf);
      assert.ok(res.ok, res.ok ? '' : formatIssues(res.issues));
      assert.deepEqual(res.snapshot.routes.map((r) => r.id), c.routes);
      assert.deepEqual(res.warnings.map(formatIssue), c.warnings);
    });
  }
});

const UP = '    upstream: { nodes: { "127.0.0.1:1980": 1 }, type: roundrobin }\n';

describe('what Turnpike ignores is accepted with one warning each, at its line', () => {
  const cases: { desc: string; conf: string; want: string[] }[] = [
    { desc: 'config.yaml sections and x-* anchor holders',
      conf: `x-upstream: &up { nodes: { "127.0.0.1:1980": 1 } }\ndeployment:\n  role: data_plane\napisix:\n  node_listen: 9080\nnginx_config: {}\netcd: { host: [] }\nplugin_attr: {}\nroutes:\n  - uri: /a\n    upstream: *up\n`,
      want: [
        'apisix.yaml:1:1: x-upstream: warning: "x-upstream" is an extension key (YAML anchors): ignored',
        'apisix.yaml:2:1: deployment: warning: "deployment" belongs in APISIX\'s config.yaml; Turnpike ignores it here',
        'apisix.yaml:4:1: apisix: warning: "apisix" belongs in APISIX\'s config.yaml; Turnpike ignores it here',
        'apisix.yaml:6:1: nginx_config: warning: "nginx_config" belongs in APISIX\'s config.yaml; Turnpike ignores it here',
        'apisix.yaml:7:1: etcd: warning: "etcd" belongs in APISIX\'s config.yaml; Turnpike ignores it here',
        'apisix.yaml:8:1: plugin_attr: warning: "plugin_attr" belongs in APISIX\'s config.yaml; Turnpike ignores it here',
      ] },
    { desc: 'desc, name, labels and null plugin values need no warning',
      conf: `routes:\n  - uri: /a\n    name: a\n    desc: the a route\n    labels: { team: x }\n    plugins:\n      request-id:\n${UP}`, want: [] },
    { desc: 'a disabled route (status: 0)', conf: `routes:\n  - uri: /a\n    status: 0\n${UP}  - uri: /b\n    status: 1\n${UP}`,
      want: ['apisix.yaml:3:5: routes[0].status: warning: route "arr_1" is disabled (status: 0): not served'] },
    { desc: 'upstream fields Turnpike does not implement (checks.active it does)',
      conf: 'routes:\n  - uri: /a\n    upstream:\n      nodes: { "127.0.0.1:1980": 1 }\n      retry_timeout: 5\n      keepalive_pool: { size: 10, idle_timeout: 30, requests: 1000 }\n      checks:\n        active: { type: http, http_path: /health }\n',
      want: [
        'apisix.yaml:5:7: routes[0].upstream.retry_timeout: warning: retry_timeout is not implemented: retries are bounded by "retries" and each try by "timeout"',
        'apisix.yaml:6:53: routes[0].upstream.keepalive_pool.requests: warning: keepalive_pool.requests is not implemented: connections are reused until idle_timeout',
      ] },
    { desc: 'APISIX passive checks (healthy/unhealthy) carried over; healthy named',
      conf: 'upstreams:\n  - nodes: { "127.0.0.1:1980": 1 }\n    checks:\n      passive:\n        healthy: { http_statuses: [200] }\n        unhealthy: { http_statuses: [500], http_failures: 3, tcp_failures: 2 }\nroutes:\n  - uri: /a\n    upstream_id: arr_1\n',
      want: ['apisix.yaml:5:9: upstreams[0].checks.passive.healthy: warning: checks.passive.healthy is not implemented: an ejected node gets traffic again after ejection_seconds'] },
    { desc: 'fields of APISIX\'s plugin schemas that Turnpike does not implement',
      conf: `routes:\n  - uri: /a\n    plugins:\n      key-auth: { header: apikey, key: on-a-route }\n      proxy-rewrite: { uri: /b, method: POST }\n      mocking: { response_example: hi, delay: 1 }\n${UP}`,
      want: [
        'apisix.yaml:4:35: routes[0].plugins.key-auth.key: warning: plugin key-auth: field "key" is APISIX\'s and Turnpike does not implement it: ignored',
        'apisix.yaml:5:33: routes[0].plugins.proxy-rewrite.method: warning: plugin proxy-rewrite: field "method" is APISIX\'s and Turnpike does not implement it: ignored',
        'apisix.yaml:6:40: routes[0].plugins.mocking.delay: warning: plugin mocking: field "delay" is APISIX\'s and Turnpike does not implement it: ignored',
      ] },
    { desc: '_meta (honoured: no warning) and disabled plugins',
      conf: `routes:\n  - uri: /a\n    plugins:\n      request-id: { _meta: { priority: 1 } }\n      mocking: { response_example: x, _meta: { disable: true } }\n${UP}`,
      want: [
        'apisix.yaml:5:7: routes[0].plugins.mocking: warning: plugin mocking is disabled (disable: true): not run',
      ] },
    { desc: 'forward-auth request_headers naming the X-Forwarded-* the gateway sends itself (oauth2-proxy\'s example)',
      conf: `routes:\n  - uri: /a\n    plugins:\n      forward-auth:\n        uri: http://127.0.0.1:4181/auth\n        request_headers: [Cookie, X-Forwarded-Host, x-forwarded-uri, X-Forwarded-Port]\n${UP}`,
      want: ['apisix.yaml:6:9: routes[0].plugins.forward-auth.request_headers: warning: plugin forward-auth: request_headers "X-Forwarded-Host", "x-forwarded-uri": the gateway sends its own (from the connection and trusted_proxies), never the client\'s: taken out of the list'] },
    { desc: 'resources Turnpike does not have yet', conf: `stream_routes: []\nroutes:\n  - uri: /a\n${UP}`,
      want: [
        'apisix.yaml:1:1: stream_routes: warning: stream_routes (TCP/UDP proxying) are not supported yet; ignored',
      ] },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await load(c.conf);
      assert.ok(res.ok, res.ok ? '' : formatIssues(res.issues));
      assert.deepEqual(res.warnings.map(formatIssue), c.want);
    });
  }
});

describe('what Turnpike cannot honour is an error, in the first round', () => {
  const cases: { desc: string; conf: string; want: string[] }[] = [
    { desc: 'a Lua function, reported with the other errors',
      conf: 'routes:\n  - uri: /a\n    plugins:\n      serverless-pre-function:\n        phase: rewrite\n        functions:\n          - "return function(conf, ctx) ngx.say(\'hi\') end"\n  - uri: /b\n    service_id: nope\n',
      want: [
        'apisix.yaml:7:13: routes[0].plugins.serverless-pre-function.functions[0]: this is Lua; Turnpike runs JavaScript: see "Lua → JavaScript" in README.md (and MIGRATING.md)',
        'apisix.yaml:9:17: routes[1].service_id: service "nope" is not defined in services',
      ] },
    { desc: 'grpc upstreams', conf: 'routes:\n  - uri: /a\n    upstream: { scheme: grpc, nodes: { "127.0.0.1:1980": 1 } }\n',
      want: ['apisix.yaml:3:25: routes[0].upstream.scheme: gRPC proxying is not supported yet: Turnpike proxies HTTP and HTTPS upstreams (scheme http or https)'] },
    { desc: 'an upstream client certificate from an ssls entry Turnpike does not have', conf: 'routes:\n  - uri: /a\n    upstream:\n      scheme: https\n      nodes: { "127.0.0.1:1980": 1 }\n      tls: { client_cert_id: 1 }\n',
      want: ['apisix.yaml:6:30: routes[0].upstream.tls.client_cert_id: client_cert_id "1" names no ssls entry with a cert and key: give client_cert and client_key here instead'] },
    { desc: 'filter_func is Lua deciding the match: refused, not ignored', conf: `routes:\n  - uri: /a\n    filter_func: "function(vars) return vars.arg_x == '1' end"\n${UP}`,
      want: ['apisix.yaml:3:5: routes[0].filter_func: route field "filter_func" cannot be honoured: it is Lua, which Turnpike does not run'] },
    { desc: 'a plugin APISIX has and Turnpike does not, said once however many routes use it; a typo; a custom plugin',
      conf: `routes:\n  - uri: /a\n    plugins:\n      authz-keycloak: {}\n      cros: {}\n${UP}  - uri: /b\n    plugins:\n      authz-keycloak: { client_id: x }\n      my-company-auth: {}\n${UP}  - uri: /c\n    plugins: { authz-keycloak: {} }\n${UP}`,
      want: [
        'apisix.yaml:4:7: routes[0].plugins.authz-keycloak: plugin "authz-keycloak" is not available in Turnpike (yet) (used in 3 places; said once, at the first)',
        'apisix.yaml:5:7: routes[0].plugins.cros: unknown plugin "cros" (did you mean "cors"?)',
        'apisix.yaml:10:7: routes[1].plugins.my-company-auth: unknown plugin "my-company-auth": neither Turnpike\'s nor APISIX\'s; a custom plugin is loaded through plugin_paths',
      ] },
    { desc: 'a plugin_config that does not exist', conf: `routes:\n  - uri: /a\n    plugin_config_id: 9\n${UP}`,
      want: ['apisix.yaml:3:23: routes[0].plugin_config_id: plugin_config "9" is not defined in plugin_configs'] },
    { desc: 'a field nobody knows gets a suggestion', conf: `routes:\n  - uri: /a\n    plugins:\n      key-auth: { headr: apikey }\n${UP}`,
      want: ['apisix.yaml:4:19: routes[0].plugins.key-auth.headr: plugin key-auth: unknown field "headr" (did you mean "header"?)'] },
    { desc: 'an APISIX field whose absence would let more through stays an error', conf: `routes:\n  - uri: /a\n    plugins:\n      limit-conn: { conn: 1, burst: 0, default_conn_delay: 0.1, key: remote_addr, rules: [] }\n${UP}`,
      want: ['apisix.yaml:4:83: routes[0].plugins.limit-conn.rules: plugin limit-conn: unknown field "rules"'] },
    { desc: 'an error in a plugin_config points at the plugin_config', conf: `plugin_configs:\n  - plugins:\n      mocking: { response_status: x }\nroutes:\n  - uri: /a\n    plugin_config_id: arr_1\n${UP}`,
      want: ['apisix.yaml:3:35: plugin_configs[0].plugins.mocking.response_status: plugin mocking: must be of type integer'] },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await load(c.conf);
      assert.equal(res.ok, false);
      if (!res.ok) assert.deepEqual(res.issues.map(formatIssue), c.want);
    });
  }
});

describe('files that are not quite apisix.yaml', () => {
  it('a mapping used as a key (a helm template\'s {{ … }}) is an error, never an unpositioned process warning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const res = await load(`routes:\n  - uri: /a\n${UP}{{ .Values.namespace }}: x\n`);
      await new Promise((r) => setImmediate(r));
      assert.equal(res.ok, false);
      if (!res.ok) assert.deepEqual(res.issues.map((i) => i.message), ['unknown field "{ ? { .Values.namespace } }"']);
      assert.deepEqual(warnings, []);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('APISIX forms behave as in APISIX', () => {
  const f = fixture((port) => `
plugin_configs:
  - plugins:
      response-rewrite:
        headers: { x-from: plugin-config, x-gone: "" }
      request-id:
routes:
  - uri: "*"
    host: "*-device.example.net"
    methods: [PURGE]
    plugin_config_id: arr_1
    plugins:
      response-rewrite:
        headers: { x-from: route }
    upstream: { nodes: { "127.0.0.1:${port}": 1 }, type: roundrobin }
  - uri: /off
    status: 0
    upstream: { nodes: { "127.0.0.1:${port}": 1 } }
  - uri: /on
    plugin_config_id: arr_1
    upstream: { nodes: { "127.0.0.1:${port}": 1 } }
`, { handler: (_req, res) => { res.setHeader('x-gone', 'still here'); res.end('up'); } });

  const cases = [
    { desc: 'wildcard host beyond *.suffix, PURGE, uri "*", the route\'s own plugin wins over the plugin_config\'s',
      path: '/anything', method: 'PURGE', host: 'tv-device.example.net', want: { status: 200, from: 'route', gone: 'still here', id: true } },
    { desc: 'the host pattern is a suffix match, not anything', path: '/anything', method: 'PURGE', host: 'device.example.net', want: { status: 404, from: undefined, gone: undefined, id: false } },
    { desc: 'a route with status 0 is not served', path: '/off', method: 'GET', host: 'x', want: { status: 404, from: undefined, gone: undefined, id: false } },
    { desc: 'plugin_config plugins, flat headers (an empty value removes), null plugin value', path: '/on', method: 'GET', host: 'x', want: { status: 200, from: 'plugin-config', gone: undefined, id: true } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await request(f.gw.port, c.path, { method: c.method, headers: { host: c.host } });
      assert.equal(res.status, c.want.status);
      assert.equal(res.headers['x-from'], c.want.from);
      assert.equal(res.headers['x-gone'], c.want.gone);
      assert.equal(typeof res.headers['x-request-id'] === 'string', c.want.id);
    });
  }

  it('/status names the positional ids and the warnings', async () => {
    const s = JSON.parse((await request(f.gw.adminPort, '/status')).body);
    assert.deepEqual(s.route_ids, ['arr_1', 'arr_3']);
    assert.deepEqual(s.warnings, [`${path.relative(process.cwd(), f.gw.file)}:20:5: routes[1].status: warning: route "arr_2" is disabled (status: 0): not served`]);
  });
});

describe('warnings in the reload log line', () => {
  it('a reload that brings warnings logs them with the success', async () => {
    const up = await startUpstream();
    const gw = await startGateway(`routes:\n  - uri: /a\n    upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }\n`);
    const logs = captureLogs();
    try {
      await writeFile(gw.file, `listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\netcd: {}\nroutes:\n  - uri: /a\n    upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }\n`);
      const out = await gw.gw.reload('test');
      assert.equal(out.ok, true);
      const line = await eventually(() => logs.lines.find((l) => l.msg === 'config reloaded'));
      assert.deepEqual(line.warnings, [`${path.relative(process.cwd(), gw.file)}:3:1: etcd: warning: "etcd" belongs in APISIX's config.yaml; Turnpike ignores it here`]);
    } finally {
      logs.restore();
      await gw.close();
      await up.close();
    }
  });
});
