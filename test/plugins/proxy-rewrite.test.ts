import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load.ts';
import { fixture, request } from '../helpers/harness.ts';

describe('proxy-rewrite', () => {
  const confs: Record<string, string> = {
    fixed: '{ uri: /internal/fixed }',
    regex: '{ regex_uri: ["^/regex/(\\\\w+)/(.*)", "/v2/$2/$1"] }',
    pairs: '{ regex_uri: ["^/pairs/a$", "/first", "^/pairs/(.*)", "/second/$1"] }',
    host: '{ host: backend.internal }',
    headers: '{ headers: { set: { x-set: one, X-Upper: two }, add: { x-add: more }, remove: [cookie] } }',
  };
  const f = fixture((port) => `routes:\n${Object.entries(confs).map(([id, conf]) => `  - { id: ${id}, uris: ["/${id}", "/${id}/*"], upstream: { nodes: { "127.0.0.1:${port}": 1 } }, plugins: { proxy-rewrite: ${conf} } }`).join('\n')}\n`);

  const cases: { desc: string; path: string; headers?: Record<string, string>; want: { url?: string; headers?: Record<string, unknown> } }[] = [
    { desc: 'fixed uri keeps the query', path: '/fixed?a=1', want: { url: '/internal/fixed?a=1' } },
    { desc: 'regex_uri with captures', path: '/regex/users/42/x?q=z', want: { url: '/v2/42/x/users?q=z' } },
    { desc: 'regex_uri that does not match leaves the path', path: '/regex', want: { url: '/regex' } },
    { desc: 'regex_uri pairs: the first regex that matches rewrites (both match here)', path: '/pairs/a?q=1', want: { url: '/first?q=1' } },
    { desc: 'regex_uri pairs: a later pair when the first does not match', path: '/pairs/b/c', want: { url: '/second/b/c' } },
    { desc: 'host', path: '/host', headers: { host: 'public.example' }, want: { headers: { host: 'backend.internal' } } },
    { desc: 'set, add, remove headers', path: '/headers', headers: { cookie: 'c=1', 'x-add': 'first' },
      want: { headers: { 'x-set': 'one', 'x-upper': 'two', 'x-add': 'first, more', cookie: undefined } } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await request(f.gw.port, c.path, { headers: c.headers });
      assert.equal(res.status, 200);
      const seen = JSON.parse(res.body);
      if (c.want.url) assert.equal(seen.url, c.want.url);
      for (const [k, v] of Object.entries(c.want.headers ?? {})) assert.equal(seen.headers[k], v, k);
    });
  }
});

describe('proxy-rewrite config errors', () => {
  it('regex_uri with an odd number of strings is refused at its place', async () => {
    const text = 'routes:\n  - { id: r, uri: /x, upstream: { nodes: { "127.0.0.1:1": 1 } }, plugins: { proxy-rewrite: { regex_uri: ["^/a", "/b", "^/c"] } } }\n';
    const res = await loadConfigText(text, 'gateway.yaml', { env: {}, functions: () => { throw new Error('no functions here'); } });
    assert.equal(res.ok, false);
    assert.match(res.ok ? '' : res.issues.map((i) => `${i.path}: ${i.message}`).join('\n'), /routes\[0\]\.plugins\.proxy-rewrite.*give it an even number of strings/);
  });
});
