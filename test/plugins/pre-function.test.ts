/**
 * Kong's Serverless Functions demo, in JavaScript: a pre-function on a service
 * whose upstream does not exist answers from the query string; the upstream is
 * never contacted.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.ts';

describe('pre-function (Kong demo)', () => {
  let gw: TestGateway;
  let witness: Upstream;
  before(async () => {
    witness = await startUpstream();
    gw = await startGateway(`services:
  - id: plugin-testing
    upstream: { nodes: { "dead.end.com:80": 1 } }
    plugins:
      pre-function:
        functions:
          - |
            return function (conf, ctx) {
              const qs = ctx.request.query;
              return { status: 200, body: qs.name ? 'Hello ' + qs.name + '!' : 'Hello Serverless Functions!' };
            }
  - id: witnessed
    upstream: { nodes: { "127.0.0.1:${witness.port}": 1 } }
    plugins:
      pre-function:
        functions: ["return () => ({ status: 200, body: 'answered by the function' })"]
routes:
  - { id: test, uris: [/test], service_id: plugin-testing }
  - { id: witness, uris: [/witness], service_id: witnessed }
`);
  });
  after(async () => { await gw.close(); await witness.close(); });

  const cases = [
    { desc: 'with ?name=Kong', path: '/test?name=Kong', want: 'Hello Kong!' },
    { desc: 'without a name', path: '/test', want: 'Hello Serverless Functions!' },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await request(gw.port, c.path);
      assert.deepEqual([res.status, res.body], [200, c.want]);
    });
  }

  it('never contacts the upstream', async () => {
    const res = await request(gw.port, '/witness');
    assert.equal(res.body, 'answered by the function');
    assert.equal(witness.seen.length, 0);
  });
});
