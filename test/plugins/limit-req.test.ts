import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, fixture, request } from '../helpers/harness.ts';
import { loadIssues } from '../helpers/load.ts';
import { checkOutageAndRecovery, twoGateways } from '../helpers/redis.ts';

interface Step { headers?: Record<string, string>; want: { status: number; body?: string } }

// A rate of 0.1/s drains a request's worth in 10 s: far longer than any pause
// between two steps on a loaded machine, so these outcomes do not depend on timing.
const cases: { desc: string; conf: string; steps: Step[] }[] = [
  {
    desc: 'nodelay: burst lets requests through at once, beyond rate + burst 503 with no body',
    conf: '{ rate: 0.1, burst: 2, key: remote_addr, nodelay: true }',
    steps: [{ want: { status: 200 } }, { want: { status: 200 } }, { want: { status: 200 } }, { want: { status: 503, body: '' } }],
  },
  {
    desc: 'burst 0: only the rate',
    conf: '{ rate: 0.1, burst: 0, key: remote_addr }',
    steps: [{ want: { status: 200 } }, { want: { status: 503 } }],
  },
  {
    desc: 'rejected_code and rejected_msg',
    conf: '{ rate: 0.1, burst: 0, key: remote_addr, rejected_code: 429, rejected_msg: "too fast" }',
    steps: [{ want: { status: 200 } }, { want: { status: 429, body: '{"error_msg":"too fast"}' } }],
  },
  {
    desc: 'key http_x_user: one bucket per value',
    conf: '{ rate: 0.1, burst: 0, key: http_x_user }',
    steps: [
      { headers: { 'x-user': 'a' }, want: { status: 200 } },
      { headers: { 'x-user': 'b' }, want: { status: 200 } },
      { headers: { 'x-user': 'a' }, want: { status: 503 } },
    ],
  },
  {
    desc: 'key_type var_combination',
    conf: '{ rate: 0.1, burst: 0, key_type: var_combination, key: "$http_x_user:$request_method" }',
    steps: [
      { headers: { 'x-user': 'a' }, want: { status: 200 } },
      { headers: { 'x-user': 'b' }, want: { status: 200 } },
      { headers: { 'x-user': 'a' }, want: { status: 503 } },
    ],
  },
];

describe('limit-req, policy local', () => {
  const f = fixture((port) => {
    const up = `upstream: { nodes: { "127.0.0.1:${port}": 1 } }`;
    return `routes:
${cases.map((c, i) => `  - { id: c${i}, uri: /c${i}, ${up}, plugins: { limit-req: ${c.conf} } }`).join('\n')}
  - { id: delay, uri: /delay, ${up}, plugins: { limit-req: { rate: 2, burst: 1, key: remote_addr } } }
`;
  });

  cases.forEach((c, i) => {
    it(c.desc, async () => {
      for (const step of c.steps) {
        const before = f.up.seen.length;
        const res = await request(f.gw.port, `/c${i}`, { headers: step.headers });
        assert.equal(res.status, step.want.status, res.body);
        if (step.want.body !== undefined) assert.equal(res.body, step.want.body);
        if (step.want.status !== 200) assert.equal(f.up.seen.length, before, 'a rejected request must not reach the upstream');
      }
    });
  });

  it('without nodelay, a request within burst waits for the rate; beyond burst, 503 at once', async () => {
    assert.equal((await request(f.gw.port, '/delay')).status, 200);
    // The second request is one above the rate of 2/s: it waits about 500 ms in access.
    const started = performance.now();
    const second = request(f.gw.port, '/delay').then((r) => ({ status: r.status, waited: performance.now() - started }));
    await eventually(() => performance.now() - started > 50, 1000, 10);
    const third = await request(f.gw.port, '/delay');
    assert.equal(third.status, 503);
    const s = await second;
    assert.equal(s.status, 200);
    assert.ok(s.waited >= 300, `the delayed request came back after ${Math.round(s.waited)} ms, not after its wait`);
  });
});

describe('limit-req config errors', () => {
  const route = (conf: string) => `routes:\n  - id: a\n    uri: /a\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n    plugins:\n      limit-req: ${conf}\n`;
  const at = 'routes[0].plugins.limit-req';
  const cases: { desc: string; conf: string; want: string[] }[] = [
    { desc: 'rate missing', conf: route('{ burst: 1, key: remote_addr }'), want: [`gateway.yaml:6:18: ${at}: plugin limit-req: missing required field "rate"`] },
    { desc: 'key missing', conf: route('{ rate: 1, burst: 1 }'), want: [`gateway.yaml:6:18: ${at}: plugin limit-req: missing required field "key"`] },
    { desc: 'rate zero', conf: route('{ rate: 0, burst: 1, key: remote_addr }'), want: [`gateway.yaml:6:26: ${at}.rate: plugin limit-req: must be > 0`] },
    { desc: 'burst negative', conf: route('{ rate: 1, burst: -1, key: remote_addr }'), want: [`gateway.yaml:6:36: ${at}.burst: plugin limit-req: must be >= 0`] },
    { desc: 'key_type constant (not in limit-req)', conf: route('{ rate: 1, burst: 1, key: k, key_type: constant }'),
      want: [`gateway.yaml:6:57: ${at}.key_type: plugin limit-req: must be one of: "var", "var_combination"`] },
    { desc: 'unknown variable', conf: route('{ rate: 1, burst: 1, key: server_port }'),
      want: [`gateway.yaml:6:7: ${at}: plugin limit-req: key "server_port" is not a variable Turnpike knows (supported: remote_addr, consumer_name, route_id, service_id, uri, request_method, host, http_<header>, arg_<name>, cookie_<name>)`] },
    { desc: 'redis without redis_host', conf: route('{ rate: 1, burst: 1, key: remote_addr, policy: redis }'), want: [`gateway.yaml:6:7: ${at}: plugin limit-req: policy "redis" needs redis_host`] },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      assert.deepEqual(await loadIssues(c.conf), c.want);
    });
  }
});

describe('limit-req, policy redis', () => {
  const f = twoGateways((redisPort, upPort) => {
    const redisConf = `policy: redis, redis_host: 127.0.0.1, redis_port: ${redisPort}, redis_timeout: 2000`;
    const node = `upstream: { nodes: { "127.0.0.1:${upPort}": 1 } }`;
    return `routes:
  - { id: shared, uri: /shared, ${node}, plugins: { limit-req: { rate: 0.1, burst: 1, nodelay: true, key: remote_addr, ${redisConf} } } }
  - { id: closed, uri: /closed, ${node}, plugins: { limit-req: { rate: 1000, burst: 1000, key: remote_addr, ${redisConf} } } }
  - { id: open, uri: /open, ${node}, plugins: { limit-req: { rate: 1000, burst: 1000, key: remote_addr, allow_degradation: true, ${redisConf} } } }
`;
  });

  it('two gateways on one Redis share one bucket', async () => {
    for (const [gw, status] of [[f.a, 200], [f.b, 200], [f.a, 503], [f.b, 503]] as const) {
      assert.equal((await request(gw.port, '/shared')).status, status);
    }
  });

  it('Redis down: 500 without allow_degradation, through with it; then back without a restart', async () => {
    await checkOutageAndRecovery(f, 'req');
  });
});
