/** TLS at the edge: listeners, ssls by SNI, RSA and ECDSA side by side, mutual TLS, config errors, status and metrics, hostile clients. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { captureLogs, request, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness.ts';
import { loadIssues } from './helpers/load.ts';
import { pemYaml, TestCA, type Pem } from './helpers/certs.ts';
import { handshake, httpsRequest } from './helpers/tls.ts';
import { Host } from '../src/runtime/supervisor.ts';

const ca = new TestCA();
const other = new TestCA('Another CA');
after(() => { ca.close(); other.close(); });

const certA = ca.leaf({ names: ['a.test'] });
const certWild = ca.leaf({ names: ['*.wild.test'], kind: 'ec' });
const certDefault = ca.leaf({ names: ['default.test'] });
const rsa = ca.leaf({ names: ['both.test'] });
const ec = ca.leaf({ names: ['both.test'], kind: 'ec' });
const certM = ca.leaf({ names: ['m.test'], kind: 'ec' });
const client = ca.leaf({ names: ['client one'], client: true, kind: 'ec' });
const stranger = other.leaf({ names: ['client two'], client: true, kind: 'ec' });

const HEAD = 'admin:\n  listen: 127.0.0.1:0\nlisten:\n  - { host: 127.0.0.1, port: 0 }\n  - { host: 127.0.0.1, port: 0, tls: true }\n';

/** An ssls entry with its PEM inline. */
function inline(id: string, snis: string[], p: Pem, extra = ''): string {
  return `  - id: ${id}\n    snis: ${JSON.stringify(snis)}\n    cert: ${pemYaml(p.cert, 6)}\n    key: ${pemYaml(p.key, 6)}\n${extra}`;
}

function routes(upstream: number): string {
  return `routes:\n  - { id: r, uri: "/*", upstream: { nodes: { "127.0.0.1:${upstream}": 1 } } }\n`;
}

