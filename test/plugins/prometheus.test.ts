/**
 * prometheus: per-route series on the admin /metrics after real requests,
 * exact values; label values from config escaped; a client cannot add series;
 * a route removed by a reload keeps its series (as APISIX: counters never go
 * back); with 2 workers, /metrics sums both.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFile } from 'node:fs/promises';
import { eventually, fixture, rawExchange, refusedPort, request, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.ts';
import { bodies, startHost } from '../helpers/host.ts';

/** `name{labels}` → value, for the series whose name starts with `prefix`. */
async function scrape(adminPort: number, prefix = 'turnpike_'): Promise<Map<string, number>> {
  const res = await request(adminPort, '/metrics');
  assert.equal(res.status, 200);
  const out = new Map<string, number>();
  for (const line of res.body.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

function pick(m: Map<string, number>, name: string): Record<string, number> {
  return Object.fromEntries([...m].filter(([k]) => k === name || k.startsWith(name + '{')));
}

const BODY = 'hello';
const upstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse) => {
  const code = Number(new URL(req.url!, 'http://x').searchParams.get('status') ?? 200);
  res.writeHead(code, { 'content-type': 'text/plain' });
  res.end(BODY);
  return true;
};

describe('prometheus: per-route series', () => {
  const f = fixture((port) => {
    const node = `{ nodes: { "127.0.0.1:${port}": 1 } }`;
    return `services:
  - { id: svc1, name: orders-service, upstream: ${node} }
routes:
  - { id: with, uris: [/with, /with2/*], hosts: ["api.example.com", "*.example.org"], upstream: ${node}, plugins: { prometheus: {} } }
  - { id: without, uri: /without, upstream: ${node} }
  - { id: auth, uri: /auth, upstream: ${node}, plugins: { prometheus: {}, key-auth: {} } }
  - { id: named, name: orders, uri: /named, service_id: svc1, plugins: { prometheus: { prefer_name: true } } }
  - { id: mock, uri: /mock, plugins: { prometheus: {}, mocking: { response_status: 201, response_example: "mocked" } } }
consumers:
  - { username: alice, plugins: { key-auth: { key: alice-key } } }
`;
  }, { handler: upstreamHandler });

  const cases: { desc: string; path: string; headers?: Record<string, string>; times: number; want: number }[] = [
    { desc: 'exact host pattern, first uri', path: '/with', headers: { host: 'api.example.com' }, times: 3, want: 200 },
    { desc: 'wildcard host pattern, second uri', path: '/with2/a/b', headers: { host: 'x.example.org' }, times: 2, want: 200 },
    { desc: 'an upstream 503', path: '/with?status=503', headers: { host: 'api.example.com' }, times: 1, want: 503 },
    { desc: 'a route without the plugin', path: '/without', times: 4, want: 200 },
    { desc: 'key-auth refuses: no consumer', path: '/auth', times: 1, want: 401 },
    { desc: 'key-auth names alice', path: '/auth', headers: { apikey: 'alice-key' }, times: 2, want: 200 },
    { desc: 'prefer_name: route and service names', path: '/named', times: 1, want: 200 },
    { desc: 'no upstream: node is empty', path: '/mock', times: 1, want: 201 },
  ];

  before(async () => {
    for (const c of cases) {
      for (let i = 0; i < c.times; i++) assert.equal((await request(f.gw.port, c.path, { headers: c.headers })).status, c.want, c.desc);
    }
  });

  it('http_status: one series per code, route, matched pattern, service, consumer and node; routes without the plugin absent', async () => {
    const m = await scrape(f.gw.adminPort);
    assert.deepEqual(pick(m, 'turnpike_http_status'), {
      'turnpike_http_status{code="200",route="with",matched_uri="/with",matched_host="api.example.com",service="",consumer="",node="127.0.0.1"}': 3,
      'turnpike_http_status{code="200",route="with",matched_uri="/with2/*",matched_host="*.example.org",service="",consumer="",node="127.0.0.1"}': 2,
      'turnpike_http_status{code="503",route="with",matched_uri="/with",matched_host="api.example.com",service="",consumer="",node="127.0.0.1"}': 1,
      'turnpike_http_status{code="401",route="auth",matched_uri="/auth",matched_host="",service="",consumer="",node=""}': 1,
      'turnpike_http_status{code="200",route="auth",matched_uri="/auth",matched_host="",service="",consumer="alice",node="127.0.0.1"}': 2,
      'turnpike_http_status{code="200",route="orders",matched_uri="/named",matched_host="",service="orders-service",consumer="",node="127.0.0.1"}': 1,
      'turnpike_http_status{code="201",route="mock",matched_uri="/mock",matched_host="",service="",consumer="",node=""}': 1,
    });
    // Every request, with the plugin or not, is in the host's own counters.
    assert.equal(m.get('turnpike_http_requests_total'), 15);
    assert.equal(m.get('turnpike_http_responses_total{class="2xx"}'), 13);
  });

  it('http_latency: request and turnpike for every request, upstream only with an upstream', async () => {
    const m = await scrape(f.gw.adminPort);
    const count = (type: string, route: string, consumer = '', node = '127.0.0.1') => m.get(`turnpike_http_latency_count{type="${type}",route="${route}",service="",consumer="${consumer}",node="${node}"}`);
    assert.deepEqual([count('request', 'with'), count('upstream', 'with'), count('turnpike', 'with')], [6, 6, 6]);
    assert.deepEqual([count('request', 'mock', '', ''), count('upstream', 'mock', '', ''), count('turnpike', 'mock', '', '')], [1, undefined, 1]);
    assert.equal(count('request', 'auth', 'alice'), 2);
    // APISIX's buckets, cumulative, ending in +Inf = count.
    const les = [...m.keys()].filter((k) => k.startsWith('turnpike_http_latency_bucket{type="request",route="with",')).map((k) => /le="([^"]+)"/.exec(k)![1]);
    assert.deepEqual(les, ['1', '2', '5', '10', '20', '50', '100', '200', '500', '1000', '2000', '5000', '10000', '30000', '60000', '+Inf']);
    assert.equal(m.get('turnpike_http_latency_bucket{type="request",route="with",service="",consumer="",node="127.0.0.1",le="+Inf"}'), 6);
    assert.equal([...m.keys()].some((k) => k.includes('route="without"')), false);
  });

  it('bandwidth: ingress and egress are the bytes of the exchange, exactly', async () => {
    const before = await scrape(f.gw.adminPort);
    const key = (type: string) => `turnpike_bandwidth{type="${type}",route="mock",service="",consumer="",node=""}`;
    const req = 'POST /mock HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world';
    const res = await rawExchange(f.gw.port, req);
    assert.match(res, /^HTTP\/1\.1 201 /);
    const after = await scrape(f.gw.adminPort);
    assert.equal(after.get(key('ingress'))! - before.get(key('ingress'))!, Buffer.byteLength(req));
    assert.equal(after.get(key('egress'))! - before.get(key('egress'))!, Buffer.byteLength(res, 'latin1'));
  });

  it("APISIX's export_uri, /apisix/prometheus/metrics, serves the same text on the admin listener", async () => {
    const res = await request(f.gw.adminPort, '/apisix/prometheus/metrics');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4');
    assert.match(res.body, /^turnpike_http_status\{/m);
  });

  it('host series: connections, node info, Node runtime metrics', async () => {
    const m = await scrape(f.gw.adminPort);
    assert.ok(m.get('turnpike_http_current_connections{state="accepted"}')! >= 16);
    assert.equal(m.get('turnpike_http_current_connections{state="handled"}'), m.get('turnpike_http_current_connections{state="accepted"}'));
    assert.equal(typeof m.get('turnpike_http_current_connections{state="active"}'), 'number');
    assert.equal([...m.keys()].filter((k) => k.startsWith('turnpike_node_info{')).length, 1);
    assert.ok(m.has('turnpike_process_resident_memory_bytes'));
    assert.ok([...m.keys()].some((k) => k.startsWith('turnpike_nodejs_heap_size_used_bytes')));
  });
});

describe('prometheus: hostile input', () => {
  // As many hosts as a loaded CI machine serves in a few seconds: any number above the 2 series makes the point.
  const HOSTS = 3000;
  let up: Upstream;
  let g: TestGateway;
  before(async () => {
    up = await startUpstream(upstreamHandler);
    const node = `{ nodes: { "127.0.0.1:${up.port}": 1 } }`;
    g = await startGateway(`routes:
  - { id: wild, uri: /w, hosts: ["*.example.com"], upstream: ${node}, plugins: { prometheus: {} } }
  - { id: any, uri: /a, upstream: ${node}, plugins: { prometheus: {} } }
  - { id: quoted, name: "say \\"hi\\"\\nback\\\\slash", uri: /q, upstream: ${node}, plugins: { prometheus: { prefer_name: true } } }
`);
  });
  after(async () => { await g?.close(); await up?.close(); });

  it('3,000 distinct Host headers add no series: matched_host is the pattern', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
    for (let i = 0; i < HOSTS; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => request(g.port, (i + j) % 2 ? '/w' : '/a', { headers: { host: `h${i + j}.example.com` }, agent })));
    }
    agent.destroy();
    const m = await scrape(g.adminPort);
    assert.deepEqual(pick(m, 'turnpike_http_status'), {
      'turnpike_http_status{code="200",route="wild",matched_uri="/w",matched_host="*.example.com",service="",consumer="",node="127.0.0.1"}': HOSTS / 2,
      'turnpike_http_status{code="200",route="any",matched_uri="/a",matched_host="",service="",consumer="",node="127.0.0.1"}': HOSTS / 2,
    });
    assert.equal([...m.keys()].filter((k) => k.startsWith('turnpike_http_latency_count')).length, 6);
  });

  it('a Host with quotes is refused before any route; a label value with quotes, newline and backslash comes out escaped', async () => {
    assert.equal((await request(g.port, '/a', { headers: { host: 'x"} evil 1\\' } })).status, 400);
    assert.equal((await request(g.port, '/q')).status, 200);
    const text = (await request(g.adminPort, '/metrics')).body;
    assert.ok(!text.includes('evil'), 'the raw Host never becomes a label');
    assert.ok(text.includes('turnpike_http_status{code="200",route="say \\"hi\\"\\nback\\\\slash",matched_uri="/q",'), text.split('\n').filter((l) => l.includes('/q')).join('\n'));
  });
});

