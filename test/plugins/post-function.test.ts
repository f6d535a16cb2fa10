/** post-function (Kong form): one instance acting in several phases. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { captureLogs, eventually, fixture, request } from '../helpers/harness.ts';

describe('post-function', () => {
  const f = fixture((port) => `routes:
  - id: multi
    uri: /multi
    upstream: { nodes: { "127.0.0.1:${port}": 1 } }
    plugins:
      post-function:
        rewrite:
          - "return (conf, ctx) => { ctx.vars.started = 'rewrite' }"
        access:
          - "return (conf, ctx) => { ctx.request.headers['x-trail'] = ctx.vars.started + ',access' }"
        header_filter:
          - "return (conf, ctx) => { ctx.response.headers['x-trail'] = ctx.vars.started + ',header_filter' }"
        log:
          - "return (conf, ctx) => { console.log('done', ctx.response.status, ctx.vars.started) }"
`);

  it('runs each phase array in its phase, sharing ctx.vars', async () => {
    const logs = captureLogs();
    try {
      const res = await request(f.gw.port, '/multi');
      assert.equal(JSON.parse(res.body).headers['x-trail'], 'rewrite,access');
      assert.equal(res.headers['x-trail'], 'rewrite,header_filter');
      await eventually(() => logs.lines.find((l) => l.msg === 'done 200 rewrite'));
    } finally { logs.restore(); }
  });
});
