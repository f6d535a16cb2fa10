/**
 * opa against a local server that speaks OPA's data API (`POST /v1/data/<path>`
 * → `{ result }`): OPA itself is not installable here. The server evaluates
 * small policies (written in JS, the Rego they stand for beside them) on the
 * input it receives and walks the path into the decision, as OPA does.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { refusedPort, request, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.ts';
import { configErrors, routeWith } from '../helpers/config.ts';

type Input = { request: { method: string; headers: Record<string, string>; query: Record<string, string>; path: string }; route?: { id: string }; service?: { id: string }; consumer?: { username: string } };

const packages: Record<string, (input: Input) => unknown> = {
  // package example
  // default allow := false
  // allow if { input.request.method == "GET"; input.request.headers["x-user"] == "alice" }
  // status_code := 401 if not input.request.headers["x-user"]
  // headers := {"x-opa-user": input.request.headers["x-user"]} if allow
  // headers := {"www-authenticate": "Basic realm=\"opa\""} if not input.request.headers["x-user"]
  // reason := sprintf("%s may not %s %s", [user, method, path]) if { not allow; input.request.headers["x-user"] }
  // reason := {"error": "who are you?"} if not input.request.headers["x-user"]
  example: (input) => {
    const user = input.request.headers['x-user'];
    const allow = input.request.method === 'GET' && user === 'alice';
    const doc: Record<string, unknown> = { allow };
    if (allow) doc.headers = { 'x-opa-user': user };
    if (!user) Object.assign(doc, { status_code: 401, headers: { 'www-authenticate': 'Basic realm="opa"' }, reason: { error: 'who are you?' } });
    else if (!allow) doc.reason = `${user} may not ${input.request.method} ${input.request.path}`;
    return doc;
  },
  // package context
  // allow if { input.route.id == "ctx"; input.service.id == "svc"; input.consumer.username == "alice" }
  // reason := {"route": input.route.id, "service": input.service.id, "consumer": input.consumer.username}
  context: (input) => ({
    allow: input.route?.id === 'ctx' && input.service?.id === 'svc' && input.consumer?.username === 'alice',
    reason: { route: input.route?.id ?? null, service: input.service?.id ?? null, consumer: input.consumer?.username ?? null },
  }),
  // package sloppy: allow := input.request.query.allow (a string, not a boolean)
  sloppy: (input) => ({ allow: input.request.query.allow }),
  // package teapot: allow := false; status_code := "teapot"
  teapot: () => ({ allow: false, status_code: 'teapot' }),
  // package headerbomb: allow := false; headers := {"x-ok": "1", "bad name": "x", "x-crlf": "a\r\nx-evil: 1", "content-length": "0"}
  headerbomb: () => ({ allow: false, headers: { 'x-ok': '1', 'bad name': 'x', 'x-crlf': 'a\r\nx-evil: 1', 'content-length': '0' } }),
  // package echo: allow := true (the server records the input)
  echo: () => ({ allow: true }),
};

/** The OPA stand-in: the harness's server with a handler that answers the data API. */
function startOpa(): Promise<Upstream> {
  return startUpstream((req, res, text) => {
    const [, pkg, ...rest] = (req.url ?? '').split('?')[0].replace(/^\/v1\/data/, '').split('/');
    if (pkg === 'slow') return; // never answers
    if (pkg === 'garbage') { res.writeHead(200, { 'content-type': 'text/html' }); res.end('<html>not json</html>'); return; }
    if (pkg === 'huge') { res.writeHead(200); res.end(JSON.stringify({ result: { allow: true, pad: 'x'.repeat(2 << 20) } })); return; }
    let body: { input?: Input };
    try { body = JSON.parse(text); } catch { res.writeHead(400); res.end('{"code":"invalid_parameter","message":"body is not JSON"}'); return; }
    if (req.method !== 'POST' || req.headers['content-type'] !== 'application/json' || !body.input) { res.writeHead(400); res.end('{"code":"invalid_parameter"}'); return; }
    const policy = packages[pkg];
    let doc: unknown = policy ? policy(body.input) : undefined;
    for (const seg of rest) doc = doc && typeof doc === 'object' ? (doc as Record<string, unknown>)[seg] : undefined;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(doc === undefined ? {} : { result: doc })); // OPA: an undefined decision has no result
  });
}

/** The input document of the n-th call OPA received. */
const inputOf = (opa: Upstream, n: number) => JSON.parse(opa.seen[n].body).input;

