import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, fixture, request, startGateway, type Res, type TestGateway, type Upstream } from '../helpers/harness.ts';
import { loadIssues } from '../helpers/load.ts';
import { twoGateways } from '../helpers/redis.ts';
import { Redis } from 'ioredis';

interface Step { path?: string; headers?: Record<string, string>; want: { status: number; headers?: Record<string, string | undefined>; body?: string } }

const Q = (limit: string, remaining: string, reset: string) => ({ 'x-ratelimit-limit': limit, 'x-ratelimit-remaining': remaining, 'x-ratelimit-reset': reset });
const NO_Q = { 'x-ratelimit-limit': undefined, 'x-ratelimit-remaining': undefined, 'x-ratelimit-reset': undefined };

/** Each case gets its own route /cN (and so its own counter); its steps run in order. */
const cases: { desc: string; conf: string; steps: Step[] }[] = [
  {
    desc: 'defaults: count per client address, 503 with an empty body past it, quota headers',
    conf: '{ count: 2, time_window: 100 }',
    steps: [
      { want: { status: 200, headers: Q('2', '1', '100') } },
      { want: { status: 200, headers: { 'x-ratelimit-remaining': '0' } } },
      { want: { status: 503, headers: { 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '0' }, body: '' } },
    ],
  },
  {
    desc: 'rejected_code and rejected_msg',
    conf: '{ count: 1, time_window: 100, rejected_code: 429, rejected_msg: "slow down" }',
    steps: [
      { want: { status: 200 } },
      { want: { status: 429, body: '{"error_msg":"slow down"}', headers: { 'content-type': 'application/json' } } },
    ],
  },
  {
    desc: 'show_limit_quota_header: false sends no quota headers, passed or rejected',
    conf: '{ count: 1, time_window: 100, show_limit_quota_header: false }',
    steps: [{ want: { status: 200, headers: NO_Q } }, { want: { status: 503, headers: NO_Q } }],
  },
  {
    desc: 'key http_x_user: one counter per header value; without it, the client address',
    conf: '{ count: 1, time_window: 100, key: http_x_user }',
    steps: [
      { headers: { 'x-user': 'a' }, want: { status: 200 } },
      { headers: { 'x-user': 'b' }, want: { status: 200 } },
      { headers: { 'x-user': 'a' }, want: { status: 503 } },
      { want: { status: 200 } },
      { want: { status: 503 } },
    ],
  },
  {
    desc: 'key_type constant: one counter for every client',
    conf: '{ count: 2, time_window: 100, key_type: constant, key: everyone }',
    steps: [
      { headers: { 'x-user': 'a' }, want: { status: 200 } },
      { headers: { 'x-user': 'b' }, want: { status: 200 } },
      { headers: { 'x-user': 'c' }, want: { status: 503 } },
    ],
  },
  {
    desc: 'key_type var_combination: $vars and text; none set falls back to the address',
    conf: '{ count: 1, time_window: 100, key_type: var_combination, key: "$http_x_team-${arg_env}" }',
    steps: [
      { path: '?env=prod', headers: { 'x-team': 'a' }, want: { status: 200 } },
      { path: '?env=dev', headers: { 'x-team': 'a' }, want: { status: 200 } },
      { path: '?env=prod', headers: { 'x-team': 'a' }, want: { status: 503 } },
      { path: '?env=prod', headers: { 'x-team': 'b' }, want: { status: 200 } },
      { want: { status: 200 } },
      { want: { status: 503 } },
    ],
  },
  {
    desc: 'rules: each counts on its own key and window, with its own headers; the first exhausted rejects',
    conf: '{ rules: [{ count: 3, time_window: 60, key: "$remote_addr" }, { count: 2, time_window: 3600, key: "$remote_addr hour", header_prefix: Hour }] }',
    steps: [
      { want: { status: 200, headers: { ...NO_Q, 'x-1-ratelimit-limit': '3', 'x-1-ratelimit-remaining': '2', 'x-1-ratelimit-reset': '60', 'x-hour-ratelimit-limit': '2', 'x-hour-ratelimit-remaining': '1', 'x-hour-ratelimit-reset': '3600' } } },
      { want: { status: 200, headers: { 'x-1-ratelimit-remaining': '1', 'x-hour-ratelimit-remaining': '0' } } },
      { want: { status: 503, body: '', headers: { 'x-1-ratelimit-remaining': '0', 'x-hour-ratelimit-limit': '2', 'x-hour-ratelimit-remaining': '0' } } },
    ],
  },
  {
    desc: 'rules: the first rule exhausted rejects, and the later ones are not counted',
    conf: '{ rules: [{ count: 1, time_window: 60, key: "$remote_addr" }, { count: 5, time_window: 60, key: "$remote_addr b" }], rejected_code: 429 }',
    steps: [
      { want: { status: 200, headers: { 'x-1-ratelimit-remaining': '0', 'x-2-ratelimit-remaining': '4' } } },
      { want: { status: 429, headers: { 'x-1-ratelimit-remaining': '0', 'x-2-ratelimit-remaining': undefined } } },
    ],
  },
  {
    desc: 'rules: a rule whose key has no variable set does not apply; with none applying, 500 (APISIX)',
    conf: '{ rules: [{ count: 1, time_window: 60, key: "team $http_x_team" }] }',
    steps: [
      { headers: { 'x-team': 'a' }, want: { status: 200, headers: { 'x-1-ratelimit-remaining': '0' } } },
      { headers: { 'x-team': 'b' }, want: { status: 200 } },
      { headers: { 'x-team': 'a' }, want: { status: 503 } },
      { want: { status: 500, body: '', headers: { 'x-1-ratelimit-limit': undefined } } },
    ],
  },
  {
    desc: 'rules: with none applying and allow_degradation, the request goes through',
    conf: '{ rules: [{ count: 1, time_window: 60, key: "$http_x_team" }], allow_degradation: true }',
    steps: [{ want: { status: 200, headers: { 'x-1-ratelimit-limit': undefined } } }, { want: { status: 200 } }],
  },
  {
    desc: 'rules: show_limit_quota_header false sends none of the rules\' headers',
    conf: '{ rules: [{ count: 1, time_window: 60, key: "$remote_addr" }], show_limit_quota_header: false }',
    steps: [{ want: { status: 200, headers: { 'x-1-ratelimit-limit': undefined } } }, { want: { status: 503, headers: { 'x-1-ratelimit-limit': undefined } } }],
  },
  {
    desc: 'an 8 KiB header value is counted (hashed into the key), not refused',
    conf: '{ count: 1, time_window: 100, key: http_x_user }',
    steps: [
      { headers: { 'x-user': 'x'.repeat(8000) }, want: { status: 200 } },
      { headers: { 'x-user': 'x'.repeat(8000) }, want: { status: 503 } },
      { headers: { 'x-user': 'x'.repeat(7999) + 'y' }, want: { status: 200 } },
    ],
  },
];

