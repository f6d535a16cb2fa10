/**
 * Hostile functions against the limits: how long they can hold a worker, what
 * outlives a call, memory off the heap. Each class is tried several ways.
 */
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { captureLogs, eventually, request, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness.ts';
import { FunctionPools } from '../src/serverless/pool.ts';
import { RequestData } from '../src/runtime/context.ts';
import type { GatewayError } from '../src/errors.ts';
import type { Ctx } from '../src/plugin.ts';

/** A YAML block scalar holding one function. */
const fn = (src: string, indent = 10) => '|\n' + src.trim().split('\n').map((l) => ' '.repeat(indent) + l).join('\n');
const route = (id: string, src: string, extra = '') =>
  `  - id: ${id}\n    uri: /${id}\n${extra}    plugins:\n      serverless-pre-function:\n        functions:\n          - ${fn(src, 12)}\n`;
const OK = route('ok', 'return () => ({ status: 200, body: "ok" })');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a worker cannot be held', () => {
  const cases: { desc: string; src: string; status: number; replaced: boolean }[] = [
    { desc: 'a microtask loop started before answering', src: 'return () => { Promise.resolve().then(function f() { return Promise.resolve().then(f) }); return { status: 200, body: "answered" } }', status: 200, replaced: true },
    { desc: 'an await loop started before answering', src: 'return () => { (async () => { for (;;) await null })(); return { status: 200, body: "answered" } }', status: 200, replaced: true },
    { desc: 'a timer callback that loops', src: 'return async () => { await new Promise(() => setTimeout(() => { for (;;) {} }, 1)) }', status: 504, replaced: true },
    { desc: 'a looping then in the value handed back', src: 'return async () => ({ then() { for (;;) {} } })', status: 504, replaced: true },
    { desc: 'Date.now replaced, then a loop', src: 'return () => { try { Date.now = () => 0 } catch {} for (;;) {} }', status: 504, replaced: true },
    { desc: 'a looping getter in the value handed back (never run)', src: 'return () => ({ status: 200, get body() { for (;;) {} } })', status: 500, replaced: false },
  ];
  let gw: TestGateway;
  let logs: ReturnType<typeof captureLogs>;
  before(async () => {
    gw = await startGateway(`serverless: { threads: 2, timeout_ms: 300 }\nroutes:\n${OK}${cases.map((c, i) => route(`h${i}`, c.src)).join('')}`);
  });
  after(() => gw.close());
  beforeEach(() => { logs = captureLogs(); });
  afterEach(() => logs.restore());

  cases.forEach((c, i) => {
    it(`${c.desc}: the worker is replaced, every other call is served`, async () => {
      const res = await request(gw.port, `/h${i}`);
      assert.equal(res.status, c.status);
      if (c.replaced) await eventually(() => logs.lines.find((l) => l.msg === 'function worker replaced'), 5000);
      // Within one time limit plus a worker start, every call is served again.
      await eventually(async () => (await request(gw.port, '/ok')).status === 200, 5000);
      const next = await Promise.all(Array.from({ length: 6 }, () => request(gw.port, '/ok')));
      assert.deepEqual(next.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
    });
  });
});

describe('the watchdog under steady traffic', () => {
  it('a call that never ends times out while other calls keep coming, one every millisecond (a new call must not put the watchdog off)', async () => {
    const pools = new FunctionPools();
    try {
      const host = pools.host({ enabled: true, threads: 1, concurrency: 64, timeoutMs: 200, maxQueue: 100_000, maxHeapMb: 64, maxResultBytes: 1 << 20, allowFsRead: [] });
      const fns = { spin: [{ id: 'wd-spin', label: 'spin', source: 'return () => { for (;;) {} }' }], ok: [{ id: 'wd-ok', label: 'ok', source: 'return () => {}' }] };
      assert.deepEqual([...await host.check(fns.spin), ...await host.check(fns.ok)], []);
      const [spin, ok] = [host.prepare(fns.spin, {}, 'access', { timeoutMs: 200, withBody: false }), host.prepare(fns.ok, {}, 'access', { timeoutMs: 200, withBody: false })];
      const ctx = () => ({ request: new RequestData('GET', '/x', '', {}, '127.0.0.1'), vars: {}, route: { id: 'r', uri: '/x' } }) as unknown as Ctx;
      let outcome = '';
      const looping = Promise.resolve(host.run(spin, ctx())).then(() => 'answered', (err: GatewayError) => err.code).then((o) => { outcome = o; });
      // One call every millisecond, none awaited, until the looping call has its answer: 5,000 at most (the
      // old watchdog, put off by each new call, never came while they kept coming).
      const others: Promise<unknown>[] = [];
      for (let i = 0; outcome === '' && i < 5000; i++) {
        others.push(Promise.resolve(host.run(ok, ctx())).catch(() => undefined));
        await sleep(1);
      }
      assert.equal(outcome, 'GW_ERR_FUNCTION_TIMEOUT');
      await looping;
      await Promise.all(others);
    } finally {
      await pools.close();
    }
  });
});

