import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, request } from '../helpers/harness.ts';
import { anonymousConsumerTests } from '../helpers/anonymous.ts';

describe('key-auth', () => {
  const f = fixture((port) => {
    const node = `{ nodes: { "127.0.0.1:${port}": 1 } }`;
    return `routes:
  - { id: plain, uri: /plain, upstream: ${node}, plugins: { key-auth: {} } }
  - { id: hidden, uri: /hidden, upstream: ${node}, plugins: { key-auth: { header: X-Key, query: k, hide_credentials: true, realm: orders } } }
consumers:
  - username: alice
    plugins:
      key-auth: { key: "\${{ALICE_KEY}}" }
  - username: bob
    plugins:
      key-auth: { key: bob-key }
`;
  }, { env: { ALICE_KEY: 'alice-secret' } });

  const cases: { desc: string; path: string; headers?: Record<string, string>; want: { status: number; body?: unknown; challenge?: string; forwarded?: Record<string, unknown> } }[] = [
    { desc: 'no key', path: '/plain', want: { status: 401, body: { message: 'Missing API key in request' } } },
    { desc: 'wrong key', path: '/plain', headers: { apikey: 'nope' }, want: { status: 401, body: { message: 'Invalid API key in request' } } },
    { desc: 'the realm as configured', path: '/hidden', want: { status: 401, body: { message: 'Missing API key in request' }, challenge: 'Key realm="orders"' } },
    { desc: 'key from an env var, in the header', path: '/plain', headers: { apikey: 'alice-secret' }, want: { status: 200, forwarded: { apikey: 'alice-secret' } } },
    { desc: 'key in the query', path: '/plain?apikey=bob-key', want: { status: 200, forwarded: { url: '/plain?apikey=bob-key' } } },
    { desc: 'a key read from the query leaves the query byte for byte (a signed query stays valid)', path: '/plain?apikey=bob-key&sig=a%20b~&flag&x=1&x=2', want: { status: 200, forwarded: { url: '/plain?apikey=bob-key&sig=a%20b~&flag&x=1&x=2' } } },
    { desc: 'custom header, hidden from the upstream', path: '/hidden', headers: { 'x-key': 'bob-key' }, want: { status: 200, forwarded: { 'x-key': undefined } } },
    { desc: 'custom query, hidden from the upstream', path: '/hidden?k=bob-key&x=1', want: { status: 200, forwarded: { url: '/hidden?x=1' } } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const before = f.up.seen.length;
      const res = await request(f.gw.port, c.path, { headers: c.headers });
      assert.equal(res.status, c.want.status);
      if (c.want.body) {
        assert.deepEqual(JSON.parse(res.body), c.want.body);
        assert.equal(res.headers['www-authenticate'], c.want.challenge ?? 'Key realm="key"');
        assert.equal(f.up.seen.length, before, 'a refused request must not reach the upstream');
      }
      for (const [k, v] of Object.entries(c.want.forwarded ?? {})) {
        const seen = JSON.parse(res.body);
        assert.equal(k === 'url' ? seen.url : seen.headers[k], v, k);
      }
    });
  }
});

anonymousConsumerTests({ plugin: 'key-auth', credential: '{ key: alice-key }', good: async () => ({ apikey: 'alice-key' }), bad: { apikey: 'wrong' }, header: 'apikey' });
