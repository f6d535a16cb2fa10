/** GitOps reloads with real files and a running gateway. */
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdir, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { captureLogs, eventually, request, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness.ts';

const HEAD = 'listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n';
const mock = (id: string, body: string) => `  - { id: ${id}, uri: /${id}, plugins: { mocking: { response_example: "${body}" } } }\n`;
const config = (body: string, extra = '') => `${HEAD}routes:\n${mock('hello', body)}${extra}`;

async function status(gw: TestGateway): Promise<Record<string, any>> {
  return JSON.parse((await request(gw.adminPort, '/status')).body);
}
const hello = async (gw: TestGateway) => (await request(gw.port, '/hello')).body;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A reload on a loaded machine (the first one starts the parse thread) can take seconds: wait generously. */
const WAIT = 15_000;

describe('reload on file change', () => {
  let gw: TestGateway;
  let logs: ReturnType<typeof captureLogs>;
  beforeEach(async () => {
    logs = captureLogs();
    gw = await startGateway(config('v1'), { watch: true });
  });
  afterEach(async () => { await gw.close(); logs.restore(); });

  const changes: { desc: string; change: (file: string, text: string) => Promise<void> }[] = [
    { desc: 'in-place write', change: (f, t) => writeFile(f, t) },
    { desc: "editor's temp file + rename", change: async (f, t) => { const tmp = path.join(path.dirname(f), '.gateway.yaml.swp'); await writeFile(tmp, t); await rename(tmp, f); } },
    { desc: 'delete then recreate', change: async (f, t) => { await unlink(f); await sleep(150); await writeFile(f, t); } },
  ];
  for (const c of changes) {
    it(`${c.desc}: exactly one reload, new config served`, async () => {
      await c.change(gw.file, config('v2'));
      await eventually(async () => (await hello(gw)) === 'v2', WAIT);
      await sleep(300); // let any further events arrive
      const s = await status(gw);
      assert.equal(s.reloads.success, 1);
      assert.equal(logs.lines.filter((l) => l.msg === 'config reloaded').length, 1);
    });
  }

  it('skips a write whose content is unchanged', async () => {
    await writeFile(gw.file, config('v1'));
    await sleep(400);
    assert.equal((await status(gw)).reloads.success, 0);
    assert.equal(logs.lines.filter((l) => l.msg === 'config reloaded').length, 0);
  });

  it('20 rapid writes converge on the last one', async () => {
    for (let i = 1; i <= 20; i++) await writeFile(gw.file, config(`w${i}`));
    await eventually(async () => (await hello(gw)) === 'w20', WAIT);
    await sleep(300);
    assert.equal(await hello(gw), 'w20');
    const s = await status(gw);
    assert.ok(s.reloads.success >= 1 && s.reloads.success <= 20);
    assert.equal(s.last_reload_ok, true);
  });

  it('a deleted file keeps the last good config serving until it comes back', async () => {
    await unlink(gw.file);
    await eventually(async () => (await status(gw)).last_failure?.message.endsWith('file not found'), WAIT);
    assert.equal(await hello(gw), 'v1');
    await writeFile(gw.file, config('back'));
    await eventually(async () => (await hello(gw)) === 'back', WAIT);
  });
});

describe('the Kubernetes ConfigMap layout (..data symlink swap)', () => {
  it('reloads once when ..data is swapped to a new directory', async () => {
    const logs = captureLogs();
    const gw = await startGateway(config('ignored'), { watch: false });
    const dir = path.join(gw.dir, 'k8s');
    try {
      await mkdir(path.join(dir, '..2026_01'), { recursive: true });
      await writeFile(path.join(dir, '..2026_01', 'gateway.yaml'), config('cm1'));
      await symlink('..2026_01', path.join(dir, '..data'));
      await symlink('..data/gateway.yaml', path.join(dir, 'gateway.yaml'));
      const { Gateway } = await import('../src/runtime/gateway.ts');
      const k = await Gateway.start({ config: path.join(dir, 'gateway.yaml'), env: {} });
      try {
        assert.equal((await request(k.port, '/hello')).body, 'cm1');
        // What the kubelet does: write a new dated dir, point a temp link at it, rename over ..data.
        await mkdir(path.join(dir, '..2026_02'));
        await writeFile(path.join(dir, '..2026_02', 'gateway.yaml'), config('cm2'));
        await symlink('..2026_02', path.join(dir, '..data_tmp'));
        await rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
        await rm(path.join(dir, '..2026_01'), { recursive: true });
        await eventually(async () => (await request(k.port, '/hello')).body === 'cm2', WAIT);
        await sleep(300);
        assert.equal(k.status().reloads && (k.status().reloads as { success: number }).success, 1);
      } finally {
        await k.close(100);
      }
    } finally {
      await gw.close();
      logs.restore();
    }
  });
});

describe('every way of replacing a symlinked gateway.yaml reloads once', () => {
  // gateway.yaml is a link (the Kubernetes layout, or a link into a checkout); the change comes in another way each time.
  const layouts: { desc: string; change: (dir: string, text: string) => Promise<void> }[] = [
    { desc: 'an editor renames a new regular file over the link', change: async (dir, t) => { await writeFile(path.join(dir, '.gateway.yaml.tmp'), t); await rename(path.join(dir, '.gateway.yaml.tmp'), path.join(dir, 'gateway.yaml')); } },
    { desc: 'the link is pointed at another file', change: async (dir, t) => { const n = `other${Math.random()}.yaml`; await writeFile(path.join(dir, n), t); await symlink(n, path.join(dir, 'link.tmp')); await rename(path.join(dir, 'link.tmp'), path.join(dir, 'gateway.yaml')); } },
    { desc: 'the target, in another directory, is written in place (no event: the periodic check sees it)', change: (dir, t) => writeFile(path.join(dir, '..', 'elsewhere', 'real.yaml'), t) },
  ];
  for (const l of layouts) {
    it(l.desc, async () => {
      const logs = captureLogs();
      const holder = await startGateway(config('ignored'), { watch: false });
      // conf/gateway.yaml -> ..data/gateway.yaml, conf/..data -> ..2026_01 -> ../elsewhere/real.yaml
      const dir = path.join(holder.dir, 'conf');
      await mkdir(path.join(dir, '..2026_01'), { recursive: true });
      await mkdir(path.join(holder.dir, 'elsewhere'));
      await writeFile(path.join(holder.dir, 'elsewhere', 'real.yaml'), config('v1'));
      await symlink('../../elsewhere/real.yaml', path.join(dir, '..2026_01', 'gateway.yaml'));
      await symlink('..2026_01', path.join(dir, '..data'));
      await symlink('..data/gateway.yaml', path.join(dir, 'gateway.yaml'));
      const { Gateway } = await import('../src/runtime/gateway.ts');
      const gw = await Gateway.start({ config: path.join(dir, 'gateway.yaml'), env: {}, pollMs: 200 });
      try {
        assert.equal((await request(gw.port, '/hello')).body, 'v1');
        for (const [i, v] of ['v2', 'v3'].entries()) {
          await l.change(dir, config(v));
          await eventually(async () => (await request(gw.port, '/hello')).body === v, WAIT);
          await sleep(600); // two more periodic checks and any late event
          assert.deepEqual(gw.status().reloads, { success: i + 1, failure: 0 });
        }
      } finally {
        await gw.close(100);
        await holder.close();
        logs.restore();
      }
    });
  }

  it('a rejected change is rejected once, though both the event and the periodic check see it', async () => {
    const logs = captureLogs();
    const holder = await startGateway(config('v1'), { watch: false });
    const { Gateway } = await import('../src/runtime/gateway.ts');
    const gw = await Gateway.start({ config: holder.file, env: {}, pollMs: 100, debounceMs: 150 });
    try {
      await writeFile(holder.file, `${HEAD}routes: [\n`);
      await eventually(() => (gw.status().reloads as { failure: number }).failure === 1, WAIT);
      await sleep(500);
      assert.deepEqual(gw.status().reloads, { success: 0, failure: 1 });
      assert.equal((await request(gw.port, '/hello')).body, 'v1');
    } finally {
      await gw.close(100);
      await holder.close();
      logs.restore();
    }
  });
});

describe('rejected reloads keep the last good config', () => {
  let gw: TestGateway;
  let logs: ReturnType<typeof captureLogs>;
  before(async () => { gw = await startGateway(config('good'), { watch: false, env: {} }); });
  after(() => gw.close());
  beforeEach(() => { logs = captureLogs(); });
  afterEach(() => logs.restore());

  const bad: { desc: string; text: string; want: string }[] = [
    { desc: 'invalid YAML', text: `${HEAD}routes:\n  - id: a\n   uri: [\n`, want: 'gateway.yaml:6:1: YAML: Sequence item without - indicator' },
    { desc: 'schema error', text: `${HEAD}routes:\n  - { id: a, uri: 5, plugins: { mocking: {} } }\n`, want: 'gateway.yaml:5:19: routes[0].uri: must be of type string' },
    { desc: 'unknown plugin', text: `${HEAD}routes:\n  - { id: a, uri: /a, plugins: { nope: {} } }\n`, want: 'gateway.yaml:5:34: routes[0].plugins.nope: unknown plugin "nope"' },
    { desc: 'dangling reference', text: `${HEAD}routes:\n  - { id: a, uri: /a, service_id: gone }\n`, want: 'gateway.yaml:5:35: routes[0].service_id: service "gone" is not defined in services' },
    { desc: 'bad function', text: `${HEAD}routes:\n  - { id: a, uri: /a, plugins: { pre-function: { functions: ["return 1"] } } }\n`, want: 'gateway.yaml:5:34: routes[0].plugins.pre-function: plugin pre-function: route "a" pre-function access[0] must return a function' },
    { desc: 'missing env var', text: `${HEAD}routes:\n  - { id: a, uri: "/\${{NOPE}}", plugins: { mocking: {} } }\n`, want: 'gateway.yaml:5:21: environment variable NOPE is not set and has no default' },
    { desc: 'empty file', text: '', want: 'gateway.yaml:1:1: file is empty: a gateway needs at least one route' },
    { desc: 'truncated file', text: config('good').slice(0, 60), want: 'gateway.yaml:5:' },
  ];
  for (const b of bad) {
    it(b.desc, async () => {
      const before = await status(gw);
      await writeFile(gw.file, b.text);
      const res = await gw.gw.reload('test');
      assert.equal(res.ok, false);
      assert.equal(await hello(gw), 'good');
      const s = await status(gw);
      assert.equal(s.hash, before.hash, 'still serving the old config');
      assert.equal(s.last_reload_ok, false);
      assert.ok(s.last_failure.message.includes(b.want), s.last_failure.message);
      assert.equal(s.reloads.failure, before.reloads.failure + 1);
      const line = logs.lines.find((l) => l.msg === 'config rejected, still serving the last good config')!;
      assert.equal(line.result, 'failure');
      assert.equal(line.serving, before.hash);
      assert.ok((line.errors as string[]).some((e) => e.includes(b.want)));
      const metrics = (await request(gw.adminPort, '/metrics')).body;
      assert.match(metrics, /^turnpike_config_last_reload_successful 0$/m);
      assert.match(metrics, new RegExp(`^turnpike_config_info\\{hash="${before.hash}"\\} 1$`, 'm'));
    });
  }

  it('recovers when a valid file lands, and says so in status and metrics', async () => {
    await writeFile(gw.file, config('fixed'));
    const res = await gw.gw.reload('test');
    assert.equal(res.ok, true);
    assert.equal(await hello(gw), 'fixed');
    const s = await status(gw);
    assert.equal(s.last_reload_ok, true);
    assert.match((await request(gw.adminPort, '/metrics')).body, /^turnpike_config_last_reload_successful 1$/m);
    const line = logs.lines.find((l) => l.msg === 'config reloaded')!;
    assert.deepEqual([line.result, line.hash, typeof line.duration_ms], ['success', s.hash, 'number']);
  });
});

describe('reloads under traffic', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream((_req, res) => { res.writeHead(200); res.end('up'); return true; });
    gw = await startGateway(`${HEAD}routes:\n  - { id: p, uri: /p, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } } }\n${mock('hello', 'r0')}`, { watch: false });
  });
  after(async () => { await gw.close(); await up.close(); });

  it('requests running during reloads all succeed; unchanged upstream keeps its connections', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    let stop = false;
    let failed = 0, done = 0;
    const load = Promise.all(Array.from({ length: 8 }, async () => {
      while (!stop) {
        const res = await request(gw.port, '/p', { agent }).catch(() => ({ status: 0, body: '' }));
        if (res.status !== 200 || res.body !== 'up') failed++;
        done++;
      }
    }));
    await sleep(100);
    for (let i = 1; i <= 10; i++) {
      await writeFile(gw.file, `${HEAD}routes:\n  - { id: p, uri: /p, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } } }\n${mock('hello', `r${i}`)}`);
      const res = await gw.gw.reload('test');
      assert.equal(res.ok, true);
      await sleep(20);
    }
    stop = true;
    await load;
    agent.destroy();
    assert.equal(failed, 0, `${failed} of ${done} requests failed`);
    assert.ok(done > 50);
    assert.equal(await hello(gw), 'r10');
    assert.equal(gw.gw.pools.size, 1, 'one pool, kept across reloads');
    // 8 clients need at most 8 upstream connections; a pool rebuilt per reload would open more.
    assert.ok(up.connections() <= 8, `${up.connections()} upstream connections`);
  });
});

