/** The host with 2 worker threads: a blocked worker replaced, SIGTERM draining both (and their log lines). */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, request, startUpstream, type Upstream } from './helpers/harness.ts';
import { bodies, startHost } from './helpers/host.ts';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'turnpike.js');

describe('the watchdog', () => {
  let h: Awaited<ReturnType<typeof startHost>>;
  before(async () => { h = await startHost('alive', { watchdogMs: 1500 }); });
  after(async () => { await h?.close(); });

  it('replaces a worker whose event loop stays blocked past the bound', async () => {
    h.host.hook(1, 'block');
    const st = await eventually(async () => { const s = await h.status(); return s.workers[1].restarts === 1 ? s : undefined; }, 60_000, 100);
    assert.deepEqual([st.worker_restarts, st.workers[0].restarts], [1, 0]);
    assert.deepEqual(await bodies(h.host.port, 30), Array(30).fill('200 alive'));
  });
});

describe('turnpike start --workers 2', () => {
  let up: Upstream;
  let dir: string;
  before(async () => {
    up = await startUpstream((_req, res) => { setTimeout(() => res.end('slow'), 800); });
    dir = await mkdtemp(path.join(tmpdir(), 'turnpike-drain-'));
  });
  after(async () => { await up?.close(); await rm(dir, { recursive: true, force: true }); });

  it('SIGTERM drains both workers: requests in flight finish, then exit 0', async () => {
    const file = path.join(dir, 'gateway.yaml');
    await writeFile(file, `listen: 127.0.0.1:0\nadmin:\n  enabled: false\nroutes:\n  - id: r\n    uri: /x\n    upstream:\n      nodes: { "127.0.0.1:${up.port}": 1 }\n`);
    const p = spawn(process.execPath, [BIN, 'start', '-c', file, '--workers', '2', '--no-watch'], { cwd: dir });
    let out = '';
    const port = await new Promise<number>((resolve, reject) => {
      p.stdout.on('data', (d) => { out += d; const m = /"msg":"turnpike started","listen":"127\.0\.0\.1:(\d+)".*"workers":2/.exec(out); if (m) resolve(Number(m[1])); });
      p.on('close', () => reject(new Error(`exited early: ${out}`)));
    });
    const inflight = Array.from({ length: 12 }, () => request(port, '/x'));
    await eventually(() => up.seen.length === 12, 10_000);
    const code = new Promise<number | null>((resolve) => p.on('close', resolve));
    p.kill('SIGTERM');
    assert.deepEqual((await Promise.all(inflight)).map((r) => `${r.status} ${r.body}`), Array(12).fill('200 slow'));
    assert.equal(await code, 0);
    assert.match(out, /"msg":"shutting down","signal":"SIGTERM"/);
    // The workers batch their log lines: the last batch is out before they report drained.
    assert.equal(out.split('\n').filter((l) => l.includes('"msg":"access","route":"r","method":"GET","path":"/x","status":200')).length, 12);
  });
});
