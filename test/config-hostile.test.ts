/** Hostile or careless gateway.yaml text: whatever it holds, loading gives a snapshot or positioned issues, never a throw. */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatIssues, loadConfigFile, loadConfigText, type LoadResult } from '../src/config/load.ts';
import { ParseThread } from '../src/config/parse-thread.ts';
import { FunctionPools } from '../src/serverless/pool.ts';
import { PHASES } from '../src/plugin.ts';
import type { Snapshot } from '../src/snapshot.ts';
import './helpers/harness.ts';

const pools = new FunctionPools();
const parser = new ParseThread();
after(async () => { await pools.close(); await parser.close(); });
const opts = (env: Record<string, string> = {}, offThread = false) => ({ env, functions: (s: Parameters<FunctionPools['host']>[0]) => pools.host(s), parse: offThread ? parser.parse.bind(parser) : undefined });
const text = (res: LoadResult) => (res.ok ? '' : formatIssues(res.issues));
const MOCK = 'plugins: { mocking: { response_example: ok } }';
/** The body route 0's mocking plugin answers. */
const mockBody = (snap: Snapshot, route = 0) => {
  const chain = snap.routes[route].chain;
  const step = PHASES.flatMap((p) => chain[p]).find((s) => s.name === 'mocking');
  return (step?.conf as { body?: string } | undefined)?.body;
};

/** 102 routes that share one anchored plugin block: the yaml library's default alias limit is 100. */
const shared = (n: number) => `routes:\n  - { id: r, uri: /r, plugins: &p { mocking: { response_example: shared } } }\n${Array.from({ length: n }, (_, i) => `  - { id: r${i}, uri: /r${i}, plugins: *p }\n`).join('')}`;
/** Nine levels of ten aliases each: a billion values once expanded. */
const laughs = () => ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 8 }, (_, i) => `a${i + 1}: &a${i + 1} [${Array(10).fill(`*a${i}`).join(', ')}]`), `routes: [{ id: r, uri: /r, plugins: { mocking: { response_example: *a8 } } }]`].join('\n') + '\n';

const rejected: { desc: string; conf: string; want: string }[] = [
  { desc: 'a host wildcard written unquoted (YAML reads * as an alias)', conf: `routes:\n  - { id: a, uri: /a, hosts: [*.example.com], ${MOCK} }\n`,
    want: 'gateway.yaml:2:31: YAML: alias *.example.com has no anchor &.example.com before it (a value that starts with * must be quoted: "*.example.com")' },
  { desc: 'an alias before its anchor', conf: `routes:\n  - { id: a, uri: /a, plugins: *p }\nx: &p { mocking: {} }\n`,
    want: 'gateway.yaml:2:32: YAML: alias *p has no anchor &p before it (a value that starts with * must be quoted: "*p")' },
  { desc: 'an alias inside its own anchor', conf: `x: &p [1, *p]\nroutes:\n  - { id: a, uri: /a, ${MOCK} }\n`,
    want: 'gateway.yaml:1:11: YAML: alias *p is inside the value it refers to' },
  { desc: 'a billion laughs', conf: laughs(),
    want: 'gateway.yaml:6:45: YAML: aliases expand the document past 1,000,000 values (*a4 alone adds 111,111)' },
  { desc: 'a merge key from an undefined anchor', conf: `routes:\n  - { id: a, uri: /a, <<: *base }\n`,
    want: 'gateway.yaml:2:27: YAML: alias *base has no anchor &base before it (a value that starts with * must be quoted: "*base")' },
];

describe('the loader never throws', () => {
  for (const c of rejected) {
    for (const offThread of [false, true]) {
      it(`${c.desc}${offThread ? ' (parse thread)' : ''}`, async () => {
        const res = await loadConfigText(c.conf, 'gateway.yaml', opts({}, offThread));
        assert.equal(text(res), c.want);
      });
    }
  }

  it('accepts 102 routes sharing one anchor, on both threads, each route with the shared plugins', async () => {
    for (const offThread of [false, true]) {
      const res = await loadConfigText(shared(102), 'gateway.yaml', opts({}, offThread));
      assert.equal(text(res), '');
      assert.ok(res.ok);
      assert.equal(res.snapshot.routes.length, 103);
      assert.equal(mockBody(res.snapshot, 102), 'shared');
    }
  });

  it('accepts thousands of aliases (yaml alone takes quadratic time on them)', async () => {
    const res = await loadConfigText(shared(3000), 'gateway.yaml', opts());
    assert.equal(text(res), '');
    assert.equal(res.ok && res.snapshot.routes.length, 3001);
  });

  it('a nesting deep enough to exhaust the stack is an issue, not a throw', async () => {
    const deep = `routes: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`;
    const res = await loadConfigText(deep, 'gateway.yaml', opts());
    assert.equal(res.ok, false);
    assert.match(text(res), /^gateway\.yaml:\d+:\d+: /);
  });
});

