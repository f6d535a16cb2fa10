/**
 * The host with 2 worker threads: connections spread, one parse per change,
 * reloads in every worker or in none, a crashed worker replaced (blocked
 * workers and SIGTERM: workers-faults.test.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { eventually, request, startUpstream, type Upstream } from './helpers/harness.ts';
import { bodies, startHost, yaml } from './helpers/host.ts';
import { YOUNG_GENERATION_MB } from '../src/runtime/supervisor.ts';

describe('a host with 2 workers', () => {
  let h: Awaited<ReturnType<typeof startHost>>;
  before(async () => { h = await startHost('one'); });
  after(async () => { await h?.close(); });

  it('spreads connections over both workers; /status and /metrics count the whole host', async () => {
    assert.deepEqual(await bodies(h.host.port, 60), Array(60).fill('200 one'));
    const st = await h.status();
    assert.equal(st.workers.length, 2);
    assert.ok(st.workers.every((w) => w.requests > 0 && w.hash === st.hash), JSON.stringify(st.workers));
    assert.equal(st.workers[0].requests + st.workers[1].requests, 60);
    assert.match((await request(h.host.adminPort!, '/metrics')).body, /turnpike_http_responses_total\{class="2xx"\} 60\n[^]*turnpike_workers 2\n/);
  });

  it('parses once per change on the main thread; every worker serves the new config', async () => {
    assert.equal((await h.status()).parses, 1);
    await writeFile(h.file, yaml('two'));
    const res = await h.host.reload('test');
    assert.equal(res.ok, true);
    const st = await eventually(async () => { const s = await h.status(); return s.workers.every((w) => w.hash === res.hash) ? s : undefined; });
    assert.deepEqual([st.parses, st.hash, st.workers.map((w) => w.parses)], [2, res.hash, [0, 0]]);
    assert.deepEqual(await bodies(h.host.port, 30), Array(30).fill('200 two'));
    assert.deepEqual(await h.host.reload('same file'), { ok: true, hash: res.hash, unchanged: true });
    assert.equal((await h.status()).parses, 2);
  });

  it('a reload one worker rejects is rejected everywhere; the next one goes through', async () => {
    const before = (await h.status()).hash;
    h.host.hook(1, 'reject');
    await writeFile(h.file, yaml('three'));
    const res = await h.host.reload('test');
    assert.equal(res.ok, false);
    assert.match(!res.ok ? res.issues[0].message : '', /^worker 1 rejected the config \(test hook\)$/);
    assert.deepEqual(await bodies(h.host.port, 30), Array(30).fill('200 two'));
    const st = await h.status();
    assert.deepEqual([st.hash, st.last_reload_ok, st.workers.map((w) => w.hash)], [before, false, [before, before]]);
    assert.equal((await h.host.reload('again')).ok, true);
    assert.deepEqual(await bodies(h.host.port, 30), Array(30).fill('200 three'));
  });

  it('each worker reports its heap; its young generation is capped (V8 would grow it to 192 MiB on a large host)', async () => {
    const st = await eventually(async () => { const s = await h.status(); return s.workers.every((w) => w.heap.total_mb > 0) ? s : undefined; });
    assert.deepEqual(st.workers.map((w) => w.heap.young_generation_limit_mb), [YOUNG_GENERATION_MB, YOUNG_GENERATION_MB]);
    assert.ok(st.workers.every((w) => w.heap.total_mb < 512), JSON.stringify(st.workers));
  });

  it('a worker that crashes is replaced; the host keeps serving', async () => {
    h.host.hook(0, 'crash');
    const st = await eventually(async () => { const s = await h.status(); return s.workers[0].restarts === 1 ? s : undefined; }, 60_000, 100);
    assert.equal(st.worker_restarts, 1);
    // The replacement runs with the same limits as the worker it replaced.
    assert.equal(st.workers[0].heap.young_generation_limit_mb, YOUNG_GENERATION_MB);
    assert.deepEqual(await bodies(h.host.port, 30), Array(30).fill('200 three'));
    assert.match((await request(h.host.adminPort!, '/metrics')).body, /turnpike_worker_restarts_total 1\n/);
  });
});

describe('passive health across workers', () => {
  let bad: Upstream;
  let good: Upstream;
  let h: Awaited<ReturnType<typeof startHost>>;
  before(async () => {
    bad = await startUpstream((_req, res) => { res.writeHead(503); res.end('down'); return true; });
    good = await startUpstream((_req, res) => { res.end('up'); return true; });
    h = await startHost('x');
    await writeFile(h.file, `${yaml('x')}  - id: u\n    uri: /u\n    upstream:\n      nodes: { "127.0.0.1:${bad.port}": 1, "127.0.0.1:${good.port}": 1 }\n      checks: { passive: { http_failures: 2, http_statuses: [503], ejection_seconds: 60 } }\n`);
    assert.equal((await h.host.reload('test')).ok, true);
  });
  after(async () => { await h?.close(); await bad?.close(); await good?.close(); });

  it('a node ejected by one worker is ejected for all: 2 failures in all, not 2 per worker', async () => {
    const got: string[] = [];
    for (let i = 0; i < 40; i++) got.push((await request(h.host.port, '/u')).body);
    assert.equal(bad.seen.length, 2, got.join(','));
    assert.deepEqual(got.filter((b) => b !== 'up'), ['down', 'down']);
    assert.ok((await h.status()).workers.every((w) => w.requests > 0));
  });
});