async function check(port: number, base: string, step: Step, up: Upstream): Promise<Res> {
  const before = up.seen.length;
  const res = await request(port, base + (step.path ?? ''), { headers: step.headers });
  assert.equal(res.status, step.want.status, res.body);
  for (const [k, v] of Object.entries(step.want.headers ?? {})) assert.equal(res.headers[k], v, k);
  if (step.want.body !== undefined) assert.equal(res.body, step.want.body);
  if (step.want.status !== 200) assert.equal(up.seen.length, before, 'a rejected request must not reach the upstream');
  return res;
}

describe('limit-count, policy local', () => {
  const f = fixture((port) => {
    const up = `upstream: { nodes: { "127.0.0.1:${port}": 1 } }`;
    return `routes:
${cases.map((c, i) => `  - { id: c${i}, uri: /c${i}, ${up}, plugins: { limit-count: ${c.conf} } }`).join('\n')}
  - { id: g1, uri: /g1, ${up}, plugins: { limit-count: { count: 2, time_window: 100, group: shared } } }
  - { id: g2, uri: /g2, ${up}, plugins: { limit-count: { time_window: 100, count: 2, group: shared } } }
  - { id: short, uri: /short, ${up}, plugins: { limit-count: { count: 1, time_window: 1 } } }
  - { id: auth, uri: /auth, ${up}, plugins: { key-auth: {}, limit-count: { count: 1, time_window: 100, key: consumer_name } } }
consumers:
  - { username: alice, plugins: { key-auth: { key: alice-key } } }
  - { username: bob, plugins: { key-auth: { key: bob-key } } }
`;
  });

  cases.forEach((c, i) => {
    it(c.desc, async () => {
      for (const step of c.steps) await check(f.gw.port, `/c${i}`, step, f.up);
    });
  });

  it('group: instances of one group share one counter', async () => {
    await check(f.gw.port, '/g1', { want: { status: 200, headers: { 'x-ratelimit-remaining': '1' } } }, f.up);
    await check(f.gw.port, '/g2', { want: { status: 200, headers: { 'x-ratelimit-remaining': '0' } } }, f.up);
    await check(f.gw.port, '/g1', { want: { status: 503 } }, f.up);
  });

  it('key consumer_name: one counter per consumer', async () => {
    await check(f.gw.port, '/auth', { headers: { apikey: 'alice-key' }, want: { status: 200 } }, f.up);
    await check(f.gw.port, '/auth', { headers: { apikey: 'bob-key' }, want: { status: 200 } }, f.up);
    await check(f.gw.port, '/auth', { headers: { apikey: 'alice-key' }, want: { status: 503 } }, f.up);
  });

  it('a new window starts once the last one ends', async () => {
    await check(f.gw.port, '/short', { want: { status: 200, headers: Q('1', '0', '1') } }, f.up);
    await check(f.gw.port, '/short', { want: { status: 503 } }, f.up);
    await eventually(async () => (await request(f.gw.port, '/short')).status === 200, 5000, 100);
  });

  it('counters survive a reload that keeps the config, and restart when it changes', async () => {
    const up = `upstream: { nodes: { "127.0.0.1:${f.up.port}": 1 } }`;
    const gw = await startGateway(`routes:\n  - { id: r, uri: /r, ${up}, plugins: { limit-count: { count: 1, time_window: 100 } } }\n`);
    try {
      await check(gw.port, '/r', { want: { status: 200 } }, f.up);
      const { writeFile } = await import('node:fs/promises');
      await writeFile(gw.file, `listen: 127.0.0.1:0\nroutes:\n  - { id: r, uri: /r, ${up}, plugins: { limit-count: { time_window: 100, count: 1 } } }\n`);
      assert.equal((await gw.gw.reload()).ok, true);
      await check(gw.port, '/r', { want: { status: 503 } }, f.up);
      await writeFile(gw.file, `listen: 127.0.0.1:0\nroutes:\n  - { id: r, uri: /r, ${up}, plugins: { limit-count: { count: 2, time_window: 100 } } }\n`);
      assert.equal((await gw.gw.reload()).ok, true);
      await check(gw.port, '/r', { want: { status: 200, headers: { 'x-ratelimit-remaining': '1' } } }, f.up);
    } finally {
      await gw.close();
    }
  });
});

