import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http, { type ServerResponse } from 'node:http';
import { eventually, fixture, refusedPort, request, type Res } from '../helpers/harness.ts';
import { loadIssues } from '../helpers/load.ts';
import { checkOutageAndRecovery, twoGateways } from '../helpers/redis.ts';

/** Responses the upstream holds until the test lets them go: requests in flight, on demand. */
const held: ServerResponse[] = [];
function releaseAll(): void {
  for (const res of held.splice(0)) if (!res.destroyed) res.end('done');
}

/** Starts a request that the upstream will hold; resolves with its response, and can abort it. */
function open(port: number, path: string, headers: Record<string, string> = {}): { done: Promise<Res>; abort(): void } {
  let abort = () => {};
  const done = new Promise<Res>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    abort = () => { req.on('error', () => {}); req.destroy(); };
    req.end();
  });
  done.catch(() => {});
  return { done, abort: () => abort() };
}

describe('limit-conn', async () => {
  const dead = await refusedPort();
  const f = fixture((port) => {
    const up = `upstream: { nodes: { "127.0.0.1:${port}": 1 } }`;
    const lc = (extra: string, key = 'remote_addr') => `limit-conn: { conn: 1, burst: 0, default_conn_delay: 0.1, key: ${key}${extra} }`;
    return `routes:
  - { id: one, uri: /one, ${up}, plugins: { ${lc('')} } }
  - { id: msg, uri: /msg, ${up}, plugins: { ${lc(', rejected_code: 429, rejected_msg: busy')} } }
  - { id: user, uri: /user, ${up}, plugins: { ${lc('', 'http_x_user')} } }
  - { id: burst, uri: /burst, ${up}, plugins: { limit-conn: { conn: 1, burst: 1, default_conn_delay: 0.3, only_use_default_delay: true, key: remote_addr } } }
  - { id: storm, uri: /storm, ${up}, plugins: { limit-conn: { conn: 5, burst: 0, default_conn_delay: 0.1, key: remote_addr } } }
  - { id: refused, uri: /refused, upstream: { nodes: { "127.0.0.1:${dead}": 1 } }, plugins: { ${lc('')} } }
  - { id: slow, uri: /slow, upstream: { nodes: { "127.0.0.1:${port}": 1 }, timeout: { connect: 1, send: 1, read: 0.2 } }, plugins: { ${lc('')} } }
  - id: throws
    uri: /throws
    ${up}
    plugins:
      ${lc('')}
      serverless-post-function: { phase: access, functions: ["return function () { throw new Error('boom') }"] }
  - id: late
    uri: /late
    ${up}
    plugins:
      ${lc('')}
      serverless-pre-function: { phase: access, functions: ["return async function () { await new Promise((r) => setTimeout(r, 300)) }"] }
`;
  }, { handler: (req, res) => { if (req.url!.startsWith('/ok')) return false; held.push(res); return true; } });

  const rejects: { desc: string; path: string; headers?: Record<string, string>; second?: Record<string, string>; want: { status: number; body: string } }[] = [
    { desc: 'conn 1: a second concurrent request gets 503 with no body', path: '/one', want: { status: 503, body: '' } },
    { desc: 'rejected_code and rejected_msg', path: '/msg', want: { status: 429, body: '{"error_msg":"busy"}' } },
    { desc: 'key http_x_user: same user rejected', path: '/user', headers: { 'x-user': 'a' }, second: { 'x-user': 'a' }, want: { status: 503, body: '' } },
    { desc: 'key http_x_user: another user goes through', path: '/user', headers: { 'x-user': 'a' }, second: { 'x-user': 'b' }, want: { status: 200, body: 'done' } },
  ];
  for (const c of rejects) {
    it(c.desc, async () => {
      const first = open(f.gw.port, c.path, c.headers);
      await eventually(() => held.length === 1);
      const second = open(f.gw.port, c.path, c.second ?? c.headers);
      if (c.want.status === 200) await eventually(() => held.length === 2);
      else {
        const r = await second.done;
        assert.equal(r.status, c.want.status);
        assert.equal(r.body, c.want.body);
      }
      releaseAll();
      assert.equal((await first.done).status, 200);
      if (c.want.status === 200) assert.equal((await second.done).body, 'done');
      // The slot is back once the first request ended.
      const third = open(f.gw.port, c.path, c.headers);
      await eventually(() => held.length === 1);
      releaseAll();
      assert.equal((await third.done).status, 200);
    });
  }

  it('burst: a request above conn waits default_conn_delay, then goes on; above conn + burst, rejected', async () => {
    const first = open(f.gw.port, '/burst');
    await eventually(() => held.length === 1);
    const started = performance.now();
    const second = open(f.gw.port, '/burst');
    const third = await request(f.gw.port, '/burst');
    assert.equal(third.status, 503);
    await eventually(() => held.length === 2);
    const waited = performance.now() - started;
    assert.ok(waited >= 200, `the request above conn reached the upstream after ${Math.round(waited)} ms, not after its delay`);
    releaseAll();
    assert.equal((await first.done).status, 200);
    assert.equal((await second.done).status, 200);
  });

  const endings: { desc: string; path: string; want: number }[] = [
    { desc: 'upstream refused (502)', path: '/refused', want: 502 },
    { desc: 'upstream read timeout (504)', path: '/slow', want: 504 },
    { desc: 'a later plugin throws (500)', path: '/throws', want: 500 },
  ];
  for (const c of endings) {
    it(`the slot is released however the request ends: ${c.desc}`, async () => {
      // conn is 1: had a slot leaked, the second request would get 503.
      for (let i = 0; i < 3; i++) assert.equal((await request(f.gw.port, c.path)).status, c.want);
      releaseAll();
    });
  }

  it('nothing leaks after an abort storm: 200 aborted requests, then the full conn is available', async () => {
    for (let round = 0; round < 40; round++) {
      const reqs = Array.from({ length: 5 }, () => open(f.gw.port, '/storm'));
      // All five hold a slot (had one leaked, one would be refused and never arrive).
      await eventually(() => held.length === 5);
      for (const r of reqs) r.abort();
      await eventually(() => held.every((res) => res.destroyed || res.writableEnded || res.socket === null));
      held.splice(0);
    }
    const full = Array.from({ length: 5 }, () => open(f.gw.port, '/storm'));
    await eventually(() => held.length === 5);
    assert.equal((await request(f.gw.port, '/storm')).status, 503);
    releaseAll();
    for (const r of full) assert.equal((await r.done).status, 200);
  });

  it('a client that leaves before limit-conn runs is never counted', async () => {
    const gone = open(f.gw.port, '/late');
    await new Promise((r) => setTimeout(r, 50));
    gone.abort();
    // The async function before limit-conn still finishes its 300 ms; then access runs for a closed request.
    await new Promise((r) => setTimeout(r, 600));
    const next = open(f.gw.port, '/late');
    await eventually(() => held.length === 1);
    releaseAll();
    assert.equal((await next.done).status, 200);
  });
});

