import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, request } from '../helpers/harness.ts';

describe('response-rewrite', () => {
  const confs: Record<string, string> = {
    status: '{ status_code: 203 }',
    headers: '{ headers: { set: { x-upstream: replaced, x-new: "1" }, add: { x-multi: b }, remove: [content-type] } }',
    body: '{ body: "{\\"rewritten\\":true}", headers: { set: { content-type: application/json } } }',
    base64: '{ body: "aGk=", body_base64: true }',
  };
  const f = fixture(
    (port) => `routes:\n${Object.entries(confs).map(([id, conf]) => `  - { id: ${id}, uri: /${id}, upstream: { nodes: { "127.0.0.1:${port}": 1 } }, plugins: { response-rewrite: ${conf} } }`).join('\n')}
  - { id: mocked, uri: /mocked, plugins: { mocking: { response_example: "mock" }, response-rewrite: { status_code: 418 } } }\n`,
    { handler: (_req, res) => { res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'yes', 'x-multi': 'a' }); res.end('original'); return true; } },
  );

  const cases: { desc: string; path: string; want: { status: number; body: string; headers?: Record<string, unknown> } }[] = [
    { desc: 'status code', path: '/status', want: { status: 203, body: 'original' } },
    { desc: 'set, add, remove headers', path: '/headers', want: { status: 200, body: 'original', headers: { 'x-upstream': 'replaced', 'x-new': '1', 'x-multi': 'a, b', 'content-type': undefined } } },
    { desc: 'body replaced, length fixed', path: '/body', want: { status: 200, body: '{"rewritten":true}', headers: { 'content-type': 'application/json', 'content-length': '18' } } },
    { desc: 'base64 body', path: '/base64', want: { status: 200, body: 'hi' } },
    { desc: 'applies to a reply made by a plugin', path: '/mocked', want: { status: 418, body: 'mock' } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await request(f.gw.port, c.path);
      assert.equal(res.status, c.want.status);
      assert.equal(res.body, c.want.body);
      for (const [k, v] of Object.entries(c.want.headers ?? {})) assert.equal(res.headers[k], v, k);
    });
  }
});