describe('ssls by SNI', () => {
  let up: Upstream;
  let gw: TestGateway;
  let noDefault: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(HEAD + routes(up.port) + 'ssls:\n'
      + inline('a', ['a.test'], certA)
      + `  - id: wild\n    snis: ["*.wild.test"]\n    cert_file: ${certWild.certFile}\n    key_file: ${certWild.keyFile}\n`
      + inline('dflt', ['default.test'], certDefault, '    default: true\n'));
    noDefault = await startGateway(HEAD + routes(up.port) + 'ssls:\n' + inline('a', ['a.test'], certA));
  });
  after(async () => { await gw.close(); await noDefault.close(); await up.close(); });

  const cases = [
    { desc: 'exact name', sni: 'a.test', want: 'a.test' },
    { desc: 'exact name, other case and a trailing dot', sni: 'A.Test.', want: 'a.test' },
    { desc: 'wildcard, one label', sni: 'x.wild.test', want: '*.wild.test' },
    { desc: 'wildcard does not match two labels: the default', sni: 'y.x.wild.test', want: 'default.test' },
    { desc: 'wildcard does not match its own base: the default', sni: 'wild.test', want: 'default.test' },
    { desc: 'unknown name: the default', sni: 'unknown.test', want: 'default.test' },
    { desc: 'no SNI: the default', sni: undefined, want: 'default.test' },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await httpsRequest(gw.gw.ports[1], '/hello', { servername: c.sni, ca: ca.cert });
      assert.equal(res.cn, c.want);
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.body).url, '/hello');
    });
  }

  it('the plain listener beside it still serves HTTP', async () => {
    const res = await request(gw.gw.ports[0], '/plain');
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).url, '/plain');
  });

  it('the upstream hears X-Forwarded-Proto https from the TLS listener', async () => {
    const res = await httpsRequest(gw.gw.ports[1], '/xfp', { servername: 'a.test', ca: ca.cert });
    assert.equal(JSON.parse(res.body).headers['x-forwarded-proto'], 'https');
  });

  it('no default: an unknown name and no SNI fail the handshake, logged once per client address a minute', async () => {
    const logs = captureLogs();
    try {
      await assert.rejects(handshake(noDefault.gw.ports[1], { servername: 'unknown.test', ca: ca.cert }));
      await assert.rejects(handshake(noDefault.gw.ports[1], { servername: undefined, ca: ca.cert }));
      await assert.rejects(handshake(noDefault.gw.ports[1], { servername: 'other.test', ca: ca.cert }));
      assert.equal((await handshake(noDefault.gw.ports[1], { servername: 'a.test', ca: ca.cert })).cn, 'a.test');
      const failed = logs.lines.filter((l) => String(l.msg).startsWith('TLS handshake failed'));
      assert.equal(failed.length, 1);
      assert.equal(failed[0].client, '127.0.0.1');
      assert.match(String(failed[0].reason), /no certificate for SNI "unknown\.test"/);
    } finally {
      logs.restore();
    }
  });

  it('TLS 1.2 and 1.3 both negotiate; TLS 1.1 does not', async () => {
    assert.equal((await httpsRequest(gw.gw.ports[1], '/v', { servername: 'a.test', ca: ca.cert })).protocol, 'TLSv1.3');
    assert.equal((await httpsRequest(gw.gw.ports[1], '/v', { servername: 'a.test', ca: ca.cert, maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
    await assert.rejects(httpsRequest(gw.gw.ports[1], '/v', { servername: 'a.test', ca: ca.cert, maxVersion: 'TLSv1.1' }));
  });

  it('/status lists each certificate and /metrics its days to expiry', async () => {
    const status = JSON.parse((await request(gw.adminPort, '/status')).body) as { certificates: { id: string; snis: string[]; default: boolean; certificates: { subject: string; issuer: string; days_left: number; key_type: string }[] }[] };
    assert.deepEqual(status.certificates.map((c) => [c.id, c.snis, c.default, c.certificates.map((x) => [x.subject, x.issuer, x.key_type])]), [
      ['a', ['a.test'], false, [['CN=a.test', 'CN=Turnpike Test CA', 'RSA']]],
      ['wild', ['*.wild.test'], false, [['CN=*.wild.test', 'CN=Turnpike Test CA', 'EC']]],
      ['dflt', ['default.test'], true, [['CN=default.test', 'CN=Turnpike Test CA', 'RSA']]],
    ]);
    for (const c of status.certificates) assert.ok(c.certificates[0].days_left > 1 && c.certificates[0].days_left <= 2, String(c.certificates[0].days_left));
    const metrics = (await request(gw.adminPort, '/metrics')).body;
    assert.match(metrics, /^turnpike_ssl_certificate_expiry_days\{id="a",sni="a\.test"\} 1\.\d+$/m);
    assert.match(metrics, /^turnpike_ssl_certificate_expiry_days\{id="wild",sni="\*\.wild\.test"\} 1\.\d+$/m);
  });
});

describe('RSA and ECDSA in one entry', () => {
  let up: Upstream;
  let gw: TestGateway;
  const both = (id: string, sni: string, extra: string) => `  - id: ${id}\n    snis: [${sni}]\n    certs:\n      - ${pemYaml(rsa.cert, 8)}\n      - ${pemYaml(ec.cert, 8)}\n    keys:\n      - ${pemYaml(rsa.key, 8)}\n      - ${pemYaml(ec.key, 8)}\n${extra}`;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(HEAD + routes(up.port) + 'ssls:\n' + both('both', 'both.test', '    default: true\n') + both('sni-only', 'sni.test', ''));
  });
  after(async () => { await gw.close(); await up.close(); });

  const cases = [
    { desc: 'TLSv1.3, a client offering only ECDSA signatures gets the ECDSA certificate', o: { sigalgs: 'ecdsa_secp256r1_sha256' }, want: 'ec' },
    { desc: 'TLSv1.2, a client offering only ECDHE-ECDSA suites gets the ECDSA certificate', o: { maxVersion: 'TLSv1.2' as const, ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }, want: 'ec' },
    { desc: 'TLSv1.2, a client offering only ECDHE-RSA suites gets the RSA certificate', o: { maxVersion: 'TLSv1.2' as const, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }, want: 'rsa' },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await httpsRequest(gw.gw.ports[1], '/x', { servername: 'both.test', ca: ca.cert, ...c.o });
      assert.equal(res.status, 200);
      assert.equal(res.peer.asn1Curve !== undefined ? 'ec' : res.peer.modulus !== undefined ? 'rsa' : '?', c.want);
    });
  }

  it('an entry picked by SNI serves the pair the client accepts too, with no warning', async () => {
    const rsaRes = await httpsRequest(gw.gw.ports[1], '/x', { servername: 'sni.test', ca: ca.cert, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' });
    const ecRes = await httpsRequest(gw.gw.ports[1], '/x', { servername: 'sni.test', ca: ca.cert, sigalgs: 'ecdsa_secp256r1_sha256' });
    assert.deepEqual([rsaRes.peer.modulus !== undefined, ecRes.peer.asn1Curve !== undefined], [true, true]);
    assert.deepEqual(JSON.parse((await request(gw.adminPort, '/status')).body).warnings, []);
  });
});

