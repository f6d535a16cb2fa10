/** Passive health checks: failing nodes leave rotation for a while, across reloads too. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { captureLogs, refusedPort, request, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness.ts';

const HEAD = 'listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('passive health checks', () => {
  let bad: Upstream;
  let good: Upstream;
  let gw: TestGateway;
  let dead: number;
  const config = (n: number) => `${HEAD}upstreams:
  - id: u
    nodes: { "127.0.0.1:${bad.port}": 1, "127.0.0.1:${good.port}": 1 }
    checks: { passive: { http_failures: 2, http_statuses: [503], ejection_seconds: 6 } }
  - id: lonely
    nodes: { "127.0.0.1:${bad.port}": 1 }
    checks: { passive: { http_failures: 1, http_statuses: [503] } }
  - id: flaky
    nodes: { "127.0.0.1:${dead}": 1, "127.0.0.1:${good.port}": 1 }
    checks: { passive: { tcp_failures: 1 } }
routes:
  - { id: u, uri: /u, upstream_id: u }
  - { id: lonely, uri: /lonely, upstream_id: lonely }
  - { id: flaky, uri: /flaky, upstream_id: flaky }
  - { id: marker, uri: /marker, plugins: { mocking: { response_example: "m${n}" } } }
`;

  before(async () => {
    bad = await startUpstream((_req, res) => { res.writeHead(503); res.end('down'); return true; });
    good = await startUpstream((_req, res) => { res.end('up'); return true; });
    dead = await refusedPort();
    gw = await startGateway(config(0));
    // The first reload starts the parse thread (seconds on a loaded machine): done here, so the test's reload is quick.
    await writeFile(gw.file, config(2));
    assert.equal((await gw.gw.reload('warm-up')).ok, true);
  });
  after(async () => { await gw.close(); await bad.close(); await good.close(); });

  it('ejects a node after http_failures failing statuses, then re-admits it', async () => {
    const bodies: string[] = [];
    for (let i = 0; i < 10; i++) bodies.push((await request(gw.port, '/u')).body);
    assert.equal(bodies.filter((b) => b === 'down').length, 2, bodies.join(','));
    const seenBefore = bad.seen.length;
    // Still ejected after a reload that leaves the upstream unchanged.
    await writeFile(gw.file, config(1));
    assert.equal((await gw.gw.reload('test')).ok, true);
    for (let i = 0; i < 4; i++) assert.equal((await request(gw.port, '/u')).body, 'up');
    assert.equal(bad.seen.length, seenBefore);
    await sleep(6100);
    const later: string[] = [];
    for (let i = 0; i < 4; i++) later.push((await request(gw.port, '/u')).body);
    assert.ok(later.includes('down'), 're-admitted after ejection_seconds');
  });

  it('uses an ejected node anyway when it is the only one (better than refusing all)', async () => {
    const before = bad.seen.length;
    for (let i = 0; i < 3; i++) assert.equal((await request(gw.port, '/lonely')).status, 503);
    assert.equal(bad.seen.length, before + 3);
  });

  it('ejects a node that refuses connections: later requests go straight to the healthy one', async () => {
    const logs = captureLogs();
    try {
      for (let i = 0; i < 6; i++) assert.equal((await request(gw.port, '/flaky')).body, 'up');
      assert.equal(logs.lines.filter((l) => l.msg === 'upstream node failed, retrying on another').length, 1);
      assert.equal(logs.lines.filter((l) => l.msg === 'upstream node ejected by passive health check').length, 1);
    } finally {
      logs.restore();
    }
  });
});
