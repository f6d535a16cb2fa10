/** Active health checks: http, tcp and https probes, thresholds both ways, one prober per host, reloads. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Host } from '../src/runtime/supervisor.ts';
import { captureLogs, eventually, refusedPort, request, startGateway, type TestGateway } from './helpers/harness.ts';
import { makeUpstreamCerts, type UpstreamCerts } from './helpers/upstream-certs.ts';

/** A node whose /health answers `health` (changeable); counts probes and other requests; other paths answer its name. */
interface Node { port: number; name: string; health: number; probes: number; served: number; close(): Promise<void> }

async function node(name: string, health = 200, tls?: https.ServerOptions): Promise<Node> {
  const n = { name, health, probes: 0, served: 0 } as Node;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.url === '/health') { n.probes++; res.writeHead(n.health); res.end(); return; }
    n.served++;
    res.end(name);
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  n.port = (server.address() as AddressInfo).port;
  n.close = () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); });
  return n;
}

interface Health { upstream: string; node: string; healthy: boolean; reason: string | null; active?: { probes: number; last?: string } }

async function health(adminPort: number): Promise<Health[]> {
  return (JSON.parse((await request(adminPort, '/status')).body) as { upstream_health: Health[] }).upstream_health;
}

/** Polls /status until `origin`'s healthy flag is `want` (generous cap: the suite runs on a loaded machine). */
async function until(adminPort: number, origin: string, want: boolean): Promise<Health> {
  try {
    return await eventually(async () => (await health(adminPort)).find((h) => h.node === origin && h.healthy === want), 20_000, 50);
  } catch (err) {
    throw new Error(`${origin} not ${want ? 'healthy' : 'unhealthy'} in time: ${JSON.stringify((await health(adminPort)).find((h) => h.node === origin))}`, { cause: err });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function bodies(port: number, path: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await request(port, path)).body);
  return out;
}

