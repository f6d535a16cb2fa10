/** The example user plugin, loaded from plugin_paths like a user would. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadConfigText, formatIssues } from '../../src/config/load.ts';
import { FunctionPools } from '../../src/serverless/pool.ts';
import { fixture, request } from '../../test/helpers/harness.ts';

const DIR = fileURLToPath(new URL('.', import.meta.url));

describe('maintenance (user plugin from plugin_paths)', () => {
  const f = fixture((port) => {
    const node = `{ nodes: { "127.0.0.1:${port}": 1 } }`;
    return `plugin_paths: ["${DIR}"]
routes:
  - { id: down, uri: /down, upstream: ${node}, plugins: { maintenance: { retry_after: 30 } } }
  - { id: allowed, uri: /allowed, upstream: ${node}, plugins: { maintenance: { allow: ["127.0.0.1"] } } }
  - { id: off, uri: /off, upstream: ${node}, plugins: { maintenance: { enabled: false } } }
`;
  });

  const cases = [
    { desc: 'answers 503 with Retry-After', path: '/down', want: { status: 503, retry: '30', body: '{"error":"down for maintenance"}' } },
    { desc: 'lets an allowed address through', path: '/allowed', want: { status: 200, retry: undefined } },
    { desc: 'does nothing when disabled', path: '/off', want: { status: 200, retry: undefined } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await request(f.gw.port, c.path);
      assert.equal(res.status, c.want.status);
      assert.equal(res.headers['retry-after'], c.want.retry);
      if (c.want.body) assert.equal(res.body, c.want.body);
    });
  }

  it('its check() and schema errors are reported like a built-in', async () => {
    const pools = new FunctionPools();
    try {
      const res = await loadConfigText(`plugin_paths: ["${DIR}"]\nroutes:\n  - id: a\n    uri: /a\n    plugins:\n      mocking: {}\n      maintenance: { enabled: false, allow: [x] }\n  - id: b\n    uri: /b\n    plugins:\n      mocking: {}\n      maintenance: { retry_after: -1 }\n`, 'gateway.yaml', { env: {}, functions: (s) => pools.host(s) });
      assert.equal(formatIssues(res.ok ? [] : res.issues), [
        'gateway.yaml:7:7: routes[0].plugins.maintenance: plugin maintenance: allow has no effect while enabled is false',
        'gateway.yaml:12:35: routes[1].plugins.maintenance.retry_after: plugin maintenance: must be >= 0',
      ].join('\n'));
    } finally { await pools.close(); }
  });
});
