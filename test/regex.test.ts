/** Configured regexes run in linear time, or are refused at load with their position. */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatIssues, loadConfigText } from '../src/config/load.ts';
import { compileRegex } from '../src/plugin.ts';
import { FunctionPools } from '../src/serverless/pool.ts';
import { fixture, request } from './helpers/harness.ts';

describe('compileRegex', () => {
  it('runs a catastrophic pattern on a long hostile input at once, with the right answer', () => {
    // With backtracking this is 2^5000 steps; the linear engine reads the input once.
    const re = compileRegex('^/api/(a+)+$', 'test');
    assert.ok(re.flags.includes('l'));
    assert.equal(re.test('/api/' + 'a'.repeat(5000) + '!'), false);
    assert.equal(re.test('/api/aaa'), true);
  });

  it('keeps captures for replace, and the g flag', () => {
    assert.equal('/api/x/y'.replace(compileRegex('^/api/(\\w+)/(.*)', 'test'), '/v2/$2/$1'), '/v2/y/x');
    assert.equal('a-b-c'.replace(compileRegex('-', 'test', 'g'), '+'), 'a+b+c');
  });

  it('refuses flags the engine does not have', () => {
    assert.throws(() => compileRegex('a', 'test', 'u'), /flags "u" are not supported \(only g, m, s, i\)/);
  });

  it('i is done by folding letters: still linear on a hostile input', () => {
    const re = compileRegex('^/API/(a+)+$', 'test', 'i');
    assert.equal(re.test('/api/' + 'A'.repeat(5000) + '!'), false);
    assert.equal(re.test('/Api/aAa'), true);
  });

  const refused: { desc: string; pattern: string; want: RegExp }[] = [
    { desc: 'a backreference', pattern: '^/(a+)\\1$', want: /^Error: here: .* cannot run in linear time/ },
    { desc: 'a repetition count in the thousands', pattern: 'x{1000}', want: /^Error: here: .* cannot run in linear time/ },
    { desc: 'a lookahead', pattern: '^/(?=a)', want: /^Error: here: .* cannot run in linear time/ },
    { desc: 'a syntax error', pattern: '^/(a', want: /^Error: here is not a valid regular expression: / },
  ];
  for (const c of refused) {
    it(`refuses ${c.desc}`, () => assert.throws(() => compileRegex(c.pattern, 'here'), c.want));
  }
});

describe('regexes in config', () => {
  const pools = new FunctionPools();
  after(() => pools.close());
  it('proxy-rewrite: a pattern that needs backtracking is a config error at its place', async () => {
    const text = 'routes:\n  - id: a\n    uri: /a\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n    plugins:\n      proxy-rewrite: { regex_uri: ["^/(a+)\\\\1$", "/x"] }\n';
    const res = await loadConfigText(text, 'gateway.yaml', { env: {}, functions: (s) => pools.host(s) });
    assert.equal(formatIssues(res.ok ? [] : res.issues),
      'gateway.yaml:6:7: routes[0].plugins.proxy-rewrite: plugin proxy-rewrite: regex_uri[0]: "^/(a+)\\\\1$" cannot run in linear time (backreferences, lookaround and repetition counts in the hundreds are not supported: a pattern that backtracks lets one request stall the gateway)');
  });

  const f = fixture((port) => `routes:\n  - { id: r, uri: "/api/*", upstream: { nodes: { "127.0.0.1:${port}": 1 } }, plugins: { proxy-rewrite: { regex_uri: ["^/api/(a+)+$", "/matched/$1"] } } }\n`);
  it('proxy-rewrite: the catastrophic pattern of the issue answers a hostile path and the next request', async () => {
    const hostile = await request(f.gw.port, '/api/' + 'a'.repeat(4000) + '!');
    assert.equal(JSON.parse(hostile.body).url, '/api/' + 'a'.repeat(4000) + '!');
    const res = await request(f.gw.port, '/api/aaa');
    assert.equal(JSON.parse(res.body).url, '/matched/aaa');
  });
});