describe('mutual TLS', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(HEAD + routes(up.port) + 'ssls:\n'
      + inline('m', ['m.test'], certM, `    client:\n      ca: ${pemYaml(ca.cert, 8)}\n`)
      + inline('a', ['a.test'], certA));
  });
  after(async () => { await gw.close(); await up.close(); });

  it('a client certificate the CA issued is accepted', async () => {
    const res = await httpsRequest(gw.gw.ports[1], '/m', { servername: 'm.test', ca: ca.cert, cert: client.cert, key: client.key });
    assert.equal(res.status, 200);
    assert.equal(res.cn, 'm.test');
  });

  const rejected = [
    { desc: 'no client certificate', cert: undefined },
    { desc: 'a certificate another CA issued', cert: stranger },
  ];
  for (const c of rejected) {
    it(`${c.desc} is refused`, async () => {
      await assert.rejects(httpsRequest(gw.gw.ports[1], '/m', { servername: 'm.test', ca: ca.cert, cert: c.cert?.cert, key: c.cert?.key }));
      assert.equal(up.seen.filter((s) => s.url === '/m').length, 1);
    });
  }

  it('a session made for a name without mTLS is not resumed under the mTLS name (no tickets on this listener)', async () => {
    const first = await httpsRequest(gw.gw.ports[1], '/a', { servername: 'a.test', ca: ca.cert, maxVersion: 'TLSv1.2' });
    assert.equal(first.status, 200);
    await assert.rejects(httpsRequest(gw.gw.ports[1], '/m', { servername: 'm.test', ca: ca.cert, maxVersion: 'TLSv1.2', session: first.session }));
    const again = await httpsRequest(gw.gw.ports[1], '/a', { servername: 'a.test', ca: ca.cert, maxVersion: 'TLSv1.2', session: first.session });
    assert.equal(again.reused, false);
  });

  it('an entry without client.ca on the same listener asks for no certificate', async () => {
    const res = await httpsRequest(gw.gw.ports[1], '/a', { servername: 'a.test', ca: ca.cert });
    assert.equal(res.status, 200);
  });
});

describe('config errors', () => {
  const bad = 'x'.repeat(200);
  const expired = ca.leaf({ names: ['old.test'], expired: true });
  const listen = 'listen:\n  - { port: 9443, tls: true }\n';
  const route = 'routes:\n  - { id: r, uri: /, upstream: { nodes: { "127.0.0.1:80": 1 } } }\n';
  const cases = [
    { desc: 'a certificate that does not parse', conf: listen + route + `ssls:\n  - id: s\n    snis: [a.test]\n    cert: "${bad}"\n    key: ${pemYaml(certA.key, 6)}\n`,
      want: /^gateway\.yaml:8:11: ssls\[0\]\.cert: the certificate is not a PEM certificate/ },
    { desc: 'a key that does not match the certificate', conf: listen + route + 'ssls:\n' + inline('s', ['a.test'], { ...certA, key: certDefault.key }),
      want: /^gateway\.yaml:8:11: ssls\[0\]\.cert: the key does not match the certificate \(CN=a\.test\)$/ },
    { desc: 'an expired certificate', conf: listen + route + 'ssls:\n' + inline('s', ['old.test'], expired),
      want: /^gateway\.yaml:8:11: ssls\[0\]\.cert: the certificate expired on \d{4}-/ },
    { desc: 'a missing certificate file', conf: listen + route + 'ssls:\n  - { id: s, snis: [a.test], cert_file: /nonexistent/a.crt, key_file: /nonexistent/a.key }\n',
      want: /^gateway\.yaml:6:41: ssls\[0\]\.cert_file: \/nonexistent\/a\.crt: file not found\ngateway\.yaml:6:71: ssls\[0\]\.key_file: \/nonexistent\/a\.key: file not found$/ },
    { desc: 'a TLS listener with no certificate', conf: listen + route,
      want: /^gateway\.yaml:2:19: listen\[0\]\.tls: a TLS listener needs at least one served ssls entry$/ },
    { desc: 'the same SNI twice', conf: listen + route + 'ssls:\n' + inline('s', ['a.test'], certA) + inline('t', ['A.test'], certA),
      want: /ssls\[1\]\.snis: SNI "a\.test" is already served by ssls\[0\]$/ },
    { desc: 'two defaults', conf: listen + route + 'ssls:\n' + inline('s', ['a.test'], certA, '    default: true\n') + inline('t', ['b.test'], certA, '    default: true\n'),
      want: /ssls\[1\]\.default: only one ssls entry may be the default \(ssls\[0\] is\)$/ },
    { desc: 'http2 without tls', conf: 'listen:\n  - { port: 9080, http2: true }\n' + route,
      want: /^gateway\.yaml:2:19: listen\[0\]\.http2: http2 needs tls: true on this listener/ },
    { desc: 'certs without keys', conf: listen + route + `ssls:\n  - id: s\n    snis: [a.test]\n    certs: [${JSON.stringify(certA.cert)}]\n`,
      want: /ssls\[0\]\.keys: certs and keys must have the same length/ },
    { desc: 'a cipher list OpenSSL does not know', conf: 'listen:\n  - { port: 9443, tls: true, ciphers: "NOPE" }\n' + route + 'ssls:\n' + inline('s', ['a.test'], certA),
      want: /^gateway\.yaml:2:39: listen\[0\]\.ciphers: ciphers: error:0A0000B9:SSL routines::no cipher match$/ },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      assert.match((await loadIssues(c.conf)).join('\n'), c.want);
    });
  }

  it('an APISIX ssls entry as written loads (sni, status, type: client skipped)', async () => {
    const conf = listen + route + `ssls:\n  - sni: a.test\n    cert: ${pemYaml(certA.cert, 6)}\n    key: ${pemYaml(certA.key, 6)}\n    status: 1\n    desc: from apisix\n  - type: client\n    cert: "${bad}"\n    key: "${bad}"\n`;
    assert.deepEqual(await loadIssues(conf), []);
  });
});

