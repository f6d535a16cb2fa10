import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { captureLogs, eventually, refusedPort, request, startGateway, startUpstream, type Seen, type TestGateway, type Upstream } from '../helpers/harness.ts';
import { loadIssues } from '../helpers/load.ts';
import { BatchProcessor } from '../../plugins/logger/batch.ts';

describe('http-logger', () => {
  let up: Upstream;
  let sink: Upstream;
  let failing: Upstream;
  let gw: TestGateway;
  /** Batches the sink received, by path. */
  const batches = (p: string): Seen[] => sink.seen.filter((s) => s.url === p);
  before(async () => {
    up = await startUpstream((_req, res) => { res.end('ok'); return true; });
    sink = await startUpstream((_req, res) => { res.end(); return true; });
    failing = await startUpstream((_req, res) => { res.writeHead(500); res.end('no'); return true; });
    const dead = await refusedPort();
    const node = `{ nodes: { "127.0.0.1:${up.port}": 1 } }`;
    const at = (p: string) => `http://127.0.0.1:${sink.port}${p}`;
    gw = await startGateway(`routes:
  - { id: json, uri: /json, upstream: ${node}, plugins: { http-logger: { uri: "${at('/json')}", batch_max_size: 2, auth_header: "Bearer s3cret" } } }
  - { id: lines, uri: /lines, upstream: ${node}, plugins: { http-logger: { uri: "${at('/lines')}", batch_max_size: 2, concat_method: new_line } } }
  - { id: one, uri: /one, upstream: ${node}, plugins: { http-logger: { uri: "${at('/one')}", batch_max_size: 1, log_format: { route: "$route_id", st: "$status" } } } }
  - { id: idle, uri: /idle, upstream: ${node}, plugins: { http-logger: { uri: "${at('/idle')}", inactive_timeout: 1 } } }
  - { id: down, uri: /down, upstream: ${node}, plugins: { http-logger: { uri: "http://127.0.0.1:${dead}/x", batch_max_size: 1 } } }
  - { id: retry, uri: /retry, upstream: ${node}, plugins: { http-logger: { uri: "http://127.0.0.1:${failing.port}/r", batch_max_size: 1, max_retry_count: 2, retry_delay: 0 } } }
`);
  });
  after(async () => {
    await gw.close();
    for (const u of [up, sink, failing]) await u.close();
  });

  it('a full batch is POSTed at once as a JSON array, with the auth header', async () => {
    for (const q of ['a', 'b']) assert.equal((await request(gw.port, `/json?q=${q}`)).status, 200);
    const [b] = await eventually(() => (batches('/json').length ? batches('/json') : undefined));
    assert.equal(b.method, 'POST');
    assert.equal(b.headers['content-type'], 'application/json');
    assert.equal(b.headers.authorization, 'Bearer s3cret');
    const entries = JSON.parse(b.body);
    assert.deepEqual(entries.map((e: any) => [e.route_id, e.request.querystring.q, e.response.status, e.upstream]), [['json', 'a', 200, `127.0.0.1:${up.port}`], ['json', 'b', 200, `127.0.0.1:${up.port}`]]);
  });

  it('concat_method new_line: one JSON object per line, text/plain', async () => {
    for (let i = 0; i < 2; i++) await request(gw.port, '/lines');
    const [b] = await eventually(() => (batches('/lines').length ? batches('/lines') : undefined));
    assert.equal(b.headers['content-type'], 'text/plain');
    assert.deepEqual(b.body.split('\n').map((l) => JSON.parse(l).route_id), ['lines', 'lines']);
  });

  it('batch_max_size 1 sends one object, not an array; log_format shapes it', async () => {
    await request(gw.port, '/one');
    const [b] = await eventually(() => (batches('/one').length ? batches('/one') : undefined));
    assert.deepEqual(JSON.parse(b.body), { route: 'one', st: '200' });
  });

  it('a partial batch goes after inactive_timeout', async () => {
    await request(gw.port, '/idle');
    const [b] = await eventually(() => (batches('/idle').length ? batches('/idle') : undefined), 5000);
    assert.equal(JSON.parse(b.body).length, 1);
  });

  it('a sink that refuses connections never fails a request; the drop is logged', async () => {
    const logs = captureLogs();
    try {
      for (let i = 0; i < 3; i++) assert.equal((await request(gw.port, '/down')).status, 200);
      const line = await eventually(() => logs.lines.find((l) => l.msg === 'http-logger dropped log entries'));
      assert.equal(line.route, 'down');
      assert.equal(JSON.stringify(line).includes('s3cret'), false);
    } finally {
      logs.restore();
    }
  });

  it('a sink answering 500 gets the batch max_retry_count more times, then it is dropped', async () => {
    await request(gw.port, '/retry');
    await eventually(() => failing.seen.length === 3);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(failing.seen.length, 3);
  });

  it('what waits for a sink that never answers is bounded: entries past the cap are dropped and counted', async () => {
    const drops: number[] = [];
    const p = new BatchProcessor({ batch_max_size: 2, inactive_timeout: 60, buffer_duration: 60, max_retry_count: 0, retry_delay: 0, name: 't' }, () => new Promise(() => {}), (n) => drops.push(n), 5);
    for (let i = 0; i < 20; i++) p.push({ i });
    assert.equal(p.stats.dropped, 15);
    assert.equal(drops.length, 15);
  });

  const schemaCases: { desc: string; conf: string; want: string }[] = [
    { desc: 'uri is required', conf: '{}', want: 'missing required field "uri"' },
    { desc: 'uri must be http(s)', conf: '{ uri: "ftp://x/y" }', want: 'routes[0].plugins.http-logger.uri: plugin http-logger: must match pattern' },
    { desc: 'an auth_header cannot inject a header line', conf: '{ uri: "http://x/", auth_header: "a\\r\\nx-evil: 1" }', want: 'routes[0].plugins.http-logger.auth_header: plugin http-logger: must match pattern' },
    { desc: 'concat_method is json or new_line', conf: '{ uri: "http://x/", concat_method: csv }', want: 'routes[0].plugins.http-logger.concat_method: plugin http-logger: must be one of' },
    { desc: 'batch_max_size is at least 1', conf: '{ uri: "http://x/", batch_max_size: 0 }', want: 'routes[0].plugins.http-logger.batch_max_size: plugin http-logger: must be >= 1' },
  ];
  for (const c of schemaCases) {
    it(`schema: ${c.desc}`, async () => {
      const issues = await loadIssues(`routes:\n  - id: r\n    uri: /r\n    plugins: { mocking: {}, http-logger: ${c.conf} }\n`);
      assert.equal(issues.length, 1, issues.join('\n'));
      assert.ok(issues[0].includes(c.want), issues[0]);
    });
  }
});