describe('size limit', () => {
  it('refuses a file over the limit before reading it, and text over it before parsing', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'turnpike-size-'));
    try {
      const file = path.join(dir, 'gateway.yaml');
      const big = `routes:\n  - { id: a, uri: /a, ${MOCK} }\n# ${'x'.repeat(2000)}\n`;
      await writeFile(file, big);
      const cases = [
        { desc: 'maxBytes option', o: { maxBytes: 1000 }, want: `${file}:1:1: file is 2,082 bytes, over the limit of 1,000 (set TURNPIKE_MAX_CONFIG_BYTES to change it)` },
        { desc: 'TURNPIKE_MAX_CONFIG_BYTES', o: { env: { TURNPIKE_MAX_CONFIG_BYTES: '1500' } }, want: `${file}:1:1: file is 2,082 bytes, over the limit of 1,500 (set TURNPIKE_MAX_CONFIG_BYTES to change it)` },
        { desc: 'a bad TURNPIKE_MAX_CONFIG_BYTES', o: { env: { TURNPIKE_MAX_CONFIG_BYTES: '1e3' } }, want: `${file}:0:0: TURNPIKE_MAX_CONFIG_BYTES is "1e3": it must be a whole number of bytes above 0` },
        { desc: 'within the limit', o: { env: { TURNPIKE_MAX_CONFIG_BYTES: '4096' } }, want: '' },
      ];
      for (const c of cases) {
        const res = await loadConfigFile(file, { ...opts(), ...c.o });
        assert.equal(text(res), c.want, c.desc);
      }
      const direct = await loadConfigText(big, 'gateway.yaml', { ...opts(), maxBytes: 100 });
      assert.equal(text(direct), 'gateway.yaml:1:1: file is 2,082 bytes, over the limit of 100 (set TURNPIKE_MAX_CONFIG_BYTES to change it)');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a file that is not a regular file (a device would never end)', async () => {
    const res = await loadConfigFile('/dev/zero', opts());
    assert.equal(text(res), '/dev/zero:0:0: is not a regular file');
  });

  it('refuses a FIFO nobody writes to, at once (opening one used to wait for ever)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'turnpike-fifo-'));
    try {
      const fifo = path.join(dir, 'gateway.yaml');
      execFileSync('mkfifo', [fifo]);
      const res = await loadConfigFile(fifo, opts());
      assert.equal(text(res), `${fifo}:0:0: is not a regular file`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('${{VAR}} values are exactly one scalar', () => {
  const conf = (value: string) => `routes:\n  - id: a\n    uri: /a\n    plugins:\n      mocking: { response_example: ${value} }\n`;
  const cases: { desc: string; value: string; env: Record<string, string>; want: unknown }[] = [
    { desc: 'a newline cannot add YAML', value: '${{BODY}}', env: { BODY: 'x\nconsumers:\n  - username: evil' }, want: 'x\nconsumers:\n  - username: evil' },
    { desc: "' #' is not a comment", value: '${{BODY}}', env: { BODY: 'pass #word' }, want: 'pass #word' },
    { desc: 'quotes stay in a quoted value', value: '"<${{BODY}}>"', env: { BODY: `a"b'c\\` }, want: `<a"b'c\\>` },
    { desc: 'flow characters stay text', value: '${{BODY}}', env: { BODY: '[1, 2], {a: b}' }, want: '[1, 2], {a: b}' },
    { desc: 'an alias-looking value stays text', value: '${{BODY}}', env: { BODY: '*x' }, want: '*x' },
    { desc: 'a default with a #', value: '${{NOPE:=a #b}}', env: {}, want: 'a #b' },
  ];
  for (const c of cases) {
    for (const offThread of [false, true]) {
      it(`${c.desc}${offThread ? ' (parse thread)' : ''}`, async () => {
        const res = await loadConfigText(conf(c.value), 'gateway.yaml', opts(c.env, offThread));
        assert.equal(text(res), '');
        assert.ok(res.ok);
        assert.equal(res.snapshot.consumers.size, 0);
        assert.equal(mockBody(res.snapshot), c.want);
      });
    }
  }

  it('a whole unquoted ${{VAR}} that reads as a number is one; quoted it stays a string', async () => {
    const res = await loadConfigText('listen: ${{PORT}}\nroutes:\n  - { id: a, uri: /a, upstream: { nodes: { "${{HOST}}:${{UP}}": 1 } } }\n', 'gateway.yaml', opts({ PORT: '8081', HOST: '10.0.0.1', UP: '99' }));
    assert.equal(text(res), '');
    assert.ok(res.ok);
    assert.equal(res.snapshot.listen.port, 8081);
    assert.equal(res.snapshot.routes[0].upstream?.nodes[0].origin, 'http://10.0.0.1:99');
  });

  it('a variable named only in a comment is not needed; a missing one in a block scalar is placed', async () => {
    const res = await loadConfigText('# ${{UNSET}}\nroutes:\n  - id: a\n    uri: /a\n    plugins:\n      mocking:\n        response_example: |\n          line\n          and ${{GONE}}\n', 'gateway.yaml', opts());
    assert.equal(text(res), 'gateway.yaml:9:15: environment variable GONE is not set and has no default (write ${{GONE:=default}} to give one)');
  });
});
