/** The function pool on its own: batching, what crosses back, and how calls fail. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FunctionPools } from '../src/serverless/pool.ts';
import { RequestData } from '../src/runtime/context.ts';
import type { Ctx, FunctionHost, FunctionProgram, Phase } from '../src/plugin.ts';
import type { ServerlessSettings } from '../src/snapshot.ts';
import { GatewayError } from '../src/errors.ts';
import { captureLogs } from './helpers/harness.ts';

const SETTINGS: ServerlessSettings = {
  enabled: true, threads: 1, concurrency: 64, timeoutMs: 1000, maxQueue: 64, maxHeapMb: 64, maxResultBytes: 1 << 20, allowFsRead: [],
};

let n = 0;
async function program(host: FunctionHost, sources: string[], phase: Phase = 'access', timeoutMs = 1000): Promise<FunctionProgram> {
  const fns = sources.map((source, i) => ({ id: `t${++n}-${i}`, source, label: `test fn ${n}[${i}]` }));
  assert.deepEqual(await host.check(fns), []);
  return host.prepare(fns, { answer: 42 }, phase, { timeoutMs, withBody: false });
}

function ctx(headers: Record<string, string | string[]> = {}, vars: Record<string, unknown> = {}): Ctx {
  const c = {
    request: new RequestData('GET', '/p', '?a=1', { host: 'example.test', ...headers }, '10.0.0.1'),
    vars,
    route: { id: 'r', uri: '/p' },
    log: { info() {}, warn() {}, error() {} },
    findConsumer: () => undefined,
    setClientAddress: () => false,
    limitRequestBody: () => undefined,
    findCredential: () => undefined,
  };
  return c as unknown as Ctx;
}

describe('function pool', () => {
  const pools = new FunctionPools();
  let host: FunctionHost;
  before(() => { host = pools.host(SETTINGS); });
  after(() => pools.close());

  const changes: { desc: string; fn: string; headers?: Record<string, string | string[]>; vars?: Record<string, unknown>; want: { headers?: Record<string, unknown>; vars?: unknown; path?: string; query?: unknown } }[] = [
    { desc: 'nothing changed', fn: 'return () => {}', headers: { 'x-a': '1' }, want: { headers: { host: 'example.test', 'x-a': '1' }, vars: {} } },
    { desc: 'a header added and one removed', fn: 'return (c, ctx) => { ctx.request.headers["x-b"] = "2"; delete ctx.request.headers["x-a"] }', headers: { 'x-a': '1' }, want: { headers: { host: 'example.test', 'x-b': '2' } } },
    { desc: 'the headers object replaced', fn: 'return (c, ctx) => { ctx.request.headers = { only: "me" } }', headers: { 'x-a': '1' }, want: { headers: { only: 'me' } } },
    { desc: 'an array header changed in place', fn: 'return (c, ctx) => { ctx.request.headers["x-list"].push("c") }', headers: { 'x-list': ['a', 'b'] }, want: { headers: { host: 'example.test', 'x-list': ['a', 'b', 'c'] } } },
    { desc: 'a header set to undefined is removed', fn: 'return (c, ctx) => { ctx.request.headers["x-a"] = undefined }', headers: { 'x-a': '1' }, want: { headers: { host: 'example.test' } } },
    { desc: 'path and query', fn: 'return (c, ctx) => { ctx.request.path = "/q"; ctx.request.query.b = "2" }', want: { path: '/q', query: { a: '1', b: '2' } } },
    { desc: 'query read but not changed is left raw', fn: 'return (c, ctx) => { if (ctx.request.query.a !== "1") throw new Error("bad") }', want: { query: undefined } },
    { desc: 'vars added to empty vars', fn: 'return (c, ctx) => { ctx.vars.who = c.answer }', want: { vars: { who: 42 } } },
    { desc: 'vars changed in place', fn: 'return (c, ctx) => { ctx.vars.list.push(2) }', vars: { list: [1] }, want: { vars: { list: [1, 2] } } },
    { desc: 'a Map in vars changed in place', fn: 'return (c, ctx) => { ctx.vars.m.set("k", 2) }', vars: { m: new Map([['k', 1]]) }, want: { vars: { m: new Map([['k', 2]]) } } },
  ];
  for (const c of changes) {
    it(`carries back what changed: ${c.desc}`, async () => {
      const p = await program(host, [c.fn]);
      const x = ctx(c.headers, c.vars);
      assert.equal(await host.run(p, x), undefined);
      if (c.want.headers) assert.deepEqual({ ...x.request.headers }, c.want.headers);
      if ('vars' in c.want) assert.deepEqual(x.vars, c.want.vars);
      if (c.want.path) assert.equal(x.request.path, c.want.path);
      if ('query' in c.want) {
        const req = x.request as RequestData;
        assert.equal(req.currentSearch(), c.want.query === undefined ? '?a=1' : '?' + new URLSearchParams(c.want.query as Record<string, string>).toString());
      }
    });
  }

  it('answers calls of one turn together, without waiting for an async one among them', async () => {
    const slow = await program(host, ['return async () => { await new Promise((r) => setTimeout(r, 300)); return { status: 200, body: "slow" } }']);
    const fast = await program(host, ['return (c, ctx) => ({ status: 200, body: ctx.request.headers.n })']);
    const order: string[] = [];
    const calls = [host.run(slow, ctx()).then((r) => order.push((r as { body: string }).body))];
    for (let i = 0; i < 5; i++) calls.push(host.run(fast, ctx({ n: String(i) })).then((r) => order.push((r as { body: string }).body)));
    await Promise.all(calls);
    assert.deepEqual(order, ['0', '1', '2', '3', '4', 'slow']);
  });

  it('fails only the call whose ctx cannot cross to a worker', async () => {
    const p = await program(host, ['return () => ({ status: 200, body: "ok" })']);
    const [bad, good] = await Promise.allSettled([host.run(p, ctx({}, { f: () => 1 })), host.run(p, ctx())]);
    assert.equal(bad.status, 'rejected');
    assert.match(((bad as PromiseRejectedResult).reason as Error).message, /^request context cannot be sent to a function: .*could not be cloned/);
    assert.deepEqual(good, { status: 'fulfilled', value: { status: 200, headers: undefined, body: 'ok' } });
  });

  it('fails at once the async calls of a worker that ends, instead of at their time limit', async () => {
    const logs = captureLogs();
    try {
      const waiting = await program(host, ['return async () => { await new Promise((r) => setTimeout(r, 3000)) }'], 'access', 5000);
      const loop = await program(host, ['return () => { for (;;) {} }'], 'access', 100);
      const pending = host.run(waiting, ctx());
      await new Promise((r) => setTimeout(r, 50)); // its batch has answered: the call is now waiting on the worker's port
      const stuck = host.run(loop, ctx());
      await assert.rejects(stuck, { code: 'GW_ERR_FUNCTION_TIMEOUT' });
      // Its other calls in flight fail closed with it, at once.
      await assert.rejects(pending, (err: GatewayError) => err.code === 'GW_ERR_FUNCTION_TIMEOUT' && /^function worker did not answer for \d+ ms and was replaced$/.test(err.message));
      // The replacement worker gets the program again and runs it.
      const again = await program(host, ['return () => ({ status: 204 })']);
      assert.equal(((await host.run(again, ctx())) as { status: number }).status, 204);
    } finally {
      logs.restore();
    }
  });
});