describe('limit-count config errors', () => {
  const route = (conf: string, extra = '') => `routes:\n  - id: a\n    uri: /a\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n    plugins:\n      limit-count: ${conf}\n${extra}`;
  const cases: { desc: string; conf: string; want: string[] }[] = [
    { desc: 'count missing', conf: route('{ time_window: 60 }'), want: ['gateway.yaml:6:20: routes[0].plugins.limit-count: plugin limit-count: missing required field "count"'] },
    { desc: 'count zero', conf: route('{ count: 0, time_window: 60 }'), want: ['gateway.yaml:6:29: routes[0].plugins.limit-count.count: plugin limit-count: must be > 0'] },
    { desc: 'time_window a string', conf: route('{ count: 1, time_window: "60" }'), want: ['gateway.yaml:6:45: routes[0].plugins.limit-count.time_window: plugin limit-count: must be of type integer'] },
    { desc: 'rejected_code out of range', conf: route('{ count: 1, time_window: 60, rejected_code: 600 }'), want: ['gateway.yaml:6:64: routes[0].plugins.limit-count.rejected_code: plugin limit-count: must be <= 599'] },
    { desc: 'unknown policy', conf: route('{ count: 1, time_window: 60, policy: memcached }'), want: ['gateway.yaml:6:57: routes[0].plugins.limit-count.policy: plugin limit-count: must be one of: "local", "redis", "redis-cluster"'] },
    { desc: 'unknown key_type', conf: route('{ count: 1, time_window: 60, key_type: header }'), want: ['gateway.yaml:6:59: routes[0].plugins.limit-count.key_type: plugin limit-count: must be one of: "var", "var_combination", "constant"'] },
    { desc: 'sliding window', conf: route('{ count: 1, time_window: 60, window_type: sliding }'), want: ['gateway.yaml:6:62: routes[0].plugins.limit-count.window_type: plugin limit-count: must be one of: "fixed"'] },
    { desc: 'unknown field', conf: route('{ count: 1, time_window: 60, windows: [] }'), want: ['gateway.yaml:6:49: routes[0].plugins.limit-count.windows: plugin limit-count: unknown field "windows"'] },
    { desc: 'neither count nor rules', conf: route('{ key: remote_addr }'),
      want: ['gateway.yaml:6:20: routes[0].plugins.limit-count: plugin limit-count: missing required field "count"', 'gateway.yaml:6:20: routes[0].plugins.limit-count: plugin limit-count: missing required field "time_window"'] },
    { desc: 'rules beside count', conf: route('{ count: 1, rules: [{ count: 1, time_window: 60, key: "$remote_addr" }] }'),
      want: ['gateway.yaml:6:7: routes[0].plugins.limit-count: plugin limit-count: count/time_window and rules cannot be specified at the same time'] },
    { desc: 'rules with a group', conf: route('{ group: g, rules: [{ count: 1, time_window: 60, key: "$remote_addr" }] }'),
      want: ['gateway.yaml:6:7: routes[0].plugins.limit-count: plugin limit-count: group and rules cannot be specified at the same time'] },
    { desc: 'rules: two rules on one key', conf: route('{ rules: [{ count: 1, time_window: 60, key: "$remote_addr" }, { count: 9, time_window: 3600, key: "$remote_addr" }] }'),
      want: ["gateway.yaml:6:7: routes[0].plugins.limit-count: plugin limit-count: duplicate key '$remote_addr' in rules"] },
    { desc: 'rules: a key without a variable', conf: route('{ rules: [{ count: 1, time_window: 60, key: everyone }] }'),
      want: ['gateway.yaml:6:7: routes[0].plugins.limit-count: plugin limit-count: rules[0].key: "everyone" has no $variable, so the rule would never apply'] },
    { desc: 'rules: an unknown variable', conf: route('{ rules: [{ count: 1, time_window: 60, key: "$server_addr" }] }'),
      want: ['gateway.yaml:6:7: routes[0].plugins.limit-count: plugin limit-count: rules[0].key: "$server_addr" is not a variable Turnpike knows (known: remote_addr, consumer_name, route_id, service_id, uri, request_method, host, http_<header>, arg_<name>, cookie_<name>)'] },
    { desc: 'rules: an item without a key', conf: route('{ rules: [{ count: 1, time_window: 60 }] }'),
      want: ['gateway.yaml:6:30: routes[0].plugins.limit-count.rules[0]: plugin limit-count: missing required field "key"'] },
    { desc: 'rules: a header_prefix that cannot be in a header name', conf: route('{ rules: [{ count: 1, time_window: 60, key: "$remote_addr", header_prefix: "a b" }] }'),
      want: ["gateway.yaml:6:95: routes[0].plugins.limit-count.rules[0].header_prefix: plugin limit-count: must match pattern ^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"] },
    { desc: 'rules: empty', conf: route('{ rules: [] }'), want: ['gateway.yaml:6:29: routes[0].plugins.limit-count.rules: plugin limit-count: must NOT have fewer than 1 items'] },
    { desc: 'unknown variable', conf: route('{ count: 1, time_window: 60, key: server_addr }'),
      want: ['gateway.yaml:6:7: routes[0].plugins.limit-count: plugin limit-count: key "server_addr" is not a variable Turnpike knows (supported: remote_addr, consumer_name, route_id, service_id, uri, request_method, host, http_<header>, arg_<name>, cookie_<name>)'] },
    { desc: 'a response variable cannot be a key (it is not known when the limit applies)', conf: route('{ count: 1, time_window: 60, key: status }'),
      want: ['gateway.yaml:6:7: routes[0].plugins.limit-count: plugin limit-count: key "status" is not a variable Turnpike knows (supported: remote_addr, consumer_name, route_id, service_id, uri, request_method, host, http_<header>, arg_<name>, cookie_<name>)'] },
    { desc: 'var_combination without a variable', conf: route('{ count: 1, time_window: 60, key_type: var_combination, key: abc }'),
      want: ['gateway.yaml:6:7: routes[0].plugins.limit-count: plugin limit-count: key "abc" has no $variable: use key_type "constant" for a fixed key'] },
    { desc: 'redis without redis_host', conf: route('{ count: 1, time_window: 60, policy: redis }'), want: ['gateway.yaml:6:7: routes[0].plugins.limit-count: plugin limit-count: policy "redis" needs redis_host'] },
    { desc: 'redis-cluster without a name', conf: route('{ count: 1, time_window: 60, policy: redis-cluster, redis_cluster_nodes: ["127.0.0.1:7000"] }'),
      want: ['gateway.yaml:6:7: routes[0].plugins.limit-count: plugin limit-count: policy "redis-cluster" needs redis_cluster_name'] },
    { desc: 'redis-cluster node not host:port', conf: route('{ count: 1, time_window: 60, policy: redis-cluster, redis_cluster_name: c, redis_cluster_nodes: ["localhost"] }'),
      want: ['gateway.yaml:6:7: routes[0].plugins.limit-count: plugin limit-count: redis_cluster_nodes: "localhost" is not host:port'] },
    { desc: 'one group, two configs', conf: route('{ count: 1, time_window: 60, group: g }', '  - id: b\n    uri: /b\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n    plugins:\n      limit-count: { count: 2, time_window: 60, group: g }\n'),
      want: ['gateway.yaml:11:7: routes[1].plugins.limit-count: plugin limit-count: group "g" is configured differently at route "a": every instance of a group must have the same config'] },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      assert.deepEqual(await loadIssues(c.conf), c.want);
    });
  }
  it('one group, the same config in any key order: valid', async () => {
    assert.deepEqual(await loadIssues(route('{ count: 1, time_window: 60, group: g }', '  - id: b\n    uri: /b\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n    plugins:\n      limit-count: { group: g, time_window: 60, count: 1 }\n')), []);
  });
});