describe('work does not outlive its call', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(`serverless: { threads: 1, timeout_ms: 1000 }\nroutes:\n${OK}${
      route('ticker', `return () => { setInterval(() => { fetch('http://127.0.0.1:${up.port}/tick').catch(() => {}) }, 5); setTimeout(() => { fetch('http://127.0.0.1:${up.port}/later').catch(() => {}) }, 20); return { status: 200, body: 'answered' } }`)}${
      route('waits', 'return async () => { const t0 = Date.now(); await new Promise((r) => setTimeout(r, 30)); let n = 0; await new Promise((r) => { const t = setInterval(() => { if (++n === 3) { clearInterval(t); r() } }, 5) }); return { status: 200, body: String(n) } }')}`);
  });
  after(async () => { await gw.close(); await up.close(); });

  it('timers and intervals a call set end when it answers', async () => {
    const res = await Promise.all(Array.from({ length: 5 }, () => request(gw.port, '/ticker')));
    assert.deepEqual(res.map((r) => r.status), [200, 200, 200, 200, 200]);
    await sleep(300);
    assert.deepEqual(up.seen.filter((s) => s.url === '/tick' || s.url === '/later'), []);
  });

  it('timers work while the call runs', async () => {
    const res = await request(gw.port, '/waits');
    assert.deepEqual([res.status, res.body], [200, '3']);
  });

  it('timers cannot be set outside a call (closure code at load)', async () => {
    const pools = new FunctionPools();
    try {
      const host = pools.host({ enabled: true, threads: 1, concurrency: 4, timeoutMs: 1000, maxQueue: 4, maxHeapMb: 64, maxResultBytes: 1 << 20, allowFsRead: [] });
      const problems = await host.check([{ id: 'tl', label: 'f', source: 'setInterval(() => {}, 10);\nreturn () => {}' }]);
      assert.deepEqual(problems, ['f threw while loading (line 1): setInterval is only available while a call runs']);
    } finally {
      await pools.close();
    }
  });
});

describe('memory off the heap', () => {
  const cases = [
    { desc: 'Buffers kept in closure state', src: 'const keep = [];\nreturn () => { for (let i = 0; i < 64; i++) keep.push(Buffer.alloc(8 << 20, 1)); return { status: 200 } }' },
    { desc: 'typed arrays', src: 'return () => { const keep = []; for (let i = 0; i < 64; i++) keep.push(new Uint8Array(8 << 20).fill(1)); return { status: 200, body: String(keep.length) } }' },
    { desc: 'ArrayBuffers from TextEncoder', src: 'return () => { const keep = []; const s = "x".repeat(1 << 20); const e = new TextEncoder(); for (let i = 0; i < 512; i++) keep.push(e.encode(s)); return { status: 200, body: String(keep.length) } }' },
  ];
  let gw: TestGateway;
  let logs: ReturnType<typeof captureLogs>;
  before(async () => {
    gw = await startGateway(`serverless: { threads: 2, timeout_ms: 20000, max_heap_mb: 32 }\nroutes:\n${OK}${cases.map((c, i) => route(`m${i}`, c.src)).join('')}`);
  });
  after(() => gw.close());
  beforeEach(() => { logs = captureLogs(); });
  afterEach(() => logs.restore());

  cases.forEach((c, i) => {
    it(`${c.desc} past max_heap_mb: 500, the worker is replaced, the next call is served`, async () => {
      const res = await request(gw.port, `/m${i}`);
      assert.deepEqual([res.status, JSON.parse(res.body)], [500, { error: 'internal error', code: 'GW_ERR_FUNCTION_FAILED' }]);
      const line = await eventually(() => logs.lines.find((l) => l.msg === 'function worker replaced'));
      assert.match(String(line.error), /^function worker held \d+ MiB outside its heap, over max_heap_mb \(32\), and was replaced$/);
      await eventually(async () => (await request(gw.port, '/ok')).status === 200, 5000);
    });
  });
});
