/** serverless-post-function: runs at the end of its phase, after the other plugins of that phase. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, request } from '../helpers/harness.ts';

describe('serverless-post-function', () => {
  const f = fixture((port) => `routes:
  - id: after-rewrite
    uri: /after-rewrite
    upstream: { nodes: { "127.0.0.1:${port}": 1 } }
    plugins:
      proxy-rewrite: { uri: /by-proxy-rewrite }
      serverless-post-function:
        phase: rewrite
        functions:
          - "return (conf, ctx) => { ctx.request.headers['x-path-seen'] = ctx.request.path }"
  - id: header-filter
    uri: /header-filter
    upstream: { nodes: { "127.0.0.1:${port}": 1 } }
    plugins:
      response-rewrite: { headers: { set: { x-by: response-rewrite } } }
      serverless-post-function:
        phase: header_filter
        functions:
          - "return (conf, ctx) => { ctx.response.headers['x-by'] += ', then post-function'; ctx.response.headers['x-phase'] = conf.phase }"
`);

  const cases = [
    { desc: 'sees what rewrite-phase plugins did', path: '/after-rewrite', want: { upstreamHeader: ['x-path-seen', '/by-proxy-rewrite'] } },
    { desc: 'runs after response-rewrite in header_filter and gets its conf', path: '/header-filter', want: { responseHeaders: { 'x-by': 'response-rewrite, then post-function', 'x-phase': 'header_filter' } } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await request(f.gw.port, c.path);
      assert.equal(res.status, 200);
      if (c.want.upstreamHeader) assert.equal(JSON.parse(res.body).headers[c.want.upstreamHeader[0]], c.want.upstreamHeader[1]);
      for (const [k, v] of Object.entries(c.want.responseHeaders ?? {})) assert.equal(res.headers[k], v);
    });
  }
});
