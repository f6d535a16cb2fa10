import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { captureLogs, eventually, request, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.ts';
import { loadIssues } from '../helpers/load.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const lines = async (file: string): Promise<Record<string, any>[]> => {
  try {
    return (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
  } catch {
    return [];
  }
};

describe('file-logger', () => {
  let dir: string;
  let up: Upstream;
  let gw: TestGateway;
  const file = (n: string) => path.join(dir, n);
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'turnpike-file-logger-'));
    up = await startUpstream((_req, res) => { res.setHeader('content-type', 'text/plain'); res.end('upstream body'); return true; });
    const node = `{ nodes: { "127.0.0.1:${up.port}": 1 } }`;
    gw = await startGateway(`routes:
  - { id: full, uri: /full, upstream: ${node}, plugins: { file-logger: { path: ${JSON.stringify(file('full.log'))} } } }
  - id: fmt
    uri: /fmt
    upstream: ${node}
    plugins:
      file-logger:
        path: ${JSON.stringify(file('fmt.log'))}
        log_format: { host: "$host", client_ip: "$remote_addr", status: "$status", route: "$route_id", ua: "$http_user_agent", missing: "$http_x_none", fixed: 1, both: "$request_method $uri" }
  - { id: body, uri: /body, upstream: ${node}, plugins: { file-logger: { path: ${JSON.stringify(file('body.log'))}, include_resp_body: true, max_resp_body_bytes: 8 } } }
  - { id: rotate, uri: /rotate, upstream: ${node}, plugins: { file-logger: { path: ${JSON.stringify(file('rotate.log'))} } } }
  - { id: nowhere, uri: /nowhere, upstream: ${node}, plugins: { file-logger: { path: ${JSON.stringify(file('no/such/dir/x.log'))} } } }
`);
  });
  after(async () => {
    await gw.close();
    await up.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("writes APISIX's default entry: request, response, upstream, ids, client, latencies", async () => {
    const res = await request(gw.port, '/full?a=1', { headers: { 'x-test': 'yes', authorization: 'Bearer s3cret-token', 'proxy-authorization': 'Basic cHJveHk6cHc=' } });
    assert.equal(res.status, 200);
    const [e] = await eventually(() => lines(file('full.log')).then((l) => (l.length ? l : undefined)));
    assert.deepEqual([e.request.headers.authorization, e.request.headers['proxy-authorization']], ['REDACTED', 'REDACTED'], 'credentials never reach the log');
    assert.ok(!JSON.stringify(e).includes('s3cret-token'));
    assert.deepEqual(
      [e.route_id, e.service_id, e.request.method, e.request.uri, e.request.querystring, e.request.headers['x-test'], e.response.status, e.upstream, e.client_ip],
      ['full', '', 'GET', '/full', { a: '1' }, 'yes', 200, `127.0.0.1:${up.port}`, '127.0.0.1'],
    );
    assert.equal(e.response.headers['content-type'], 'text/plain');
    assert.ok(e.response.size > 'upstream body'.length, 'bytes sent, head included');
    assert.ok(e.latency >= e.upstream_latency && e.upstream_latency >= 0 && e.apisix_latency >= 0);
    assert.ok(Math.abs(e.start_time - Date.now()) < 60_000);
    assert.equal(e.response.body, undefined, 'no body unless include_resp_body');
  });

  it('log_format: each field from its $variables; an unset one is null; non-strings as written', async () => {
    await request(gw.port, '/fmt', { headers: { 'user-agent': 'curl/8', host: 'Api.Example.com:8080' } });
    const [e] = await eventually(() => lines(file('fmt.log')).then((l) => (l.length ? l : undefined)));
    assert.deepEqual(e, { host: 'api.example.com', client_ip: '127.0.0.1', status: '200', route: 'fmt', ua: 'curl/8', missing: null, fixed: 1, both: 'GET /fmt' });
  });

  it('include_resp_body keeps the first max_resp_body_bytes bytes; the client gets the whole body', async () => {
    const res = await request(gw.port, '/body');
    assert.equal(res.body, 'upstream body');
    const [e] = await eventually(() => lines(file('body.log')).then((l) => (l.length ? l : undefined)));
    assert.equal(e.response.body, 'upstream');
  });

  it('follows a file rotated away (renamed) within a second, and reopens at once on SIGUSR1', async () => {
    await request(gw.port, '/rotate');
    await eventually(() => lines(file('rotate.log')).then((l) => l.length === 1));
    await rename(file('rotate.log'), file('rotate.log.1'));
    await sleep(1100);
    await request(gw.port, '/rotate');
    await eventually(() => lines(file('rotate.log')).then((l) => l.length === 1));
    assert.equal((await lines(file('rotate.log.1'))).length, 1);
    // Right after a write (inside the one-second check), only SIGUSR1 can move it.
    await rename(file('rotate.log'), file('rotate.log.2'));
    process.emit('SIGUSR1', 'SIGUSR1');
    await request(gw.port, '/rotate');
    await eventually(() => lines(file('rotate.log')).then((l) => l.length === 1));
    assert.equal((await lines(file('rotate.log.2'))).length, 1);
  });

  it('a file that cannot be written never fails a request; the error is logged once, not per request', async () => {
    const logs = captureLogs();
    try {
      for (let i = 0; i < 5; i++) assert.equal((await request(gw.port, '/nowhere')).status, 200);
      await eventually(() => logs.lines.find((l) => l.msg === 'file-logger cannot keep up with its file'));
      await sleep(100);
      await request(gw.port, '/nowhere');
      const errs = logs.lines.filter((l) => l.msg === 'file-logger cannot keep up with its file');
      assert.equal(errs.length, 1);
      assert.match(String(errs[0].error), /ENOENT/);
    } finally {
      logs.restore();
    }
  });

  const schemaCases: { desc: string; conf: string; want: string[] }[] = [
    { desc: 'path is required', conf: '{}', want: ['gateway.yaml:4:42: routes[0].plugins.file-logger: plugin file-logger: missing required field "path"'] },
    { desc: 'unknown field', conf: '{ path: /tmp/x, paht: y }', want: ['gateway.yaml:4:58: routes[0].plugins.file-logger.paht: plugin file-logger: unknown field "paht"'] },
    { desc: 'an unknown $variable in log_format', conf: '{ path: /tmp/x, log_format: { a: "$nope" } }', want: ['gateway.yaml:4:29: routes[0].plugins.file-logger: plugin file-logger: log_format.a: "$nope" is not a variable Turnpike knows (known: remote_addr, '] },
  ];
  for (const c of schemaCases) {
    it(`schema: ${c.desc}`, async () => {
      const issues = await loadIssues(`routes:\n  - id: r\n    uri: /r\n    plugins: { mocking: {}, file-logger: ${c.conf} }\n`);
      assert.equal(issues.length, c.want.length, issues.join('\n'));
      issues.forEach((got, i) => assert.ok(got.startsWith(c.want[i]), `${got}\n  does not start with\n${c.want[i]}`));
    });
  }
});
