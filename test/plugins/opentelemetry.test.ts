import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { captureLogs, eventually, refusedPort, request, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.ts';
import { loadIssues, pluginConfigErrors } from '../helpers/load.ts';
import { tracingStats } from '../../plugins/opentelemetry/provider.ts';
import { Host } from '../../src/runtime/supervisor.ts';
import { loadConfigText } from '../../src/config/load.ts';
import { FunctionPools } from '../../src/serverless/pool.ts';

/** A span as the OTLP/HTTP JSON receiver decoded it: attributes flattened to values. */
interface Got { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; status: { code?: number; message?: string }; attrs: Record<string, unknown>; resource: Record<string, unknown> }

/** A local OTLP/HTTP receiver (JSON, POST /v1/traces); `mode` makes it fail or hang. */
interface Receiver { port: number; spans: Got[]; posts: number; headers: http.IncomingHttpHeaders[]; mode: 'ok' | 'error' | 'hang'; close(): Promise<void> }

function flatten(list: { key: string; value: Record<string, unknown> }[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list ?? []) {
    const v = value.stringValue ?? value.boolValue ?? value.doubleValue ?? value.intValue;
    out[key] = typeof v === 'string' && value.intValue !== undefined ? Number(v) : v;
  }
  return out;
}

async function startReceiver(): Promise<Receiver> {
  const r: Receiver = { port: 0, spans: [], posts: 0, headers: [], mode: 'ok', close: async () => {} };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      r.posts++;
      r.headers.push(req.headers);
      if (r.mode === 'hang') return;
      if (r.mode === 'error') { res.writeHead(500); res.end('no'); return; }
      assert.equal(req.url, '/v1/traces');
      assert.equal(req.headers['content-type'], 'application/json');
      const body = JSON.parse(Buffer.concat(chunks).toString());
      for (const rs of body.resourceSpans) {
        const resource = flatten(rs.resource?.attributes);
        for (const ss of rs.scopeSpans) for (const s of ss.spans) r.spans.push({ traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || undefined, name: s.name, kind: s.kind, status: s.status ?? {}, attrs: flatten(s.attributes), resource });
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  r.port = (server.address() as AddressInfo).port;
  r.close = () => new Promise<void>((ok) => { server.closeAllConnections(); server.close(() => ok()); });
  return r;
}

const FAST = 'batch_span_processor: { batch_timeout: 0.05, inactive_timeout: 0.05 }';
const metadata = (address: string, extra = FAST) => `plugin_metadata:\n  - id: opentelemetry\n    collector: { address: "${address}", request_timeout: 1 }\n    ${extra}\n`;
const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const P = '00f067aa0ba902b7';
/** A fresh trace id per call, so each request's spans are told apart. */
let n = 0;
const tid = () => (++n).toString(16).padStart(32, 'a');

/** The traceparent the upstream received (the echo upstream answers with the request it saw). */
function upstreamParent(body: string): { traceId: string; parentId: string; flags: string } {
  const tp = JSON.parse(body).headers.traceparent as string;
  const [, traceId, parentId, flags] = tp.split('-');
  return { traceId, parentId, flags };
}

describe('opentelemetry', () => {
  let rx: Receiver;
  let up: Upstream;
  let gw: TestGateway;
  let dead: number;
  const trace = (id: string) => rx.spans.filter((s) => s.traceId === id);
  /** Waits for `count` spans of trace `id`. */
  const spansOf = (id: string, count = 2) => eventually(() => (trace(id).length >= count ? trace(id) : undefined), 5000);
  /** A sampled request sent after others, waited for: what they would have exported has arrived by then. */
  async function settled(): Promise<void> {
    const id = tid();
    assert.equal((await request(gw.port, '/on', { headers: { traceparent: `00-${id}-${P}-01` } })).status, 200);
    await spansOf(id);
  }

  before(async () => {
    rx = await startReceiver();
    up = await startUpstream((req, res) => {
      if (req.url === '/fail') { res.writeHead(503); res.end('down'); return true; }
      return false;
    });
    dead = await refusedPort();
    const node = `{ nodes: { "127.0.0.1:${up.port}": 1 } }`;
    const route = (id: string, sampler: string, extra = '') => `  - { id: ${id}, uri: /${id}, upstream: ${node}, plugins: { opentelemetry: { sampler: ${sampler}${extra} } } }\n`;
    gw = await startGateway(`${metadata(`127.0.0.1:${rx.port}`)}services:
  - { id: svc, name: orders, upstream: ${node} }
routes:
${route('on', '{ name: always_on }')}${route('off', '{ name: always_off }')}${route('default', '{}')}${route('ratio0', '{ name: trace_id_ratio, options: { fraction: 0 } }')}${route('ratio1', '{ name: trace_id_ratio, options: { fraction: 1 } }')}${route('parent', '{ name: parent_base }')}${route('parent-root-on', '{ name: parent_base, options: { root: { name: always_on } } }')}${route('attrs', '{ name: always_on }', ', additional_attributes: [http_x_tenant, $remote_addr, route_id, arg_page, status, not_set], additional_header_prefix_attributes: ["x-team-*", X-Exact, "*"]')}  - { id: svc-route, name: list-orders, uri: /svc, service_id: svc, plugins: { opentelemetry: { sampler: { name: always_on } } } }
  - { id: fail, uri: /fail, upstream: ${node}, plugins: { opentelemetry: { sampler: { name: always_on } } } }
  - { id: refused, uri: /refused, upstream: { nodes: { "127.0.0.1:${dead}": 1 } }, plugins: { opentelemetry: { sampler: { name: always_on } } } }
  - id: retry
    uri: /retry
    upstream: { type: roundrobin, retries: 1, nodes: { "127.0.0.1:${dead}": 1, "127.0.0.1:${up.port}": 1 } }
    plugins: { opentelemetry: { sampler: { name: always_on } } }
  - { id: plain, uri: /plain, upstream: ${node} }
`);
  });
  after(async () => {
    await gw?.close();
    await up?.close();
    await rx?.close();
  });

  it('a server span and a client span, parent and child; the upstream gets the client span as parent', async () => {
    const res = await request(gw.port, '/svc?x=1', { headers: { 'user-agent': 'ua/1' } });
    assert.equal(res.status, 200);
    const sent = upstreamParent(res.body);
    assert.equal(sent.flags, '01');
    const spans = await spansOf(sent.traceId);
    assert.equal(spans.length, 2);
    const server = spans.find((s) => s.kind === 2)!;
    const client = spans.find((s) => s.kind === 3)!;
    assert.equal(server.parentSpanId, undefined);
    assert.equal(client.parentSpanId, server.spanId);
    assert.equal(sent.parentId, client.spanId);
    assert.equal(server.name, 'GET /svc');
    assert.deepEqual(server.attrs, {
      'net.host.name': '127.0.0.1', 'http.host': '127.0.0.1', 'http.method': 'GET', 'http.scheme': 'http', 'http.target': '/svc?x=1',
      'http.request.method': 'GET', 'url.scheme': 'http', 'url.path': '/svc', 'turnpike.route_id': 'svc-route', 'http.route': '/svc',
      'http.user_agent': 'ua/1', 'user_agent.original': 'ua/1', 'turnpike.route_name': 'list-orders', 'turnpike.service_id': 'svc', 'turnpike.service_name': 'orders',
      'http.status_code': 200, 'http.response.status_code': 200, 'turnpike.response_source': 'upstream',
    });
    assert.equal(server.status.code ?? 0, 0);
    assert.equal(client.name, `GET 127.0.0.1:${up.port}`);
    assert.deepEqual(client.attrs, {
      'net.peer.name': '127.0.0.1', 'net.peer.port': up.port, 'server.address': '127.0.0.1', 'server.port': up.port,
      'http.method': 'GET', 'http.request.method': 'GET', 'http.status_code': 200, 'http.response.status_code': 200,
    });
    assert.equal(server.resource['service.name'], 'turnpike');
  });

  it('continues the trace of an incoming traceparent, and passes tracestate on', async () => {
    const res = await request(gw.port, '/on', { headers: { traceparent: `00-${T}-${P}-01`, tracestate: 'vendor=abc' } });
    const sent = upstreamParent(res.body);
    assert.equal(sent.traceId, T);
    assert.equal(JSON.parse(res.body).headers.tracestate, 'vendor=abc');
    const spans = await spansOf(T);
    const server = spans.find((s) => s.kind === 2)!;
    assert.equal(server.parentSpanId, P);
    assert.equal(spans.find((s) => s.kind === 3)!.spanId, sent.parentId);
  });

  const samplers = [
    { desc: 'always_on, no parent', path: '/on', parent: undefined, want: { exported: true, flags: '01' } },
    { desc: 'always_on, unsampled parent', path: '/on', parent: '00', want: { exported: true, flags: '01' } },
    { desc: 'always_off (still propagates, unsampled)', path: '/off', parent: undefined, want: { exported: false, flags: '00' } },
    { desc: 'always_off, sampled parent', path: '/off', parent: '01', want: { exported: false, flags: '00' } },
    { desc: 'no sampler: APISIX default always_off', path: '/default', parent: undefined, want: { exported: false, flags: '00' } },
    { desc: 'trace_id_ratio 0', path: '/ratio0', parent: undefined, want: { exported: false, flags: '00' } },
    { desc: 'trace_id_ratio 1', path: '/ratio1', parent: undefined, want: { exported: true, flags: '01' } },
    { desc: 'parent_base, sampled parent', path: '/parent', parent: '01', want: { exported: true, flags: '01' } },
    { desc: 'parent_base, unsampled parent', path: '/parent', parent: '00', want: { exported: false, flags: '00' } },
    { desc: 'parent_base, no parent: root always_off', path: '/parent', parent: undefined, want: { exported: false, flags: '00' } },
    { desc: 'parent_base, no parent: root always_on', path: '/parent-root-on', parent: undefined, want: { exported: true, flags: '01' } },
    { desc: 'parent_base root always_on, unsampled parent', path: '/parent-root-on', parent: '00', want: { exported: false, flags: '00' } },
  ];
  it('samplers: what is exported, and the flags passed upstream', async () => {
    const sent: { desc: string; traceId: string; want: { exported: boolean; flags: string } }[] = [];
    for (const s of samplers) {
      const id = tid();
      const res = await request(gw.port, s.path, { headers: s.parent ? { traceparent: `00-${id}-${P}-${s.parent}` } : {} });
      assert.equal(res.status, 200, s.desc);
      const up = upstreamParent(res.body);
      if (s.parent) assert.equal(up.traceId, id, s.desc);
      assert.match(up.parentId, /^[0-9a-f]{16}$/, s.desc);
      assert.notEqual(up.parentId, P, s.desc);
      assert.equal(up.flags, s.want.flags, s.desc);
      sent.push({ desc: s.desc, traceId: up.traceId, want: s.want });
    }
    await settled();
    for (const s of sent) {
      if (s.want.exported) assert.equal((await spansOf(s.traceId)).length, 2, s.desc);
      else assert.equal(trace(s.traceId).length, 0, s.desc);
    }
  });

  it('additional_attributes and additional_header_prefix_attributes', async () => {
    const id = tid();
    await request(gw.port, '/attrs?page=3', { headers: { traceparent: `00-${id}-${P}-01`, 'x-tenant': 'acme', 'x-team-a': 'red', 'x-team-b': 'blue', 'x-exact': 'yes', 'x-other': 'no' } });
    const server = (await spansOf(id)).find((s) => s.kind === 2)!;
    const picked = Object.fromEntries(Object.entries(server.attrs).filter(([k]) => !k.includes('.')));
    assert.deepEqual(picked, { http_x_tenant: 'acme', remote_addr: '127.0.0.1', route_id: 'attrs', arg_page: '3', status: '200', 'x-team-a': 'red', 'x-team-b': 'blue', 'x-exact': 'yes' });
  });

  it('a retry on another node: two client spans under the server span, the upstream sees the second', async () => {
    // Round robin over a dead node and a live one: of two requests, one starts on the dead node.
    let retried: Got[] | undefined;
    let parentId = '';
    for (let i = 0; i < 4 && !retried; i++) {
      const res = await request(gw.port, '/retry');
      assert.equal(res.status, 200);
      const sent = upstreamParent(res.body);
      await spansOf(sent.traceId);
      await settled();
      if (trace(sent.traceId).length === 3) { retried = trace(sent.traceId); parentId = sent.parentId; }
    }
    assert.ok(retried, 'no request was retried');
    const server = retried.find((s) => s.kind === 2)!;
    const clients = retried.filter((s) => s.kind === 3);
    assert.deepEqual(clients.map((c) => c.parentSpanId), [server.spanId, server.spanId]);
    const failed = clients.find((c) => c.attrs['net.peer.port'] === dead)!;
    const ok = clients.find((c) => c.attrs['net.peer.port'] === up.port)!;
    assert.equal(failed.status.code, 2);
    assert.equal(failed.attrs['error.type'], 'ECONNREFUSED');
    assert.equal(failed.attrs['http.status_code'], undefined);
    assert.equal(ok.status.code ?? 0, 0);
    assert.equal(ok.attrs['http.status_code'], 200);
    assert.equal(ok.attrs['http.request.resend_count'], 1);
    assert.equal(ok.spanId, parentId);
    assert.equal(server.status.code ?? 0, 0);
  });

  const errors = [
    { desc: 'refused connection: 502 by the gateway', path: '/refused', want: { status: 502, server: 'turnpike error: 502', clientError: 'ECONNREFUSED' } },
    { desc: 'the upstream answers 503', path: '/fail', want: { status: 503, server: 'upstream error: 503', clientError: undefined } },
  ];
  for (const e of errors) {
    it(`status ERROR on 5xx: ${e.desc}`, async () => {
      const id = tid();
      assert.equal((await request(gw.port, e.path, { headers: { traceparent: `00-${id}-${P}-01` } })).status, e.want.status);
      const spans = await spansOf(id);
      const server = spans.find((s) => s.kind === 2)!;
      const client = spans.find((s) => s.kind === 3)!;
      assert.deepEqual(server.status, { code: 2, message: e.want.server });
      assert.equal(server.attrs['http.status_code'], e.want.status);
      assert.equal(client.status.code, 2);
      assert.equal(client.attrs['error.type'], e.want.clientError);
    });
  }

  const hostile = [
    { desc: 'too short', tp: `00-${T.slice(2)}-${P}-01` },
    { desc: 'too long trace id', tp: `00-${T}ab-${P}-01` },
    { desc: 'version ff', tp: `ff-${T}-${P}-01` },
    { desc: 'all-zero trace id', tp: `00-${'0'.repeat(32)}-${P}-01` },
    { desc: 'all-zero parent id', tp: `00-${T}-${'0'.repeat(16)}-01` },
    { desc: 'upper-case hex', tp: `00-${T.toUpperCase()}-${P}-01` },
    { desc: 'version 00 with trailing data', tp: `00-${T}-${P}-01-extra` },
    { desc: 'not hex', tp: `00-${'z'.repeat(32)}-${P}-01` },
    { desc: 'garbage', tp: 'hello' },
    { desc: 'two traceparent headers', tp: [`00-${T}-${P}-01`, `00-${T}-${P}-01`] },
  ];
  it('malformed traceparent headers are ignored: a new trace starts, their tracestate is dropped', async () => {
    for (const h of hostile) {
      const res = await request(gw.port, '/on', { headers: { traceparent: h.tp, tracestate: 'evil=1' } });
      assert.equal(res.status, 200, h.desc);
      const sent = upstreamParent(res.body);
      assert.notEqual(sent.traceId, T, h.desc);
      assert.equal(sent.flags, '01', h.desc);
      assert.equal(JSON.parse(res.body).headers.tracestate, undefined, h.desc);
      const server = (await spansOf(sent.traceId)).find((s) => s.kind === 2)!;
      assert.equal(server.parentSpanId, undefined, h.desc);
    }
    assert.equal(trace(T).filter((s) => s.parentSpanId === P).length, 1); // only the valid one of the earlier test
  });

  it('a route without the plugin passes the client\'s traceparent as is and costs no span', async () => {
    const before = rx.spans.length;
    const tp = `00-${tid()}-${P}-01`;
    const res = await request(gw.port, '/plain', { headers: { traceparent: tp } });
    assert.equal(JSON.parse(res.body).headers.traceparent, tp);
    await settled();
    assert.equal(rx.spans.length, before + 2);
  });
});

describe('opentelemetry: collector trouble never holds a request', () => {
  const cases = [
    { desc: 'collector down (connection refused)', mode: 'refused' as const },
    { desc: 'collector answers 500', mode: 'error' as const },
    { desc: 'collector accepts and never answers', mode: 'hang' as const },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const rx = await startReceiver();
      rx.mode = c.mode === 'refused' ? 'ok' : c.mode;
      const up = await startUpstream();
      const address = c.mode === 'refused' ? `127.0.0.1:${await refusedPort()}` : `127.0.0.1:${rx.port}`;
      const gw = await startGateway(`${metadata(address, 'batch_span_processor: { max_queue_size: 8, max_export_batch_size: 4, batch_timeout: 0.05, inactive_timeout: 0.05 }')}routes:
  - { id: r, uri: /r, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }, plugins: { opentelemetry: { sampler: { name: always_on } } } }
`);
      try {
        const was = tracingStats();
        const logs = captureLogs();
        const statuses = await Promise.all(Array.from({ length: 60 }, () => request(gw.port, '/r').then((r) => r.status)));
        assert.deepEqual(new Set(statuses), new Set([200]));
        const now = tracingStats();
        assert.ok(now.queued <= 8, `queued ${now.queued}`);
        assert.equal(now.maxQueue, 8);
        assert.equal(now.exported, was.exported);
        // 120 spans: what the queue and the export in progress cannot hold is counted as dropped.
        await eventually(() => tracingStats().dropped - was.dropped >= 120 - 8 - 4, 8000);
        if (c.mode !== 'refused') assert.ok(rx.posts >= 1);
        // The loss is logged (once a minute at most) through a later traced request.
        assert.equal((await request(gw.port, '/r')).status, 200);
        logs.restore();
        const lines = logs.lines.filter((l) => l.msg === 'opentelemetry dropped spans');
        assert.equal(lines.length, 1);
        assert.equal(lines[0].level, 'warn');
        assert.equal(lines[0].route, 'r');
        assert.ok((lines[0].dropped as number) >= 1);
        assert.match(String(lines[0].reason), /^(export failed: .+|over max_queue_size \(8\) spans waiting for the collector)$/);
      } finally {
        await gw.close();
        await up.close();
        await rx.close();
      }
    });
  }
});

