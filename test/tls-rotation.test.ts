/** Certificate files renewed in place: watched like gateway.yaml, swapped in for new handshakes, a broken one rejected with its position. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import https from 'node:https';
import { eventually, request, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness.ts';
import { TestCA, type Pem } from './helpers/certs.ts';
import { httpsRequest } from './helpers/tls.ts';
import { Host } from '../src/runtime/supervisor.ts';

const ca = new TestCA();
after(() => ca.close());
const v1 = ca.leaf({ names: ['rot.test'] });
const v2 = ca.leaf({ names: ['rot.test'], kind: 'ec' });
const v3 = ca.leaf({ names: ['rot.test'] });
const o = { servername: 'rot.test', ca: ca.cert };

/** Replaces the served pair the way a renewal tool does: each file written aside, then renamed over (key first). */
async function install(dir: string, p: Pem): Promise<void> {
  await copyFile(p.keyFile, path.join(dir, 'tls.key.tmp'));
  await rename(path.join(dir, 'tls.key.tmp'), path.join(dir, 'tls.key'));
  await copyFile(p.certFile, path.join(dir, 'tls.crt.tmp'));
  await rename(path.join(dir, 'tls.crt.tmp'), path.join(dir, 'tls.crt'));
}

const conf = (upstream: number) => `admin:\n  listen: 127.0.0.1:0\nlisten:\n  - { host: 127.0.0.1, port: 0, tls: true }\nssls:\n  - { id: rot, snis: [rot.test], cert_file: tls.crt, key_file: tls.key }\nroutes:\n  - { id: r, uri: "/*", upstream: { nodes: { "127.0.0.1:${upstream}": 1 } } }\n`;

/** The fingerprint the next new connection gets. */
const served = async (port: number) => (await httpsRequest(port, '/', o)).peer.fingerprint256;
const fp = (p: Pem) => new X509Certificate(p.cert).fingerprint256;

describe('certificate rotation', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(conf(up.port), { watch: true, files: { 'tls.crt': v1.cert, 'tls.key': v1.key } });
  });
  after(async () => { await gw.close(); await up.close(); });

  it('a renewed pair serves new handshakes; a connection opened before keeps its certificate and works', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: ca.cert, servername: 'rot.test', checkServerIdentity: () => undefined } as https.AgentOptions);
    try {
      const get = () => new Promise<{ status: number; fp: string }>((resolve, reject) => {
        https.get({ host: '127.0.0.1', port: gw.gw.ports[0], path: '/', agent, headers: { host: 'rot.test' } }, (res) => {
          const fpNow = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, fp: fpNow }));
        }).on('error', reject);
      });
      assert.deepEqual(await get(), { status: 200, fp: fp(v1) });
      await install(gw.dir, v2);
      await eventually(async () => (await served(gw.gw.ports[0])) === fp(v2), 10_000, 50);
      assert.deepEqual(await get(), { status: 200, fp: fp(v1) });
      const status = JSON.parse((await request(gw.adminPort, '/status')).body) as { certificates: { certificates: { key_type: string }[] }[] };
      assert.equal(status.certificates[0].certificates[0].key_type, 'EC');
    } finally {
      agent.destroy();
    }
  });

  const broken = [
    { desc: 'a certificate file that does not parse', files: { 'tls.crt': 'not a certificate\n' }, want: /gateway\.yaml:6:\d+: ssls\[0\]\.cert_file: the certificate is not a PEM certificate/ },
    { desc: 'a key that does not match the certificate', files: { 'tls.key': v3.key }, want: /gateway\.yaml:6:\d+: ssls\[0\]\.cert_file: the key does not match the certificate \(CN=rot\.test\)$/ },
    { desc: 'an expired certificate', pair: () => ca.leaf({ names: ['rot.test'], expired: true }), want: /gateway\.yaml:6:\d+: ssls\[0\]\.cert_file: the certificate expired on / },
  ];
  for (const c of broken) {
    it(`${c.desc}: the reload is rejected with its position, the certificate in force keeps serving`, async () => {
      const good = await served(gw.gw.ports[0]);
      const failures = JSON.parse((await request(gw.adminPort, '/status')).body).reloads.failure as number;
      if (c.pair) await install(gw.dir, c.pair());
      for (const [name, text] of Object.entries(c.files ?? {})) await writeFile(path.join(gw.dir, name), text);
      const status = await eventually(async () => {
        const s = JSON.parse((await request(gw.adminPort, '/status')).body) as { reloads: { failure: number }; last_failure: { errors: string[] } | null };
        return s.reloads.failure > failures && s.last_failure?.errors.some((e) => c.want.test(e)) ? s : undefined;
      }, 10_000, 50);
      assert.ok(status.last_failure!.errors.some((e) => c.want.test(e)), status.last_failure!.errors.join('\n'));
      assert.equal(await served(gw.gw.ports[0]), good);
      // Put a good pair back for the next case.
      await install(gw.dir, v1);
      await eventually(async () => (await served(gw.gw.ports[0])) === fp(v1), 10_000, 50);
    });
  }
});

describe('rotation under load, two workers', () => {
  let up: Upstream;
  let host: Host;
  let dir: string;
  before(async () => {
    up = await startUpstream();
    dir = await mkdtemp(path.join(tmpdir(), 'turnpike-rotation-'));
    await install(dir, v1);
    await writeFile(path.join(dir, 'gateway.yaml'), conf(up.port));
    host = await Host.start({ config: path.join(dir, 'gateway.yaml'), env: {}, watch: true, workers: 2, debounceMs: 20 });
  });
  after(async () => { await host.close(500); await up.close(); await rm(dir, { recursive: true, force: true }); });

  it('requests on new connections while the files are replaced: none fails, the new certificate comes within a bounded number of connections', async () => {
    let failed = 0;
    let requests = 0;
    const seen = new Set<string>();
    const loop = async (stop: () => boolean) => {
      while (!stop()) {
        try {
          const res = await httpsRequest(host.port, '/', o);
          requests++;
          if (res.status !== 200) failed++;
          seen.add(res.peer.fingerprint256);
        } catch {
          failed++;
        }
      }
    };
    let done = false;
    const clients = Promise.all([loop(() => done), loop(() => done), loop(() => done)]);
    try {
      await eventually(() => requests >= 10, 20_000, 20);
      await install(dir, v2);
      // Generous: a bound on connections, not on time.
      const before = requests;
      await eventually(async () => seen.has(fp(v2)) && (await served(host.port)) === fp(v2) ? true : requests - before > 5000 ? true : undefined, 60_000, 20);
      assert.ok(seen.has(fp(v2)), `the new certificate was not served within ${requests - before} connections`);
    } finally {
      done = true;
      await clients;
    }
    assert.equal(failed, 0, `${failed} of ${requests} requests failed`);
    const status = JSON.parse((await request(host.adminPort!, '/status')).body) as { certificates: { certificates: { key_type: string }[] }[] };
    assert.equal(status.certificates[0].certificates[0].key_type, 'EC');
  });
});
