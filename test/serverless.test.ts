/** Serverless functions end to end: what they see and change, how they fail, what they cannot reach. */
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { captureLogs, eventually, request, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness.ts';

/** A YAML block scalar holding one function. */
const fn = (src: string, indent = 10) => '|\n' + src.trim().split('\n').map((l) => ' '.repeat(indent) + l).join('\n');

describe('serverless functions', () => {
  let up: Upstream;
  let gw: TestGateway;
  let logs: ReturnType<typeof captureLogs>;
  const route = (id: string, plugin: string, conf: string, extra = '') =>
    `  - id: ${id}\n    uri: /${id}\n    upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }\n${extra}    plugins:\n      ${plugin}:\n${conf.split('\n').map((l) => '        ' + l).join('\n')}\n`;

  before(async () => {
    up = await startUpstream();
    process.env.TURNPIKE_TEST_SECRET = 'do-not-leak';
    gw = await startGateway(`serverless:
  threads: 2
  timeout_ms: 300
  max_heap_mb: 32
  max_result_bytes: 2048
routes:
${route('throws', 'serverless-pre-function', `functions:\n  - ${fn('return () => { throw new Error("bad input") }')}`)}
${route('rejects', 'serverless-pre-function', `functions:\n  - ${fn('return async () => { throw new Error("async bad") }')}`)}
${route('slow-async', 'serverless-pre-function', `functions:\n  - ${fn('return async () => { await new Promise((r) => setTimeout(r, 5000)) }')}`)}
${route('loop', 'serverless-pre-function', `timeout_ms: 200\nfunctions:\n  - ${fn('return () => { for (;;) {} }')}`)}
${route('heap', 'serverless-pre-function', `timeout_ms: 5000\nfunctions:\n  - ${fn('return () => { const a = []; for (;;) a.push(new Array(1e5).fill(1)) }')}`)}
${route('exit', 'serverless-pre-function', `functions:\n  - ${fn('return () => { process.exit(1) }')}`)}
${route('kill', 'serverless-pre-function', `functions:\n  - ${fn('return () => { process.kill(process.pid, "SIGKILL") }')}`)}
${route('abort', 'serverless-pre-function', `functions:\n  - ${fn('return () => { process.abort() }')}`)}
${route('chdir', 'serverless-pre-function', `functions:\n  - ${fn('return () => { process.chdir("/") }')}`)}
${route('dlopen', 'serverless-pre-function', `functions:\n  - ${fn('return () => { process.dlopen({ exports: {} }, "/tmp/x.node") }')}`)}
${route('unsendable', 'serverless-pre-function', `functions:\n  - ${fn('return (conf, ctx) => { ctx.vars.f = () => 1 }')}`)}
${route('too-large', 'serverless-pre-function', `functions:\n  - ${fn('return (conf, ctx) => { ctx.vars.big = "x".repeat(10000) }')}`)}
${route('cyclic', 'serverless-pre-function', `functions:\n  - ${fn('return (conf, ctx) => { const a = { m: new Map([["k", 1]]) }; a.self = a; ctx.vars.a = a; return { status: 200, body: String(ctx.vars.a.self.m.get("k")) } }')}`)}
${route('bad-reply', 'serverless-pre-function', `functions:\n  - ${fn('return () => "hello"')}`)}
${route('env', 'serverless-pre-function', `functions:\n  - ${fn('return () => ({ status: 200, body: { process: typeof process, env: typeof globalThis.process?.env } })')}`)}
${route('fs', 'serverless-pre-function', `functions:\n  - ${fn(`return () => {
  const out = {};
  for (const p of ['/proc/self/environ', '/etc/passwd', '${process.cwd()}/package.json', '${process.cwd()}', '/']) {
    try { fs.readFileSync(p); out[p] = 'read'; } catch (e) { out[p] = e.code; }
  }
  out.builtins = [typeof process, typeof require, typeof module, typeof globalThis.getBuiltinModule].join();
  try { out.exec = typeof ({}).constructor.constructor('return process')(); } catch (e) { out.exec = e.constructor.name; }
  return { status: 200, body: out };
}`)}`)}
${route('fetch', 'serverless-pre-function', `functions:\n  - ${fn(`return async (conf, ctx) => {
  const r = await fetch('http://127.0.0.1:${up.port}/from-function');
  const seen = await r.json();
  return { status: 200, body: { url: seen.url } };
}`)}`)}
${route('logs', 'serverless-pre-function', `functions:\n  - ${fn('return (conf, ctx) => { console.log("hello from", ctx.route.id); ctx.log.warn("careful", { a: 1 }) }')}`)}
${route('mutate', 'serverless-pre-function', `phase: rewrite\nfunctions:\n  - ${fn(`return (conf, ctx) => {
  ctx.request.headers['x-added'] = 'yes';
  delete ctx.request.headers['x-remove-me'];
  ctx.request.path = '/rewritten';
  ctx.request.query.extra = '1';
  ctx.vars.seen = ctx.request.method + ' ' + ctx.route.id;
}`)}\n  - ${fn('return (conf, ctx) => { ctx.request.headers["x-vars"] = ctx.vars.seen }')}`)}
${route('phases', 'pre-function', `before_proxy:\n  - ${fn('return (conf, ctx) => { ctx.request.headers["x-before-proxy"] = "1" }')}
header_filter:\n  - ${fn('return (conf, ctx) => { ctx.response.status = 201; ctx.response.headers["x-header-filter"] = String(ctx.response.headers["x-upstream"]) }')}
body_filter:\n  - ${fn('return (conf, ctx) => { const seen = JSON.parse(ctx.response.body.toString()); ctx.response.body = "upstream saw " + seen.url + " with " + seen.headers["x-before-proxy"] }')}
log:\n  - ${fn('return (conf, ctx) => { console.log("logged", ctx.response.status) }')}`)}
${route('early', 'serverless-pre-function', `functions:\n  - ${fn('return () => ({ status: 403, body: { denied: true }, headers: { "x-why": "policy" } })')}\n  - ${fn('return () => { throw new Error("must not run") }')}`)}
${route('body', 'serverless-pre-function', `body: true\nmax_body_bytes: 64\nfunctions:\n  - ${fn('return (conf, ctx) => ({ status: 200, body: "got " + ctx.request.body.toString().toUpperCase() })')}`)}
  - id: order
    uri: /order
    plugins:
      serverless-post-function:
        functions:
          - ${fn('return (conf, ctx) => ({ status: 200, body: ctx.vars.order.concat("apisix-post").join(" > ") })', 12)}
      post-function:
        functions:
          - ${fn('return (conf, ctx) => { ctx.vars.order.push("kong-post") }', 12)}
      serverless-pre-function:
        functions:
          - ${fn('return (conf, ctx) => { ctx.vars.order.push("apisix-pre") }', 12)}
      pre-function:
        functions:
          - ${fn('return (conf, ctx) => { ctx.vars.order = ["kong-pre"] }', 12)}
`);
    delete process.env.TURNPIKE_TEST_SECRET;
  });
  after(async () => { await gw.close(); await up.close(); });
  beforeEach(() => { logs = captureLogs(); });
  afterEach(() => logs.restore());

  const failures: { desc: string; path: string; want: { status: number; body: Record<string, string>; log?: RegExp } }[] = [
    { desc: 'a function that throws: 500, generic body, stack in the log', path: '/throws', want: { status: 500, body: { error: 'internal error', code: 'GW_ERR_FUNCTION_FAILED' }, log: /Error: bad input\n\s+at .*route "throws" serverless-pre-function access\[0\]/ } },
    { desc: 'a function that rejects: 500', path: '/rejects', want: { status: 500, body: { error: 'internal error', code: 'GW_ERR_FUNCTION_FAILED' }, log: /async bad/ } },
    { desc: 'an async function past its time: 504', path: '/slow-async', want: { status: 504, body: { error: 'function timed out', code: 'GW_ERR_FUNCTION_TIMEOUT' } } },
    { desc: 'an endless loop: 504 and the worker is replaced', path: '/loop', want: { status: 504, body: { error: 'function timed out', code: 'GW_ERR_FUNCTION_TIMEOUT' } } },
    { desc: 'a heap blow-up: 500 and the worker is replaced', path: '/heap', want: { status: 500, body: { error: 'internal error', code: 'GW_ERR_FUNCTION_FAILED' } } },
    { desc: 'process.exit is out of reach', path: '/exit', want: { status: 500, body: { error: 'internal error', code: 'GW_ERR_FUNCTION_FAILED' }, log: /TypeError: Cannot read properties of undefined \(reading 'exit'\)/ } },
    { desc: 'process.kill is out of reach', path: '/kill', want: { status: 500, body: { error: 'internal error', code: 'GW_ERR_FUNCTION_FAILED' }, log: /TypeError: Cannot read properties of undefined \(reading 'kill'\)/ } },
    { desc: 'process.abort is out of reach', path: '/abort', want: { status: 500, body: { error: 'internal error', code: 'GW_ERR_FUNCTION_FAILED' }, log: /TypeError: Cannot read properties of undefined \(reading 'abort'\)/ } },
    { desc: 'process.chdir is out of reach', path: '/chdir', want: { status: 500, body: { error: 'internal error', code: 'GW_ERR_FUNCTION_FAILED' }, log: /TypeError: Cannot read properties of undefined \(reading 'chdir'\)/ } },
    { desc: 'native modules cannot be loaded', path: '/dlopen', want: { status: 500, body: { error: 'internal error', code: 'GW_ERR_FUNCTION_FAILED' }, log: /TypeError: Cannot read properties of undefined \(reading 'dlopen'\)/ } },
    { desc: 'a value that cannot cross the thread boundary: 500', path: '/unsendable', want: { status: 500, body: { error: 'internal error', code: 'GW_ERR_FUNCTION_FAILED' }, log: /cannot be sent back/ } },
    { desc: 'a result over the size cap: 500', path: '/too-large', want: { status: 500, body: { error: 'internal error', code: 'GW_ERR_FUNCTION_FAILED' }, log: /over the 2048-byte limit/ } },
    { desc: 'a return that is not a reply: 500', path: '/bad-reply', want: { status: 500, body: { error: 'internal error', code: 'GW_ERR_FUNCTION_FAILED' }, log: /returned something that is not a reply/ } },
  ];
  for (const c of failures) {
    it(`fails closed: ${c.desc}; the next request is served`, async () => {
      const before = up.seen.length;
      const res = await request(gw.port, c.path);
      assert.equal(res.status, c.want.status);
      assert.deepEqual(JSON.parse(res.body), c.want.body);
      assert.equal(up.seen.length, before, 'never forwarded upstream');
      if (c.want.log) {
        const line = await eventually(() => logs.lines.find((l) => l.level === 'error' && typeof l.error === 'string' && c.want.log!.test(l.error)));
        assert.equal(line.route, c.path.slice(1));
      }
      const next = await request(gw.port, '/mutate');
      assert.equal(next.status, 200);
    });
  }

  it('cyclic and non-plain values in ctx.vars are carried back', async () => {
    const res = await request(gw.port, '/cyclic');
    assert.deepEqual([res.status, res.body], [200, '1']);
  });

  it('functions see no process and no environment', async () => {
    const res = await request(gw.port, '/env');
    assert.deepEqual(JSON.parse(res.body), { process: 'undefined', env: 'undefined' });
  });

  it('workers cannot read files, write files or start processes', async () => {
    const res = await request(gw.port, '/fs');
    assert.deepEqual(JSON.parse(res.body), {
      '/proc/self/environ': 'ERR_ACCESS_DENIED', '/etc/passwd': 'ERR_ACCESS_DENIED', [`${process.cwd()}/package.json`]: 'ERR_ACCESS_DENIED',
      [process.cwd()]: 'ERR_ACCESS_DENIED', '/': 'ERR_ACCESS_DENIED',
      builtins: 'undefined,undefined,undefined,undefined', exec: 'TypeError',
    });
  });

  it('async functions can use fetch', async () => {
    const res = await request(gw.port, '/fetch');
    assert.deepEqual(JSON.parse(res.body), { url: '/from-function' });
  });

  it('console.* and ctx.log become gateway log lines tagged with route and function', async () => {
    await request(gw.port, '/logs');
    const a = await eventually(() => logs.lines.find((l) => l.msg === 'hello from logs'));
    assert.deepEqual([a.level, a.route, a.function, a.source], ['info', 'logs', 'route "logs" serverless-pre-function access[0]', 'function']);
    const b = await eventually(() => logs.lines.find((l) => l.msg === 'careful {"a":1}'));
    assert.equal(b.level, 'warn');
  });

  it('changes to headers, path, query and vars reach the upstream; functions run in order', async () => {
    const res = await request(gw.port, '/mutate?a=1', { headers: { 'x-remove-me': '1' } });
    const seen = JSON.parse(res.body);
    assert.equal(seen.url, '/rewritten?a=1&extra=1');
    assert.equal(seen.headers['x-added'], 'yes');
    assert.equal(seen.headers['x-remove-me'], undefined);
    assert.equal(seen.headers['x-vars'], 'GET mutate');
  });

  it('acts in before_proxy, header_filter, body_filter and log (Kong per-phase form)', async () => {
    const res = await request(gw.port, '/phases');
    assert.equal(res.status, 201);
    assert.equal(res.headers['x-header-filter'], 'yes');
    assert.equal(res.body, 'upstream saw /phases with 1');
    assert.equal(res.headers['content-length'], String(res.body.length));
    const line = await eventually(() => logs.lines.find((l) => l.msg === 'logged 201'));
    assert.equal(line.route, 'phases');
  });

  it('a returned reply ends the request: later functions do not run, the upstream is not contacted', async () => {
    const before = up.seen.length;
    const res = await request(gw.port, '/early');
    assert.deepEqual([res.status, res.headers['x-why'], res.headers['content-type'], JSON.parse(res.body)], [403, 'policy', 'application/json', { denied: true }]);
    assert.equal(up.seen.length, before);
  });

  it('reads the request body when asked, and refuses one over max_body_bytes', async () => {
    const ok = await request(gw.port, '/body', { method: 'POST', body: 'small' });
    assert.deepEqual([ok.status, ok.body], [200, 'got SMALL']);
    const big = await request(gw.port, '/body', { method: 'POST', body: 'x'.repeat(100) });
    assert.deepEqual([big.status, JSON.parse(big.body)], [413, { error: 'request body is larger than 64 bytes', code: 'GW_ERR_BODY_TOO_LARGE' }]);
  });

  it('runs by priority within a phase: pre-function, serverless-pre-function, post-function, serverless-post-function', async () => {
    const res = await request(gw.port, '/order');
    assert.equal(res.body, 'kong-pre > apisix-pre > kong-post > apisix-post');
  });
});

describe('serverless.allow_fs_read', () => {
  /** What a function allowed `allow` gets for fs.readFileSync of each of `files` under `base`: the text, or the error code. */
  async function readsThrough(allow: string[], base: string, files: string[]): Promise<Record<string, string>> {
    const gw = await startGateway(`serverless: { allow_fs_read: ${JSON.stringify(allow)} }
routes:
  - id: read
    uri: /read
    plugins:
      pre-function:
        functions:
          - ${fn(`return () => {
  const out = {};
  for (const f of ${JSON.stringify(files)}) {
    try { out[f] = fs.readFileSync('${base}/' + f, 'utf8'); } catch (e) { out[f] = e.code; }
  }
  return { status: 200, body: out };
}`, 12)}
`);
    try {
      return JSON.parse((await request(gw.port, '/read')).body);
    } finally {
      await gw.close();
    }
  }

  it('lets functions read the listed paths and nothing else', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const dir = await mkdtemp(path.join(tmpdir(), 'turnpike-allowed-'));
    await writeFile(path.join(dir, 'allowed.txt'), 'shared data');
    await writeFile(path.join(dir, 'other.txt'), 'secret');
    try {
      assert.deepEqual(await readsThrough([`${dir}/allowed.txt`], dir, ['allowed.txt', 'other.txt', 'allowed.txt/../other.txt']),
        { 'allowed.txt': 'shared data', 'other.txt': 'ERR_ACCESS_DENIED', 'allowed.txt/../other.txt': 'ERR_ACCESS_DENIED' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  it('a symlink in an allowed directory does not reach outside it; a FIFO or a device is refused at once', async () => {
    const { mkdtemp, writeFile, rm, mkdir, symlink } = await import('node:fs/promises');
    const { execFileSync } = await import('node:child_process');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const dir = await mkdtemp(path.join(tmpdir(), 'turnpike-allowed-'));
    await mkdir(path.join(dir, 'pub'));
    await writeFile(path.join(dir, 'pub', 'ok.txt'), 'public');
    await writeFile(path.join(dir, 'secret.txt'), 'secret');
    await symlink(path.join(dir, 'secret.txt'), path.join(dir, 'pub', 'leak'));
    await symlink('/dev/zero', path.join(dir, 'pub', 'zero'));
    execFileSync('mkfifo', [path.join(dir, 'pub', 'pipe')]);
    try {
      assert.deepEqual(await readsThrough([`${dir}/pub`, '/dev/zero'], `${dir}/pub`, ['ok.txt', 'leak', 'pipe', 'zero']),
        { 'ok.txt': 'public', leak: 'ERR_ACCESS_DENIED', pipe: 'EINVAL', zero: 'EINVAL' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the function pool', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway(`serverless: { threads: 1, concurrency: 1, max_queue: 1, timeout_ms: 2000 }
routes:
  - id: count
    uri: /count
    plugins:
      serverless-pre-function:
        functions:
          - ${fn('let n = 0;\nreturn () => ({ status: 200, body: String(++n) })', 12)}
  - id: sleep
    uri: /sleep
    plugins:
      serverless-pre-function:
        functions:
          - ${fn('return async () => { await new Promise((r) => setTimeout(r, 400)); return { status: 200, body: "slept" } }', 12)}
`);
  });
  after(() => gw.close());

  it('keeps closure state across requests on a thread', async () => {
    const got = [];
    for (let i = 0; i < 3; i++) got.push((await request(gw.port, '/count')).body);
    assert.deepEqual(got, ['1', '2', '3']);
  });

  it('answers 503 at once when the queue is full, and never queues without end', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => request(gw.port, '/sleep')));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 503, 503, 503]);
    const busy = results.find((r) => r.status === 503)!;
    assert.deepEqual(JSON.parse(busy.body), { error: 'function pool is busy, try again', code: 'GW_ERR_FUNCTION_BUSY' });
  });
});