describe('opa', () => {
  let opa: Upstream;
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    opa = await startOpa();
    up = await startUpstream();
    const dead = await refusedPort();
    const host = `http://127.0.0.1:${opa.port}`;
    const node = `{ nodes: { "127.0.0.1:${up.port}": 1 } }`;
    const route = (id: string, conf: string, extra = `upstream: ${node}`) => `  - { id: ${id}, uri: /${id}, ${extra}, plugins: { opa: ${conf} } }\n`;
    gw = await startGateway(`services:
  - { id: svc, upstream: ${node}, plugins: { key-auth: {} } }
consumers:
  - username: alice
    plugins:
      key-auth: { key: alice-key }
routes:
${route('app', `{ host: "${host}", policy: example, send_headers_upstream: [X-OPA-User, X-OPA-Role] }`)}\
${route('bool', `{ host: "${host}/", policy: example/allow }`)}\
${route('ctx', `{ host: "${host}", policy: context, with_route: true, with_service: true, with_consumer: true }`, 'service_id: svc')}\
${route('noctx', `{ host: "${host}", policy: context }`, 'service_id: svc')}\
${route('shape', `{ host: "${host}", policy: echo }`)}\
${route('undefined', `{ host: "${host}", policy: example/nothing }`)}\
${route('nopkg', `{ host: "${host}", policy: nowhere }`)}\
${route('sloppy', `{ host: "${host}", policy: sloppy }`)}\
${route('teapot', `{ host: "${host}", policy: teapot }`)}\
${route('headerbomb', `{ host: "${host}", policy: headerbomb }`)}\
${route('garbage', `{ host: "${host}", policy: garbage }`)}\
${route('huge', `{ host: "${host}", policy: huge }`)}\
${route('slow', `{ host: "${host}", policy: slow, timeout: 300 }`)}\
${route('down', `{ host: "http://127.0.0.1:${dead}", policy: example, keepalive: false }`)}`);
  });
  after(async () => { await gw?.close(); await up?.close(); await opa?.close(); });

  type Want = { status: number; body?: string; headers?: Record<string, string | undefined>; forwarded?: Record<string, string | undefined> };
  const cases: { desc: string; path: string; method?: string; headers?: Record<string, string>; want: Want }[] = [
    { desc: 'allowed: decision headers sent upstream, an unnamed one removed', path: '/app', headers: { 'x-user': 'alice', 'x-opa-role': 'admin' }, want: { status: 200, forwarded: { 'x-opa-user': 'alice', 'x-opa-role': undefined } } },
    { desc: 'denied with a string reason', path: '/app', headers: { 'x-user': 'bob' }, want: { status: 403, body: 'bob may not GET /app' } },
    { desc: 'denied: the decision depends on the method', path: '/app', method: 'POST', headers: { 'x-user': 'alice' }, want: { status: 403, body: 'alice may not POST /app' } },
    { desc: 'denied with status_code, headers and an object reason', path: '/app', want: { status: 401, body: '{"error":"who are you?"}', headers: { 'www-authenticate': 'Basic realm="opa"' } } },
    { desc: 'boolean decision true', path: '/bool', headers: { 'x-user': 'alice' }, want: { status: 200 } },
    { desc: 'boolean decision false', path: '/bool', headers: { 'x-user': 'bob' }, want: { status: 403, body: '' } },
    { desc: 'with_route, with_service, with_consumer', path: '/ctx', headers: { apikey: 'alice-key' }, want: { status: 200 } },
    { desc: 'without them the policy does not see route, service or consumer', path: '/noctx', headers: { apikey: 'alice-key' }, want: { status: 403, body: '{"route":null,"service":null,"consumer":null}' } },
    { desc: 'undefined decision: 503', path: '/undefined', want: { status: 503, body: '' } },
    { desc: 'unknown package: 503', path: '/nopkg', want: { status: 503 } },
    { desc: 'allow that is not a boolean refuses', path: '/sloppy?allow=yes', want: { status: 403 } },
    { desc: 'status_code that is not a status: 503', path: '/teapot', want: { status: 503 } },
    { desc: 'decision headers that are not headers are dropped', path: '/headerbomb', want: { status: 403, headers: { 'x-ok': '1', 'x-crlf': undefined, 'x-evil': undefined, 'content-length': '0' } } },
    { desc: 'OPA answers garbage: 503', path: '/garbage', want: { status: 503 } },
    { desc: 'OPA answers more than 1 MiB: 503', path: '/huge', want: { status: 503 } },
    { desc: 'OPA too slow: 403', path: '/slow', want: { status: 403 } },
    { desc: 'OPA down: 403', path: '/down', want: { status: 403 } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const before = up.seen.length;
      const res = await request(gw.port, c.path, { method: c.method, headers: c.headers });
      assert.equal(res.status, c.want.status, res.body);
      if (c.want.body !== undefined) assert.equal(res.body, c.want.body);
      for (const [k, v] of Object.entries(c.want.headers ?? {})) assert.equal(res.headers[k], v, k);
      assert.equal(up.seen.length, before + (c.want.status === 200 ? 1 : 0), 'only an allowed request reaches the upstream');
      const seen = c.want.status === 200 ? JSON.parse(res.body) : undefined;
      for (const [k, v] of Object.entries(c.want.forwarded ?? {})) assert.equal(seen.headers[k], v, k);
    });
  }

  it('the input document has APISIX shape', async () => {
    const n = opa.seen.length;
    const res = await request(gw.port, '/shape?a=1&a=2&b=x', { headers: { host: 'Shop.Example:9443', 'x-h': 'v' } });
    assert.equal(res.status, 200);
    const input = inputOf(opa, n) as Record<string, Record<string, unknown>>;
    assert.equal(typeof input.var.timestamp, 'number');
    assert.match(String(input.var.remote_port), /^\d+$/);
    const { timestamp: _t, remote_port: _p, ...vars } = input.var;
    assert.deepEqual({ ...input, var: vars }, {
      type: 'http',
      request: {
        scheme: 'http', method: 'GET', host: 'shop.example', port: gw.port, path: '/shape',
        headers: { host: 'Shop.Example:9443', 'x-h': 'v', connection: 'close' }, query: { a: ['1', '2'], b: 'x' },
      },
      var: { server_addr: '127.0.0.1', server_port: String(gw.port), remote_addr: '127.0.0.1' },
    });
  });

  it('with_route sends the route without its upstream, with_consumer only the username', async () => {
    const n = opa.seen.length;
    await request(gw.port, '/ctx', { headers: { apikey: 'alice-key' } });
    const input = inputOf(opa, n) as Record<string, unknown>;
    assert.deepEqual(input.consumer, { username: 'alice' });
    assert.deepEqual(input.route, { id: 'ctx', uri: '/ctx', service_id: 'svc', plugins: { opa: { host: `http://127.0.0.1:${opa.port}`, policy: 'context', with_route: true, with_service: true, with_consumer: true, timeout: 3000, keepalive: true, keepalive_timeout: 60000, keepalive_pool: 5, ssl_verify: true } }, priority: 0, enable_websocket: false, allow_encoded_slashes: false });
    assert.deepEqual(input.service, { id: 'svc', plugins: { 'key-auth': { header: 'apikey', query: 'apikey', hide_credentials: false, realm: 'key' } } });
  });
});

