import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request, startGateway, type TestGateway } from '../helpers/harness.ts';

describe('mocking', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway(`routes:
  - { id: default, uri: /default, plugins: { mocking: {} } }
  - id: custom
    uri: /custom
    plugins:
      mocking: { response_status: 201, response_example: "created", content_type: text/plain, with_mock_header: false, response_headers: { X-Extra: "1" } }
`);
  });
  after(() => gw.close());

  const cases: { desc: string; path: string; method?: string; want: { status: number; body: string; headers: Record<string, unknown> } }[] = [
    { desc: 'defaults', path: '/default', want: { status: 200, body: '', headers: { 'content-type': 'application/json;charset=utf8', 'x-mock-by': 'Turnpike' } } },
    { desc: 'custom reply, no upstream needed', path: '/custom', want: { status: 201, body: 'created', headers: { 'content-type': 'text/plain', 'x-mock-by': undefined, 'x-extra': '1', 'content-length': '7' } } },
    { desc: 'HEAD has no body', path: '/custom', method: 'HEAD', want: { status: 201, body: '', headers: { 'content-length': '7' } } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await request(gw.port, c.path, { method: c.method });
      assert.equal(res.status, c.want.status);
      assert.equal(res.body, c.want.body);
      for (const [k, v] of Object.entries(c.want.headers)) assert.equal(res.headers[k], v, k);
    });
  }
});