describe('active health checks: http and tcp probes', () => {
  let a: Node, b: Node, c: Node, d: Node;
  let dead: number;
  let silent: net.Server;
  let silentPort: number;
  let gw: TestGateway;
  const conf = (extra = '') => `
upstreams:
  # B goes down after exactly 3 failing probes; once down it is probed again only after a minute.
  - id: ab
    nodes: { "127.0.0.1:${a.port}": 1, "127.0.0.1:${b.port}": 1 }
    checks:
      active:
        http_path: /health
        timeout: 5  # generous: a probe slowed by a loaded machine must not count as a timeout
        req_headers: ["X-Probe: turnpike"]
        healthy: { interval: 0.1 }
        unhealthy: { interval: 60, http_failures: 3 }
  # C is down from its first probe; it comes back after exactly 2 good probes, then is probed once a minute.
  - id: c
    nodes: { "127.0.0.1:${c.port}": 1 }
    checks:
      active:
        http_path: /health
        timeout: 5
        healthy: { interval: 60, successes: 2 }
        unhealthy: { interval: 0.1, http_failures: 1 }
  - id: tcp
    nodes: { "127.0.0.1:${d.port}": 1, "127.0.0.1:${dead}": 1 }
    checks:
      active: { type: tcp, timeout: 2, healthy: { interval: 0.1 }, unhealthy: { interval: 0.1, tcp_failures: 2 } }
  # Hostile: a node that accepts connections and never answers.
  - id: silent
    nodes: { "127.0.0.1:${d.port}": 1, "127.0.0.1:${silentPort}": 1 }
    checks:
      active: { http_path: /health, timeout: 0.2, healthy: { interval: 0.1 }, unhealthy: { interval: 0.1, timeouts: 2 } }
routes:
  - { id: ab, uri: /ab, upstream_id: ab }
  - { id: c, uri: /c, upstream_id: c }
  - { id: tcp, uri: /tcp, upstream_id: tcp }
  - { id: silent, uri: /silent, upstream_id: silent }
${extra}`;
  before(async () => {
    a = await node('a');
    b = await node('b');
    c = await node('c', 503);
    d = await node('d');
    dead = await refusedPort();
    silent = net.createServer((s) => s.on('error', () => {}));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    silentPort = (silent.address() as AddressInfo).port;
    gw = await startGateway(conf());
  });
  after(async () => {
    await gw?.close();
    await Promise.all([a, b, c, d].map((n) => n?.close()));
    silent?.close();
  });

  it('a node failing its http_path is taken out after unhealthy.http_failures probes; traffic goes to the other; a reload keeps its state', async () => {
    const origin = `http://127.0.0.1:${b.port}`;
    assert.deepEqual(new Set(await bodies(gw.port, '/ab', 4)), new Set(['a', 'b']));
    const logs = captureLogs();
    try {
      const before = b.probes;
      b.health = 500;
      const h = await until(gw.adminPort, origin, false);
      assert.match(h.reason!, /^active: probes failing \(last: status 500; in a row: 3 http, 0 tcp, 0 timeouts\)$/);
      assert.equal(b.probes - before, 3);
      // Only ab's: the other upstreams' probes (the refused tcp node) may log their own meanwhile.
      const down = logs.lines.filter((l) => l.msg === 'upstream node down by active health check' && l.upstream === 'ab');
      assert.deepEqual(down.map((l) => [l.upstream, l.node, l.probe]), [['ab', origin, 500]]);
    } finally {
      logs.restore();
    }
    const served = b.served;
    assert.deepEqual(await bodies(gw.port, '/ab', 6), ['a', 'a', 'a', 'a', 'a', 'a']);
    assert.equal(b.served, served);
    // A reload that leaves the upstream as it was: still down, and not probed again at once.
    const probes = b.probes;
    await writeFile(gw.file, `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n${conf('  - { id: extra, uri: /extra, upstream_id: ab }\n')}`);
    assert.equal((await gw.gw.reload('test')).ok, true);
    assert.equal((await health(gw.adminPort)).find((x) => x.node === origin)?.healthy, false);
    assert.deepEqual(await bodies(gw.port, '/extra', 3), ['a', 'a', 'a']);
    assert.equal(b.probes, probes);
  });

  it('a down node comes back after healthy.successes good probes', async () => {
    const origin = `http://127.0.0.1:${c.port}`;
    await until(gw.adminPort, origin, false);
    const before = c.probes;
    c.health = 200;
    const h = await until(gw.adminPort, origin, true);
    assert.equal(h.reason, null);
    assert.equal(c.probes - before, 2);
    assert.equal((await request(gw.port, '/c')).body, 'c');
  });

  it('tcp probes: a closed port is taken out; requests no longer try it', async () => {
    const h = await until(gw.adminPort, `http://127.0.0.1:${dead}`, false);
    assert.match(h.reason!, /^active: probes failing \(last: connection failed; in a row: 0 http, \d+ tcp, 0 timeouts\)$/);
    assert.equal((await health(gw.adminPort)).find((x) => x.node === `http://127.0.0.1:${d.port}`)?.healthy, true);
    const logs = captureLogs();
    try {
      assert.deepEqual(await bodies(gw.port, '/tcp', 6), ['d', 'd', 'd', 'd', 'd', 'd']);
      assert.equal(logs.lines.filter((l) => l.msg === 'upstream node failed, retrying on another').length, 0);
    } finally {
      logs.restore();
    }
  });

  it('hostile: a node that never answers a probe is taken out after unhealthy.timeouts', async () => {
    const h = await until(gw.adminPort, `http://127.0.0.1:${silentPort}`, false);
    assert.match(h.reason!, /^active: probes failing \(last: timeout; in a row: 0 http, 0 tcp, \d+ timeouts\)$/);
    assert.equal((await health(gw.adminPort)).find((x) => x.node === `http://127.0.0.1:${d.port}`)?.healthy, true);
  });
});