describe('limit-conn config errors', () => {
  const route = (conf: string) => `routes:\n  - id: a\n    uri: /a\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n    plugins:\n      limit-conn: ${conf}\n`;
  const at = 'routes[0].plugins.limit-conn';
  const base = 'conn: 1, burst: 0, default_conn_delay: 0.1, key: remote_addr';
  const cases: { desc: string; conf: string; want: string[] }[] = [
    { desc: 'default_conn_delay missing', conf: route('{ conn: 1, burst: 0, key: remote_addr }'), want: [`gateway.yaml:6:19: ${at}: plugin limit-conn: missing required field "default_conn_delay"`] },
    { desc: 'conn zero', conf: route('{ conn: 0, burst: 0, default_conn_delay: 0.1, key: remote_addr }'), want: [`gateway.yaml:6:27: ${at}.conn: plugin limit-conn: must be > 0`] },
    { desc: 'burst not an integer', conf: route('{ conn: 1, burst: 0.5, default_conn_delay: 0.1, key: remote_addr }'), want: [`gateway.yaml:6:37: ${at}.burst: plugin limit-conn: must be of type integer`] },
    { desc: 'default_conn_delay zero', conf: route('{ conn: 1, burst: 0, default_conn_delay: 0, key: remote_addr }'), want: [`gateway.yaml:6:60: ${at}.default_conn_delay: plugin limit-conn: must be > 0`] },
    { desc: 'redis without redis_host', conf: route(`{ ${base}, policy: redis }`), want: [`gateway.yaml:6:7: ${at}: plugin limit-conn: policy "redis" needs redis_host`] },
    { desc: 'key_ttl zero', conf: route(`{ ${base}, key_ttl: 0 }`), want: [`gateway.yaml:6:92: ${at}.key_ttl: plugin limit-conn: must be >= 1`] },
    { desc: 'unknown variable', conf: route('{ conn: 1, burst: 0, default_conn_delay: 0.1, key: server_addr }'),
      want: [`gateway.yaml:6:7: ${at}: plugin limit-conn: key "server_addr" is not a variable Turnpike knows (supported: remote_addr, consumer_name, route_id, service_id, uri, request_method, host, http_<header>, arg_<name>, cookie_<name>)`] },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      assert.deepEqual(await loadIssues(c.conf), c.want);
    });
  }
});

describe('limit-conn, policy redis', () => {
  const f = twoGateways((redisPort, upPort) => {
    const redisConf = `policy: redis, redis_host: 127.0.0.1, redis_port: ${redisPort}, redis_timeout: 2000`;
    const node = `upstream: { nodes: { "127.0.0.1:${upPort}": 1 } }`;
    const lc = (extra = '') => `limit-conn: { conn: 1, burst: 0, default_conn_delay: 0.1, key: remote_addr, ${redisConf}${extra} }`;
    return `routes:
  - { id: shared, uri: /shared, ${node}, plugins: { ${lc()} } }
  - { id: closed, uri: /closed, ${node}, plugins: { ${lc()} } }
  - { id: open, uri: /open, ${node}, plugins: { ${lc(', allow_degradation: true')} } }
`;
  }, { handler: (req, res) => { if (req.url !== '/shared') return false; held.push(res); return true; } });

  it('two gateways on one Redis share one conn limit, and the slot comes back when the request ends', async () => {
    const first = open(f.a.port, '/shared');
    await eventually(() => held.length === 1);
    const other = await request(f.b.port, '/shared');
    assert.equal(other.status, 503);
    releaseAll();
    assert.equal((await first.done).status, 200);
    // Released through Redis: the other gateway gets the slot.
    const next = open(f.b.port, '/shared');
    await eventually(() => held.length === 1);
    assert.equal((await request(f.a.port, '/shared')).status, 503);
    next.abort();
    await eventually(() => held.every((res) => res.destroyed));
    held.splice(0);
    // The aborted request's slot is given back through Redis: the other gateway's next request is held upstream, not refused.
    await eventually(async () => {
      const r = open(f.a.port, '/shared');
      const reached = await new Promise<boolean>((resolve) => {
        const t = setInterval(() => { if (held.length > 0) { clearInterval(t); resolve(true); } }, 10);
        void r.done.then(() => { clearInterval(t); resolve(false); });
      });
      if (!reached) return false;
      releaseAll();
      return (await r.done).status === 200;
    }, 5000, 50);
  });

  it('Redis down: 500 without allow_degradation, through with it; then back without a restart', async () => {
    await checkOutageAndRecovery(f, 'conn');
  });
});
