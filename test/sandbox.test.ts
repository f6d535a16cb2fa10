/**
 * Hostile functions: what they can reach, what one route's function can do to
 * another's, and values handed back. Each class is tried several ways.
 * Limits (time, timers, memory) are in sandbox-limits.test.ts.
 */
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { captureLogs, eventually, request, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness.ts';
import { FunctionPools } from '../src/serverless/pool.ts';

/** A YAML block scalar holding one function. */
const fn = (src: string, indent = 10) => '|\n' + src.trim().split('\n').map((l) => ' '.repeat(indent) + l).join('\n');
const route = (id: string, src: string, extra = '') =>
  `  - id: ${id}\n    uri: /${id}\n${extra}    plugins:\n      serverless-pre-function:\n        functions:\n          - ${fn(src, 12)}\n`;

describe('what a function can reach', () => {
  const probes: { desc: string; expr: string; want: string }[] = [
    { desc: 'no process global', expr: 'typeof process', want: 'undefined' },
    { desc: 'no module system', expr: '[typeof require, typeof module, typeof exports, typeof __filename, typeof globalThis.getBuiltinModule].join()', want: 'undefined,undefined,undefined,undefined,undefined' },
    { desc: 'the Function constructor reached from an object is inert', expr: '(() => { try { return typeof ({}).constructor.constructor("return process")() } catch (e) { return e.name } })()', want: 'TypeError' },
    { desc: 'the Function constructor reached from an endowment is inert', expr: '(() => { try { return typeof fetch.constructor("return process")() } catch (e) { return e.name } })()', want: 'TypeError' },
    { desc: 'the async function constructor is inert', expr: '(() => { try { return typeof (async () => {}).constructor("return process") } catch (e) { return e.name } })()', want: 'TypeError' },
    { desc: 'a fresh Function sees only the compartment', expr: 'typeof new Function("return globalThis")().process', want: 'undefined' },
    { desc: 'the stack API cannot be hooked to reach frames', expr: '(() => { Error.prepareStackTrace = (e, cs) => cs.map((c) => typeof c.getFunction()).join(); return String(new Error("x").stack).startsWith("Error: x") })()', want: 'true' },
    { desc: 'no diagnostic report, no bindings', expr: '[typeof globalThis.process?.report, typeof globalThis.process?.binding].join()', want: 'undefined,undefined' },
    { desc: 'import() in eval is refused', expr: '(() => { try { (0, eval)("imp" + "ort(\'node:fs\')"); return "escaped" } catch (e) { return e.name } })()', want: 'SyntaxError' },
    { desc: 'fs has one call, no realpath, stat or exists', expr: 'Object.keys(fs).join()', want: 'readFileSync' },
    { desc: 'a file that exists and one that does not give the same answer', expr: '["/etc/passwd", "/no/such/file", "/proc/self/environ", "/proc/self/cmdline"].map((p) => { try { fs.readFileSync(p); return "read" } catch (e) { return e.code } }).join()', want: 'ERR_ACCESS_DENIED,ERR_ACCESS_DENIED,ERR_ACCESS_DENIED,ERR_ACCESS_DENIED' },
    { desc: 'the endowments are frozen', expr: '[fetch, console, Buffer, URL, crypto, fs].every(Object.isFrozen)', want: 'true' },
  ];
  let gw: TestGateway;
  before(async () => {
    process.env.TURNPIKE_TEST_PLANTED = 'db-password-123';
    gw = await startGateway(`serverless: { threads: 1, timeout_ms: 2000 }\nroutes:\n${probes.map((p, i) => route(`p${i}`, `return () => ({ status: 200, body: String(${p.expr}) })`)).join('')}`);
  });
  after(async () => { delete process.env.TURNPIKE_TEST_PLANTED; await gw.close(); });

  probes.forEach((p, i) => {
    it(p.desc, async () => {
      const res = await request(gw.port, `/p${i}`);
      assert.deepEqual([res.status, res.body], [200, p.want]);
    });
  });

  it('refuses at load a function that uses import()', async () => {
    const pools = new FunctionPools();
    try {
      const host = pools.host({ enabled: true, threads: 1, concurrency: 4, timeoutMs: 1000, maxQueue: 4, maxHeapMb: 64, maxResultBytes: 1 << 20, allowFsRead: [] });
      const problems = await host.check([{ id: 'imp', label: 'route "a" pre-function access[0]', source: 'return async () => (await import("node:fs")).readFileSync("/etc/passwd")' }]);
      assert.equal(problems.length, 1);
      assert.match(problems[0], /^route "a" pre-function access\[0\] is refused by the sandbox: Possible import expression rejected/);
    } finally {
      await pools.close();
    }
  });
});

describe('routes cannot see each other', () => {
  let gw: TestGateway;
  before(async () => {
    // One thread: both routes run in the same worker.
    gw = await startGateway(`serverless: { threads: 1, timeout_ms: 1000 }\nroutes:\n${
      route('tamper', `return (conf, ctx) => {
  const tries = {
    isArray: () => { Array.isArray = () => true },
    objectProto: () => { Object.prototype.leak = 'x' },
    json: () => { JSON.parse = () => 'x' },
    then: () => { Promise.prototype.then = function () {} },
    buffer: () => { Buffer.prototype.toString = () => 'x' },
    fetch: () => { fetch.leak = 'x' },
    console: () => { console.log = () => {} },
    logProto: () => { Object.getPrototypeOf(ctx.log).info = () => {} },
    requestProto: () => { Object.defineProperty(Object.getPrototypeOf(ctx.request), 'query', { get() { return 'x' } }) },
    global: () => { globalThis.shared = ctx.request.headers.authorization },
  };
  const done = [];
  for (const k in tries) { try { tries[k](); done.push(k) } catch {} }
  return { status: 200, body: done.join() };
}`)}${
      route('observe', `return async (conf, ctx) => {
  const seen = [Array.isArray('x'), typeof ({}).leak, JSON.parse('2'), await Promise.resolve(3), Buffer.from('ab').toString(), typeof fetch.leak, typeof globalThis.shared, ctx.request.query.q];
  ctx.log.info('logged');
  return { status: 200, body: seen.join() };
}`)}  - id: bodybuf
    uri: /bodybuf
    plugins:
      serverless-pre-function:
        body: true
        functions:
          - ${fn('return (c, ctx) => ({ status: 200, body: ctx.request.body.byteLength + " " + ctx.request.body.buffer.byteLength })', 12)}
`);
  });
  after(() => gw.close());

  it('a request body carries only its own bytes, never the rest of a shared buffer', async () => {
    // Two chunks: the gateway joins them into a small Buffer, cut from Node's shared pool.
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request({ port: gw.port, path: '/bodybuf', method: 'POST' }, (res) => {
        let text = '';
        res.on('data', (d) => { text += d; });
        res.on('end', () => resolve(`${res.statusCode} ${text}`));
      });
      req.on('error', reject);
      req.write('sma');
      setTimeout(() => req.end('ll'), 50);
    });
    assert.equal(body, '200 5 5');
  });

  it('a function cannot change a built-in, an endowment or a shared prototype; its globals are its own', async () => {
    const t = await request(gw.port, '/tamper', { headers: { authorization: 'Bearer secret' } });
    assert.deepEqual([t.status, t.body], [200, 'global']);
    const o = await request(gw.port, '/observe?q=1');
    assert.deepEqual([o.status, o.body], [200, 'false,undefined,2,3,ab,undefined,undefined,1']);
  });
});