describe('hostile clients', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(HEAD + routes(up.port) + 'ssls:\n' + inline('a', ['a.test'], certA, '    default: true\n'));
  });
  after(async () => { await gw.close(); await up.close(); });

  const alive = async () => assert.equal((await httpsRequest(gw.gw.ports[1], '/alive', { servername: 'a.test', ca: ca.cert })).status, 200);

  it('garbage instead of a ClientHello: the connection closes, the gateway serves on', async () => {
    const closed = await new Promise<string>((resolve) => {
      const s = net.connect(gw.gw.ports[1], '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n' + '\u0000'.repeat(1000)));
      let got = '';
      s.on('data', (d) => { got += d.toString('latin1'); });
      s.on('error', () => {});
      s.on('close', () => resolve(got));
    });
    assert.ok(!closed.includes('HTTP/1.1 200'), closed);
    await alive();
  });

  it('a 253-byte SNI (the longest DNS name) gets the default certificate', async () => {
    const long = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.test`.slice(0, 253);
    assert.equal((await handshake(gw.gw.ports[1], { servername: long, ca: ca.cert })).cn, 'a.test');
    await alive();
  });

  it('client-initiated renegotiation does not succeed, the gateway serves on', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: gw.gw.ports[1], servername: 'a.test', ca: ca.cert, maxVersion: 'TLSv1.2', checkServerIdentity: () => undefined }, () => {
        s.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err ? `error: ${err.message}` : 'renegotiated'));
        // OpenSSL 3 declines it (no_renegotiation): the client waits; a moment is enough to know it did not happen.
        setTimeout(() => { s.destroy(); resolve('declined'); }, 500);
      });
      s.on('error', (err) => resolve(`error: ${err.message}`));
    });
    assert.notEqual(outcome, 'renegotiated');
    await alive();
  });

  it('a handshake that never finishes does not hold the listener', async () => {
    const s = net.connect(gw.gw.ports[1], '127.0.0.1');
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    await alive();
    s.destroy();
  });
});

describe('workers share the session ticket keys', () => {
  let host: Host;
  let up: Upstream;
  let dir: string;
  before(async () => {
    up = await startUpstream();
    const { mkdtemp } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    dir = await mkdtemp(path.join(tmpdir(), 'turnpike-tls-host-'));
    const file = path.join(dir, 'gateway.yaml');
    await writeFile(file, HEAD + routes(up.port) + 'ssls:\n' + inline('a', ['a.test'], certA));
    host = await Host.start({ config: file, env: {}, watch: false, workers: 2 });
  });
  after(async () => { await host.close(500); await up.close(); const { rm } = await import('node:fs/promises'); await rm(dir, { recursive: true, force: true }); });

  it('a session resumes on new connections whichever worker takes them', async () => {
    const first = await httpsRequest(host.ports[1], '/s', { servername: 'a.test', ca: ca.cert, maxVersion: 'TLSv1.2' });
    assert.equal(first.status, 200);
    for (let i = 0; i < 12; i++) {
      const res = await httpsRequest(host.ports[1], '/s', { servername: 'a.test', ca: ca.cert, maxVersion: 'TLSv1.2', session: first.session });
      assert.equal(res.status, 200);
      assert.equal(res.reused, true, `connection ${i} did not resume`);
    }
    const status = JSON.parse((await request(host.adminPort!, '/status')).body) as { certificates: { id: string }[]; workers: { requests: number }[] };
    assert.deepEqual(status.certificates.map((c) => c.id), ['a']);
    assert.ok(status.workers.every((w) => w.requests > 0), JSON.stringify(status.workers));
  });
});
