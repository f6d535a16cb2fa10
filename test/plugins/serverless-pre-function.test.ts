/**
 * APISIX's serverless demo, in JavaScript: a pre-function and a post-function
 * in rewrite log "serverless pre function" and the matched uri while the
 * request is proxied.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { captureLogs, eventually, fixture, request } from '../helpers/harness.ts';

describe('serverless-pre-function (APISIX demo)', () => {
  const f = fixture((port) => `routes:
  - id: "1"
    uri: /index.html
    plugins:
      serverless-pre-function:
        phase: rewrite
        functions:
          - "return function() { console.error('serverless pre function'); }"
      serverless-post-function:
        phase: rewrite
        functions:
          - "return function(conf, ctx) { console.error('match uri', ctx.route.uri); }"
    upstream:
      type: roundrobin
      nodes:
        "127.0.0.1:${port}": 1
`);

  it('logs from both functions, in order, and proxies the request', async () => {
    const logs = captureLogs();
    try {
      const res = await request(f.gw.port, '/index.html');
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.body).url, '/index.html');
      assert.equal(f.up.seen.length, 1);
      await eventually(() => logs.lines.some((l) => l.msg === 'match uri /index.html'));
      const fnLines = logs.lines.filter((l) => l.source === 'function');
      assert.deepEqual(fnLines.map((l) => [l.level, l.msg, l.route, l.function]), [
        ['error', 'serverless pre function', '1', 'route "1" serverless-pre-function rewrite[0]'],
        ['error', 'match uri /index.html', '1', 'route "1" serverless-post-function rewrite[0]'],
      ]);
    } finally { logs.restore(); }
  });
});