describe('logger drop counters', () => {
  let up: Upstream;
  let g: TestGateway;
  before(async () => {
    up = await startUpstream(upstreamHandler);
    const sink = await refusedPort();
    g = await startGateway(`routes:
  - { id: logged, uri: /logged, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }, plugins: { http-logger: { uri: "http://127.0.0.1:${sink}/logs", batch_max_size: 1, max_retry_count: 0 } } }
`);
  });
  after(async () => { await g?.close(); await up?.close(); });

  it('entries a logger gives up on (its sink down) are counted in turnpike_logger_dropped_total', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await request(g.port, '/logged')).status, 200);
    const m = await eventually(async () => { const s = await scrape(g.adminPort); return s.get('turnpike_logger_dropped_total{plugin="http-logger"}') === 3 ? s : undefined; }, 10_000, 50);
    assert.equal(m.get('turnpike_logger_dropped_total{plugin="http-logger"}'), 3);
  });
});

describe('prometheus: reload', () => {
  const f = fixture((port) => `routes:
  - { id: gone, uri: /gone, upstream: { nodes: { "127.0.0.1:${port}": 1 } }, plugins: { prometheus: {} } }
  - { id: kept, uri: /kept, upstream: { nodes: { "127.0.0.1:${port}": 1 } }, plugins: { prometheus: {} } }
`, { handler: upstreamHandler });

  it('a removed route keeps its series until restart (as APISIX); a kept route goes on counting', async () => {
    await request(f.gw.port, '/gone');
    await request(f.gw.port, '/kept');
    await writeFile(f.gw.file, `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nroutes:\n  - { id: kept, uri: /kept, upstream: { nodes: { "127.0.0.1:${f.up.port}": 1 } }, plugins: { prometheus: {} } }\n`);
    assert.equal((await f.gw.gw.reload('test')).ok, true);
    assert.equal((await request(f.gw.port, '/gone')).status, 404);
    await request(f.gw.port, '/kept');
    const m = await scrape(f.gw.adminPort);
    assert.deepEqual(pick(m, 'turnpike_http_status'), {
      'turnpike_http_status{code="200",route="gone",matched_uri="/gone",matched_host="",service="",consumer="",node="127.0.0.1"}': 1,
      'turnpike_http_status{code="200",route="kept",matched_uri="/kept",matched_host="",service="",consumer="",node="127.0.0.1"}': 2,
    });
  });
});

