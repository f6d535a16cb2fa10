/** The reload parser's thread: same data as the main-thread parser, and never a reason for a load to fail. */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ParseThread } from '../src/config/parse-thread.ts';
import { parseSource } from '../src/config/source.ts';
import { loadConfigText } from '../src/config/load.ts';
import { FunctionPools } from '../src/serverless/pool.ts';

describe('ParseThread', () => {
  const parser = new ParseThread();
  after(() => parser.close());

  const cases: { desc: string; yaml: string; ok: boolean }[] = [
    { desc: 'routes and upstreams', yaml: 'upstreams:\n  - { id: u, nodes: { "127.0.0.1:1": 1 } }\nroutes:\n  - { id: r, uri: /a, upstream_id: u }\n', ok: true },
    { desc: 'anchors and merge keys', yaml: 'base: &b { a: 1, b: [x, y] }\nfirst: { <<: *b, c: 2 }\nsecond: *b\n', ok: true },
    { desc: 'numbers, booleans, null, block scalars', yaml: 'n: 1.5\nt: true\nz: ~\ns: |\n  line one\n  line two\n', ok: true },
    { desc: 'a syntax error', yaml: 'routes:\n  - id: a\n   bad: [\n', ok: false },
    { desc: 'a duplicate key', yaml: 'a: 1\na: 2\n', ok: false },
  ];
  for (const c of cases) {
    it(`${c.ok ? 'gives the same data as the main thread' : 'answers nothing'}: ${c.desc}`, async () => {
      const got = await parser.parse(c.yaml);
      if (!c.ok) return assert.equal(got, undefined);
      assert.deepEqual(got, { data: parseSource(c.yaml).data });
    });
  }

  it('starts again after its thread ended', async () => {
    await parser.close();
    assert.deepEqual(await parser.parse('a: 1\n'), { data: { a: 1 } });
  });
});

describe('a load given an off-thread parser', () => {
  const pools = new FunctionPools();
  after(() => pools.close());
  const opts = (parse: (t: string) => Promise<{ data: unknown } | undefined>) => ({ env: {}, functions: (s: Parameters<FunctionPools['host']>[0]) => pools.host(s), parse });

  it('uses its data and still points errors at file positions', async () => {
    const text = 'routes:\n  - id: a\n    uri: 42\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n';
    let calls = 0;
    const res = await loadConfigText(text, 'gateway.yaml', opts(async (t) => { calls++; return { data: parseSource(t).data }; }));
    assert.equal(calls, 1);
    assert.equal(res.ok, false);
    assert.deepEqual(!res.ok && res.issues.map((i) => [i.line, i.col, i.path]), [[3, 10, 'routes[0].uri']]);
  });

  it('parses on the main thread when the parser gives nothing', async () => {
    const res = await loadConfigText('routes:\n  - { id: a, uri: /a, plugins: { mocking: {} } }\n', 'gateway.yaml', opts(async () => undefined));
    assert.equal(res.ok, true);
  });
});