describe('upstream pools across reloads', () => {
  it('closes the pool of a node a reload removed, once it is idle', async () => {
    const a = await startUpstream((_req, res) => { res.end('a'); return true; });
    const b = await startUpstream((_req, res) => { res.end('b'); return true; });
    const file = (port: number) => `${HEAD}routes:\n  - { id: p, uri: /p, upstream: { nodes: { "127.0.0.1:${port}": 1 } } }\n`;
    const gw = await startGateway(file(a.port), { watch: false });
    const closedOnA = new Promise<void>((resolve) => { a.onClose = resolve; });
    try {
      assert.equal((await request(gw.port, '/p', { agent: new http.Agent({ keepAlive: true }) })).body, 'a');
      await writeFile(gw.file, file(b.port));
      assert.equal((await gw.gw.reload('test')).ok, true);
      assert.equal((await request(gw.port, '/p')).body, 'b');
      assert.equal(gw.gw.pools.size, 1, 'only the pool to b is kept');
      await closedOnA; // the gateway's keep-alive connection to a was closed
    } finally {
      await gw.close();
      await a.close();
      await b.close();
    }
  });
});

describe('balancer state across reloads', () => {
  it('round robin keeps its position when a reload leaves the upstream unchanged', async () => {
    const a = await startUpstream((_req, res) => { res.end('a'); return true; });
    const b = await startUpstream((_req, res) => { res.end('b'); return true; });
    const file = (n: number) => `${HEAD}upstreams:\n  - { id: u, nodes: { "127.0.0.1:${a.port}": 1, "127.0.0.1:${b.port}": 1 } }\nroutes:\n  - { id: p, uri: /p, upstream_id: u }\n${mock('hello', `r${n}`)}`;
    const gw = await startGateway(file(0), { watch: false });
    try {
      const served: string[] = [];
      for (let i = 1; i <= 6; i++) {
        served.push((await request(gw.port, '/p')).body);
        await writeFile(gw.file, file(i)); // an unrelated change
        assert.equal((await gw.gw.reload('test')).ok, true);
      }
      // Without the carry-over every reload restarts at the first node: a,a,a,a,a,a.
      assert.deepEqual(served, ['a', 'b', 'a', 'b', 'a', 'b']);
    } finally {
      await gw.close();
      await a.close();
      await b.close();
    }
  });
});

describe('serverless functions across reloads', () => {
  it('an unchanged function keeps its closure state; a changed one starts afresh', async () => {
    const counter = (label: string) => `  - id: c\n    uri: /c\n    plugins:\n      serverless-pre-function:\n        functions:\n          - |\n            let n = 0;\n            return () => ({ status: 200, body: "${label}" + (++n) })\n`;
    const file = (fnLabel: string, other: string) => `${HEAD}serverless: { threads: 1 }\nroutes:\n${counter(fnLabel)}${mock('hello', other)}`;
    const gw = await startGateway(file('a', 'x'), { watch: false });
    try {
      const get = async () => (await request(gw.port, '/c')).body;
      assert.deepEqual([await get(), await get()], ['a1', 'a2']);
      await writeFile(gw.file, file('a', 'y')); // the function is unchanged
      assert.equal((await gw.gw.reload('test')).ok, true);
      assert.equal(await get(), 'a3');
      await writeFile(gw.file, file('b', 'y')); // the function changed
      assert.equal((await gw.gw.reload('test')).ok, true);
      assert.deepEqual([await get(), await get()], ['b1', 'b2']);
    } finally {
      await gw.close();
    }
  });
});