describe('opa config errors', () => {
  const route = (conf: string) => routeWith('opa', conf);
  const cases: { desc: string; conf: string; want: string }[] = [
    { desc: 'no host', conf: route('{ policy: p }'), want: 'gateway.yaml:2:83: routes[0].plugins.opa: plugin opa: missing required field "host"' },
    { desc: 'no policy', conf: route('{ host: "http://o" }'), want: 'gateway.yaml:2:83: routes[0].plugins.opa: plugin opa: missing required field "policy"' },
    { desc: 'host not http', conf: route('{ host: "unix:/x", policy: p }'), want: 'gateway.yaml:2:91: routes[0].plugins.opa.host: plugin opa: must match pattern ^https?://' },
    { desc: 'policy with a query', conf: route('{ host: "http://o", policy: "p?x=1" }'), want: 'gateway.yaml:2:111: routes[0].plugins.opa.policy: plugin opa: must match pattern ^[^?#\\s]+$' },
    { desc: 'timeout zero', conf: route('{ host: "http://o", policy: p, timeout: 0 }'), want: 'gateway.yaml:2:123: routes[0].plugins.opa.timeout: plugin opa: must be >= 1' },
    { desc: 'empty send_headers_upstream', conf: route('{ host: "http://o", policy: p, send_headers_upstream: [] }'), want: 'gateway.yaml:2:137: routes[0].plugins.opa.send_headers_upstream: plugin opa: must NOT have fewer than 1 items' },
    { desc: 'unparsable host', conf: route('{ host: "http://[x", policy: p }'), want: 'gateway.yaml:2:78: routes[0].plugins.opa: plugin opa: host "http://[x" is not a valid URL' },
  ];
  for (const c of cases) it(c.desc, async () => assert.equal(await configErrors(c.conf), c.want));
});