describe('limit-count, policy redis', () => {
  const f = twoGateways((redisPort, upPort) => {
    const redisConf = `policy: redis, redis_host: 127.0.0.1, redis_port: ${redisPort}, redis_timeout: 2000`;
    const node = `upstream: { nodes: { "127.0.0.1:${upPort}": 1 } }`;
    return `routes:
  - { id: shared, uri: /shared, ${node}, plugins: { limit-count: { count: 3, time_window: 100, ${redisConf} } } }
  - { id: closed, uri: /closed, ${node}, plugins: { limit-count: { count: 1000, time_window: 100, ${redisConf} } } }
  - { id: open, uri: /open, ${node}, plugins: { limit-count: { count: 1000, time_window: 100, allow_degradation: true, ${redisConf} } } }
  - { id: rules, uri: /rules, ${node}, plugins: { limit-count: { rules: [{ count: 3, time_window: 100, key: "$remote_addr" }, { count: 1, time_window: 100, key: "$http_x_team" }], ${redisConf} } } }
`;
  });

  it('rules: two gateways on one Redis share each rule\'s counter', async () => {
    const seq: [TestGateway, string | undefined, number, string, string | undefined][] = [
      [f.a, undefined, 200, '2', undefined],
      [f.b, 't', 200, '1', '0'],
      [f.a, 't', 503, '0', '0'],
      [f.b, undefined, 503, '0', undefined],
    ];
    for (const [gw, team, status, first, second] of seq) {
      const res = await request(gw.port, '/rules', { headers: team ? { 'x-team': team } : {} });
      assert.equal(res.status, status);
      assert.equal(res.headers['x-1-ratelimit-remaining'], first);
      assert.equal(res.headers['x-2-ratelimit-remaining'], second);
    }
  });

  it('two gateways on one Redis share one limit', async () => {
    const seq: [TestGateway, number, string | undefined][] = [[f.a, 200, '2'], [f.b, 200, '1'], [f.a, 200, '0'], [f.b, 503, '0'], [f.a, 503, '0']];
    for (const [gw, status, remaining] of seq) {
      const res = await request(gw.port, '/shared');
      assert.equal(res.status, status);
      assert.equal(res.headers['x-ratelimit-limit'], '3');
      assert.equal(res.headers['x-ratelimit-remaining'], remaining);
      assert.match(String(res.headers['x-ratelimit-reset']), /^(99|100)$/);
    }
  });

  it('Redis down: 500 without allow_degradation, through with it; then back without a restart', async () => {
    assert.equal((await request(f.a.port, '/closed')).status, 200);
    await f.redis.stop();
    const down: [string, number, string][] = [
      ['/closed', 500, '{"error_msg":"failed to limit count"}'],
      ['/open', 200, ''],
    ];
    for (const gw of [f.a, f.b]) {
      for (const [path, status, body] of down) {
        const res = await request(gw.port, path);
        assert.equal(res.status, status, `${path}: ${res.body}`);
        if (status === 500) assert.equal(res.body, body);
        else assert.equal(res.headers['x-ratelimit-limit'], undefined, 'no quota headers when degraded');
      }
    }
    await f.redis.start();
    for (const gw of [f.a, f.b]) {
      await eventually(async () => (await request(gw.port, '/closed')).status === 200, 10_000, 100);
    }
    const res = await request(f.a.port, '/open');
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-ratelimit-limit'], '1000');
  });

  it('Redis frozen: redis_timeout (2 s) bounds the wait (500, or through with allow_degradation)', async () => {
    f.redis.pause();
    try {
      assert.equal((await request(f.a.port, '/closed')).status, 500);
      assert.equal((await request(f.a.port, '/open')).status, 200);
    } finally {
      f.redis.resume();
    }
    await eventually(async () => (await request(f.a.port, '/closed')).status === 200, 10_000, 100);
  });
});