describe('values handed back', () => {
  let up: Upstream;
  let gw: TestGateway;
  let logs: ReturnType<typeof captureLogs>;
  const failing: { desc: string; src: string; log: RegExp }[] = [
    { desc: 'a getter in the reply', src: 'return () => ({ status: 200, get body() { return "ran" } })', log: /the reply\.body is a getter/ },
    { desc: 'a Proxy as the reply', src: 'return () => new Proxy({ status: 200 }, {})', log: /the reply is a Proxy/ },
    { desc: 'a getter deep in ctx.vars', src: 'return (c, ctx) => { ctx.vars.a = [{ get b() { return 1 } }] }', log: /ctx\.vars\.a\[0\]\.b is a getter/ },
    { desc: 'a Proxy as the request headers', src: 'return (c, ctx) => { ctx.request.headers = new Proxy({}, { ownKeys() { for (;;) {} } }) }', log: /ctx\.request\.headers is a Proxy/ },
    { desc: 'ctx.vars replaced by a getter', src: 'return (c, ctx) => { Object.defineProperty(ctx, "vars", { get() { for (;;) {} } }) }', log: /ctx\.vars is a getter/ },
    { desc: 'an object of a class in ctx.vars', src: 'return (c, ctx) => { ctx.vars.a = new (class A { get x() { return 1 } })() }', log: /ctx\.vars\.a is not plain data/ },
    { desc: 'a thenable that is not a promise', src: 'return () => ({ then(r) { r({ status: 200 }) } })', log: /returned something that is not a reply/ },
    { desc: 'a header name with a space', src: 'return (c, ctx) => { ctx.request.headers["bad name"] = "1" }', log: /invalid header name "bad name"/ },
    { desc: 'a header set twice in two cases', src: 'return (c, ctx) => { ctx.request.headers["X-Twice"] = "1"; ctx.request.headers["x-twice"] = "2" }', log: /sets the header x-twice twice/ },
    { desc: 'a header value with CR LF', src: 'return () => ({ status: 200, headers: { "x-a": "1\\r\\nx-injected: 1" } })', log: /the reply headers\.x-a holds a character not allowed/ },
    { desc: 'a header named __proto__', src: 'return (c, ctx) => { Object.defineProperty(ctx.request.headers, "__proto__", { value: "x", enumerable: true }) }', log: /invalid header name "__proto__"/ },
    { desc: 'a reply status out of range', src: 'return () => ({ status: 1000 })', log: /the reply status must be an integer from 100 to 599/ },
  ];
  before(async () => {
    up = await startUpstream();
    const upstream = `    upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }\n`;
    gw = await startGateway(`serverless: { threads: 1, timeout_ms: 1000 }\nroutes:\n${failing.map((c, i) => route(`v${i}`, c.src, upstream)).join('')}${
      route('case', 'return (c, ctx) => { ctx.request.headers["X-Mixed-Case"] = "1"; ctx.request.headers["X-Num"] = 2 }', upstream)}${
      route('reply-case', 'return () => ({ status: 201, headers: { "X-Reply": "r" }, body: "made" })')}${
      // Names Object.prototype has, as own keys of ctx.vars: back in the gateway, then read by a later phase.
      route('proto-keys', 'return (c, ctx) => { for (const k of ["__proto__", "toString", "constructor", "plain"]) Object.defineProperty(ctx.vars, k, { value: k + "!", enumerable: true, writable: true, configurable: true }) }', upstream)
        .replace(/\n$/, `\n      serverless-post-function:\n        phase: header_filter\n        functions:\n          - ${fn('return (c, ctx) => { ctx.response.headers["x-vars"] = JSON.stringify(Object.keys(ctx.vars).sort().map((k) => k + "=" + ctx.vars[k] + ":" + Object.hasOwn(ctx.vars, k))) }', 12)}\n`)}`);
  });
  after(async () => { await gw.close(); await up.close(); });
  beforeEach(() => { logs = captureLogs(); });
  afterEach(() => logs.restore());

  failing.forEach((c, i) => {
    it(`fails closed, without running its code: ${c.desc}`, async () => {
      const before = up.seen.length;
      const res = await request(gw.port, `/v${i}`);
      assert.deepEqual([res.status, JSON.parse(res.body)], [500, { error: 'internal error', code: 'GW_ERR_FUNCTION_FAILED' }]);
      assert.equal(up.seen.length, before, 'never forwarded upstream');
      await eventually(() => logs.lines.find((l) => l.msg === 'function failed' && c.log.test(String(l.error))));
    });
  });

  it('ctx.vars keys named like Object.prototype\'s (__proto__, toString, constructor) come back as keys', async () => {
    const res = await request(gw.port, '/proto-keys');
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(String(res.headers['x-vars'])), ['__proto__=__proto__!:true', 'constructor=constructor!:true', 'plain=plain!:true', 'toString=toString!:true']);
  });

  it('header names a function sets are lower-cased', async () => {
    const res = await request(gw.port, '/case');
    const seen = JSON.parse(res.body);
    assert.deepEqual([seen.headers['x-mixed-case'], seen.headers['x-num']], ['1', '2']);
    const r = await request(gw.port, '/reply-case');
    assert.deepEqual([r.status, r.headers['x-reply'], r.body], [201, 'r', 'made']);
  });
});