describe('prometheus: a host with 2 workers', () => {
  let h: Awaited<ReturnType<typeof startHost>>;
  before(async () => {
    h = await startHost('one');
    const { readFile } = await import('node:fs/promises');
    await writeFile(h.file, (await readFile(h.file, 'utf8')) + 'global_rules:\n  - id: metrics\n    plugins:\n      prometheus: {}\n');
    assert.equal((await h.host.reload('test')).ok, true);
  });
  after(async () => { await h?.close(); });

  it('sums both workers: counters, histograms and connections; runtime metrics per worker', async () => {
    assert.deepEqual(await bodies(h.host.port, 60), Array(60).fill('200 one'));
    const st = await h.status();
    assert.ok(st.workers.every((w) => w.requests > 0), JSON.stringify(st.workers));
    const m = await scrape(h.host.adminPort!);
    assert.deepEqual(pick(m, 'turnpike_http_status'), { 'turnpike_http_status{code="200",route="r",matched_uri="/x",matched_host="",service="",consumer="",node=""}': 60 });
    assert.equal(m.get('turnpike_http_latency_count{type="request",route="r",service="",consumer="",node=""}'), 60);
    assert.equal(m.get('turnpike_http_requests_total'), 60);
    assert.equal(m.get('turnpike_http_current_connections{state="accepted"}'), 60);
    assert.equal(m.get('turnpike_metrics_workers_missing'), 0);
    assert.equal(pick(m, 'turnpike_node_info').constructor, Object);
    assert.equal(Object.keys(pick(m, 'turnpike_node_info')).length, 1);
    const heaps = [...m.keys()].filter((k) => k.startsWith('turnpike_nodejs_heap_size_used_bytes{')).map((k) => /worker="([^"]+)"/.exec(k)?.[1]).sort();
    assert.deepEqual(heaps, ['0', '1', 'main']);
    assert.equal([...m.keys()].filter((k) => k.startsWith('turnpike_process_resident_memory_bytes')).length, 1);
  });

  it('a worker that does not answer is left out and counted; /metrics still answers', async () => {
    h.host.hook(1, 'block');
    const m = await scrape(h.host.adminPort!);
    assert.equal(m.get('turnpike_metrics_workers_missing'), 1);
    assert.ok(m.get('turnpike_http_requests_total')! > 0);
  });
});
