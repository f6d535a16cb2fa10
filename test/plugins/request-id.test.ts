import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { captureLogs, eventually, fixture, request } from '../helpers/harness.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('request-id', () => {
  const f = fixture((port) => {
    const node = `{ nodes: { "127.0.0.1:${port}": 1 } }`;
    return `routes:
  - { id: default, uri: /default, upstream: ${node}, plugins: { request-id: {} } }
  - { id: custom, uri: /custom, upstream: ${node}, plugins: { request-id: { header_name: X-Trace, include_in_response: false } } }
`;
  });

  const cases: { desc: string; path: string; headers: Record<string, string>; want: { upstream: RegExp | string; response: RegExp | string | undefined; header: string } }[] = [
    { desc: 'generates a uuid, sends it upstream and back', path: '/default', headers: {}, want: { upstream: UUID, response: UUID, header: 'x-request-id' } },
    { desc: 'keeps the client id', path: '/default', headers: { 'x-request-id': 'abc-123' }, want: { upstream: 'abc-123', response: 'abc-123', header: 'x-request-id' } },
    { desc: 'replaces a client id with characters outside the safe set', path: '/default', headers: { 'x-request-id': 'a"b<script>' }, want: { upstream: UUID, response: UUID, header: 'x-request-id' } },
    { desc: 'replaces a client id with spaces (log forging)', path: '/default', headers: { 'x-request-id': 'x status=200 route=admin' }, want: { upstream: UUID, response: UUID, header: 'x-request-id' } },
    { desc: 'replaces a client id over 128 characters', path: '/default', headers: { 'x-request-id': 'a'.repeat(129) }, want: { upstream: UUID, response: UUID, header: 'x-request-id' } },
    { desc: 'keeps a 128-character id of safe characters', path: '/default', headers: { 'x-request-id': 'A0._~:@+=/-'.repeat(11).slice(0, 128) }, want: { upstream: 'A0._~:@+=/-'.repeat(11).slice(0, 128), response: 'A0._~:@+=/-'.repeat(11).slice(0, 128), header: 'x-request-id' } },
    { desc: 'custom header, not in the response', path: '/custom', headers: {}, want: { upstream: UUID, response: undefined, header: 'x-trace' } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await request(f.gw.port, c.path, { headers: c.headers });
      const sent = JSON.parse(res.body).headers[c.want.header];
      if (c.want.upstream instanceof RegExp) assert.match(sent, c.want.upstream); else assert.equal(sent, c.want.upstream);
      const back = res.headers[c.want.header];
      if (c.want.response instanceof RegExp) { assert.match(String(back), c.want.response); assert.equal(back, sent); } else assert.equal(back, c.want.response);
    });
  }

  it('puts the id in the access log', async () => {
    const logs = captureLogs();
    try {
      await request(f.gw.port, '/default', { headers: { 'x-request-id': 'log-me' } });
      await eventually(() => logs.lines.find((l) => l.msg === 'access' && l.request_id === 'log-me'));
    } finally { logs.restore(); }
  });
});