describe('opentelemetry: the provider across reloads and shutdown', () => {
  it('a reload that changes the collector replaces the provider (one alive), spans go to the new one', async () => {
    const receivers = [await startReceiver(), await startReceiver(), await startReceiver()];
    const up = await startUpstream();
    const conf = (rx: Receiver, name: string) => `${metadata(`127.0.0.1:${rx.port}`)}    resource: { service.name: ${name} }
routes:
  - { id: r, uri: /r, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }, plugins: { opentelemetry: { sampler: { name: always_on } } } }
`;
    const gw = await startGateway(conf(receivers[0], 'first'));
    try {
      const was = tracingStats();
      for (const [i, rx] of receivers.entries()) {
        if (i > 0) {
          await writeFile(gw.file, `listen: 127.0.0.1:0\n${conf(rx, `v${i}`)}`);
          assert.equal((await gw.gw.reload()).ok, true);
        }
        assert.equal((await request(gw.port, '/r')).status, 200);
        const spans = await eventually(() => (rx.spans.length >= 2 ? rx.spans : undefined), 5000);
        assert.equal(spans[0].resource['service.name'], i === 0 ? 'first' : `v${i}`);
        assert.equal(tracingStats().live, 1);
      }
      assert.equal(tracingStats().created - was.created, 3);
      // A reload that leaves the settings alone keeps the provider.
      await writeFile(gw.file, `listen: 127.0.0.1:0\n${conf(receivers[2], 'v2')}\n# touched\n`);
      assert.equal((await gw.gw.reload()).ok, true);
      await request(gw.port, '/r');
      assert.equal(tracingStats().created - was.created, 3);
    } finally {
      await gw.close();
      await up.close();
      for (const rx of receivers) await rx.close();
    }
    assert.equal(tracingStats().live, 0);
  });

  it('closing the gateway (SIGTERM drain) flushes spans still waiting for their batch', async () => {
    const rx = await startReceiver();
    const up = await startUpstream();
    const gw = await startGateway(`${metadata(`127.0.0.1:${rx.port}`, 'batch_span_processor: { batch_timeout: 600, inactive_timeout: 600, max_export_batch_size: 100 }')}routes:
  - { id: r, uri: /r, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }, plugins: { opentelemetry: { sampler: { name: always_on } } } }
`);
    try {
      assert.equal((await request(gw.port, '/r')).status, 200);
      assert.equal(rx.spans.length, 0);
      await gw.close();
      assert.equal(rx.spans.length, 2);
    } finally {
      await up.close();
      await rx.close();
    }
  });

  it('with 2 worker threads: the spans of every worker are flushed when the host drains (SIGTERM)', async () => {
    const rx = await startReceiver();
    const up = await startUpstream();
    const dir = await mkdtemp(path.join(tmpdir(), 'turnpike-otel-'));
    const file = path.join(dir, 'gateway.yaml');
    await writeFile(file, `listen: 127.0.0.1:0\nadmin: { enabled: false }\n${metadata(`127.0.0.1:${rx.port}`, 'batch_span_processor: { batch_timeout: 600, inactive_timeout: 600, max_export_batch_size: 1000 }')}routes:
  - { id: r, uri: /r, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }, plugins: { opentelemetry: { sampler: { name: always_on } } } }
`);
    const host = await Host.start({ config: file, env: {}, watch: false, workers: 2 });
    try {
      const traces = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const res = await request(host.port, '/r');
        assert.equal(res.status, 200);
        traces.add(upstreamParent(res.body).traceId);
      }
      assert.equal(rx.spans.length, 0);
      await host.close(2000);
      assert.deepEqual(new Set(rx.spans.map((s) => s.traceId)), traces);
      assert.equal(rx.spans.length, 40);
    } finally {
      await host.close(0).catch(() => {});
      await up.close();
      await rx.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('APISIX\'s plugin_attr spelling, request_headers, set_ngx_var and trace_id_source x-request-id', async () => {
    const rx = await startReceiver();
    const up = await startUpstream();
    const gw = await startGateway(`plugin_attr:
  opentelemetry:
    trace_id_source: x-request-id
    set_ngx_var: true
    collector: { address: "http://127.0.0.1:${rx.port}", request_timeout: 1, request_headers: { Authorization: "token s3cret" } }
    ${FAST}
routes:
  - id: r
    uri: /r
    upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }
    plugins:
      opentelemetry: { sampler: { name: always_on } }
      serverless-post-function:
        phase: access
        functions: ["return (conf, ctx) => { ctx.request.headers['x-seen-trace'] = ctx.vars.opentelemetry_trace_id; }"]
`);
    try {
      const rid = 'ABCDEF0123456789abcdef0123456789';
      const res = await request(gw.port, '/r', { headers: { 'x-request-id': rid } });
      assert.equal(res.status, 200);
      const seen = JSON.parse(res.body).headers;
      assert.equal(seen['x-seen-trace'], rid.toLowerCase());
      assert.equal(upstreamParent(res.body).traceId, rid.toLowerCase());
      await eventually(() => rx.spans.length >= 2, 5000);
      assert.equal(rx.headers[0].authorization, 'token s3cret');
      // Not 32 hex digits: a random trace id.
      const other = await request(gw.port, '/r', { headers: { 'x-request-id': 'not-a-trace-id' } });
      assert.match(upstreamParent(other.body).traceId, /^[0-9a-f]{32}$/);
    } finally {
      await gw.close();
      await up.close();
      await rx.close();
    }
  });
});

describe('opentelemetry: config', () => {
  const pools = new FunctionPools();
  after(() => pools.close());
  const route = 'routes:\n  - { id: r, uri: /r, upstream: { nodes: { "127.0.0.1:80": 1 } }, plugins: { opentelemetry: {} } }\n';
  const cases = [
    { desc: 'sampler name', conf: { sampler: { name: 'sometimes' } }, want: ['routes[0].plugins.opentelemetry.sampler.name: plugin opentelemetry: must be one of: "always_on", "always_off", "trace_id_ratio", "parent_base"'] },
    { desc: 'fraction over 1', conf: { sampler: { name: 'trace_id_ratio', options: { fraction: 2 } } }, want: ['routes[0].plugins.opentelemetry.sampler.options.fraction: plugin opentelemetry: must be <= 1'] },
    { desc: 'parent_base root cannot be parent_base', conf: { sampler: { name: 'parent_base', options: { root: { name: 'parent_base' } } } }, want: ['routes[0].plugins.opentelemetry.sampler.options.root.name: plugin opentelemetry: must be one of: "always_on", "always_off", "trace_id_ratio"'] },
    { desc: 'empty attribute name', conf: { additional_attributes: [''] }, want: ['routes[0].plugins.opentelemetry.additional_attributes[0]: plugin opentelemetry: must NOT have fewer than 1 characters'] },
    { desc: 'valid', conf: { sampler: { name: 'parent_base', options: { root: { name: 'trace_id_ratio', options: { fraction: 0.5 } } } }, additional_attributes: ['$http_x'] }, want: [] },
  ];
  for (const c of cases) {
    it(`route config: ${c.desc}`, async () => {
      assert.deepEqual(await pluginConfigErrors('opentelemetry', c.conf), c.want);
    });
  }

  const meta = [
    { desc: 'an address that is no host:port', yaml: 'plugin_metadata:\n  - id: opentelemetry\n    collector: { address: "bad host" }\n', want: /plugin_metadata\[0\]\.collector\.address: plugin_metadata opentelemetry: must match pattern/ },
    { desc: 'an unknown field', yaml: 'plugin_metadata:\n  - id: opentelemetry\n    colector: {}\n', want: /plugin_metadata\[0\]\.colector: plugin_metadata opentelemetry: unknown field "colector" \(did you mean "collector"\?\)/ },
    { desc: 'a misspelt plugin', yaml: 'plugin_metadata:\n  - id: opentelemetri\n', want: /plugin_metadata\[0\]\.id: unknown plugin "opentelemetri" \(did you mean "opentelemetry"\?\)/ },
    { desc: 'given twice', yaml: 'plugin_metadata:\n  - id: opentelemetry\n  - id: opentelemetry\n', want: /plugin_metadata\[1\]\.id: plugin_metadata for "opentelemetry" is given twice/ },
    { desc: 'a header value with CR LF', yaml: 'plugin_metadata:\n  - id: opentelemetry\n    collector: { request_headers: { "bad name": x } }\n', want: /"bad name" is not a valid header name/ },
    { desc: 'in plugin_attr: the position there', yaml: 'plugin_attr:\n  opentelemetry:\n    collector: { request_timeout: 0 }\n', want: /^gateway\.yaml:3:35: plugin_attr\.opentelemetry\.collector\.request_timeout: plugin_metadata opentelemetry: must be >= 1/ },
  ];
  it('plugin_metadata for a plugin Turnpike does not have, or one that takes none, is ignored with a warning', async () => {
    const res = await loadConfigText(`plugin_metadata:\n  - { id: error-log-logger, host: 127.0.0.1 }\n  - { id: cors, x: 1 }\n${route}`, 'gateway.yaml', { functions: (f) => pools.host(f) });
    assert.equal(res.ok, true);
    assert.deepEqual(res.warnings.map((w) => w.message), ['plugin "error-log-logger" is not a Turnpike plugin: its plugin_metadata is ignored', 'plugin cors takes no plugin_metadata: ignored']);
  });

  for (const m of meta) {
    it(`plugin_metadata: ${m.desc} is refused`, async () => {
      const issues = await loadIssues(m.yaml + route);
      assert.equal(issues.length, 1, issues.join('\n'));
      assert.match(issues[0], m.want);
    });
  }
});