describe('active health checks: https probes', () => {
  let certs: UpstreamCerts;
  let good: Node, self: Node, lenient: Node;
  let gw: TestGateway;
  before(async () => {
    certs = makeUpstreamCerts();
    good = await node('good', 200, { cert: certs.node.cert, key: certs.node.key });
    self = await node('self', 200, { cert: certs.selfSigned.cert, key: certs.selfSigned.key });
    lenient = await node('lenient', 200, { cert: certs.selfSigned.cert, key: certs.selfSigned.key });
    const ca = `      tls:\n        ca: |\n${certs.ca.cert.trim().split('\n').map((l) => `          ${l}`).join('\n')}\n`;
    const check = (verify: boolean) => `      checks:\n        active: { type: https, http_path: /health, https_verify_certificate: ${verify}, healthy: { interval: 0.1 }, unhealthy: { interval: 0.1, tcp_failures: 1 } }\n`;
    gw = await startGateway(`
routes:
  - id: verified
    uri: /v
    upstream:
      scheme: https
      nodes: { "127.0.0.1:${good.port}": 1, "127.0.0.1:${self.port}": 1 }
${ca}${check(true)}
  - id: lenient
    uri: /l
    upstream:
      scheme: https
      nodes: { "127.0.0.1:${lenient.port}": 1 }
${ca}${check(false)}`);
  });
  after(async () => {
    await gw?.close();
    await Promise.all([good, self, lenient].map((n) => n?.close()));
    certs?.remove();
  });

  it('probes over TLS with the upstream\'s CA; a certificate that fails verification takes the node out', async () => {
    const h = await until(gw.adminPort, `https://127.0.0.1:${self.port}`, false);
    assert.match(h.reason!, /last: connection failed/);
    await eventually(() => good.probes >= 3 && lenient.probes >= 3, 20_000);
    const all = await health(gw.adminPort);
    assert.equal(all.find((x) => x.node === `https://127.0.0.1:${good.port}`)?.healthy, true);
    assert.equal(all.find((x) => x.node === `https://127.0.0.1:${lenient.port}`)?.healthy, true, 'https_verify_certificate: false');
    assert.equal(self.probes, 0, 'no request is sent to a node whose certificate failed');
    assert.deepEqual(await bodies(gw.port, '/v', 4), ['good', 'good', 'good', 'good']);
  });
});

describe('active health checks: reloads', () => {
  let keep: Node, gone: Node;
  let gw: TestGateway;
  const conf = (withGone: boolean) => `
routes:
  - { id: keep, uri: /k, upstream: { nodes: { "127.0.0.1:${keep.port}": 1 } } }
${withGone ? `  - id: gone
    uri: /g
    upstream:
      nodes: { "127.0.0.1:${gone.port}": 1 }
      checks: { active: { http_path: /health, healthy: { interval: 0.1 }, unhealthy: { interval: 0.1 } } }
` : ''}`;
  before(async () => {
    keep = await node('keep');
    gone = await node('gone', 500);
    gw = await startGateway(conf(true));
  });
  after(async () => {
    await gw?.close();
    await Promise.all([keep, gone].map((n) => n?.close()));
  });

  it('a reload that removes the upstream stops its probes and its node leaves /status', async () => {
    await eventually(() => gone.probes >= 3, 20_000);
    await writeFile(gw.file, `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n${conf(false)}`);
    assert.equal((await gw.gw.reload('test')).ok, true);
    assert.deepEqual(await health(gw.adminPort), []);
    await sleep(300); // a probe already on the wire may still land
    const count = gone.probes;
    await sleep(1000); // ten intervals
    assert.equal(gone.probes, count);
    assert.equal(gw.gw.probes?.size, 0);
  });
});

describe('active health checks with 2 workers', () => {
  let a: Node, b: Node;
  let host: Host;
  let dir: string;
  before(async () => {
    a = await node('a');
    b = await node('b', 500);
    dir = await mkdtemp(path.join(tmpdir(), 'turnpike-active-'));
    const file = path.join(dir, 'gateway.yaml');
    await writeFile(file, `listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
routes:
  - id: r
    uri: /r
    upstream:
      nodes: { "127.0.0.1:${a.port}": 1, "127.0.0.1:${b.port}": 1 }
      checks: { active: { http_path: /health, timeout: 5, healthy: { interval: 0.1 }, unhealthy: { interval: 60, http_failures: 3 } } }
`);
    host = await Host.start({ config: file, env: {}, watch: false, workers: 2 });
  });
  after(async () => {
    await host?.close(500);
    await Promise.all([a, b].map((n) => n?.close()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('probed once per host (exactly http_failures probes), and the node is out for every worker', async () => {
    const h = await until(host.adminPort!, `http://127.0.0.1:${b.port}`, false);
    assert.match(h.reason!, /^active: probes failing/);
    await sleep(300);
    assert.equal(b.probes, 3, 'one prober: a second would have sent more before the node went down');
    // Fresh connections, so the kernel spreads them over both workers.
    const served = b.served;
    const got = await Promise.all(Array.from({ length: 20 }, () => request(host.port, '/r')));
    assert.deepEqual(new Set(got.map((r) => r.body)), new Set(['a']));
    assert.equal(b.served, served);
    const status = JSON.parse((await request(host.adminPort!, '/status')).body) as { workers: { requests: number }[] };
    assert.ok(status.workers.every((w) => w.requests > 0), JSON.stringify(status.workers));
  });
});