describe('limit-count, policy redis-cluster', () => {
  // A one-node Redis Cluster holding every slot: the cluster protocol (CLUSTER SLOTS, MOVED) for real.
  const f = twoGateways((redisPort, upPort) => {
    const node = `upstream: { nodes: { "127.0.0.1:${upPort}": 1 } }`;
    const cluster = `policy: redis-cluster, redis_cluster_name: test, redis_cluster_nodes: ["127.0.0.1:${redisPort}"], redis_timeout: 2000`;
    return `routes:
  - { id: shared, uri: /shared, ${node}, plugins: { limit-count: { count: 2, time_window: 100, ${cluster} } } }
  - { id: open, uri: /open, ${node}, plugins: { limit-count: { count: 100, time_window: 100, allow_degradation: true, ${cluster} } } }
`;
  }, {
    args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-announce-ip', '127.0.0.1'],
    async prepare(redis) {
      const admin = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true });
      await admin.connect();
      await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
      await eventually(async () => String(await admin.call('CLUSTER', 'INFO')).includes('cluster_state:ok'), 10_000, 50);
      admin.disconnect();
    },
  });

  it('two gateways on one cluster share one limit; cluster down: 500, or through with allow_degradation', async () => {
    for (const [gw, status] of [[f.a, 200], [f.b, 200], [f.a, 503]] as const) assert.equal((await request(gw.port, '/shared')).status, status);
    await f.redis.stop();
    const res = await request(f.b.port, '/shared');
    assert.equal(res.status, 500);
    assert.equal(res.body, '{"error_msg":"failed to limit count"}');
    assert.equal((await request(f.b.port, '/open')).status, 200);
  });
});
