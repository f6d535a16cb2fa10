/** HTTPS upstreams: verification on by default, a private CA, SNI, verify: false, mutual TLS, hostile nodes, wss. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { loadConfigText } from '../src/config/load.ts';
import { formatIssue } from '../src/errors.ts';
import { FunctionPools } from '../src/serverless/pool.ts';
import { captureLogs, eventually, request, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness.ts';
import { loadIssues } from './helpers/load.ts';
import { makeUpstreamCerts, type UpstreamCerts } from './helpers/upstream-certs.ts';

interface Closer { port: number; close(): Promise<void> }

/** An https node answering `name` and the SNI it was reached with (or "none"); it also switches WebSocket upgrades and echoes. */
async function tlsNode(name: string, opts: https.ServerOptions): Promise<Closer> {
  const server = https.createServer(opts, (req, res) => {
    const sni = (req.socket as TLSSocket).servername || 'none';
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`${name} sni=${sni} host=${req.headers.host}`);
  });
  server.on('upgrade', (_req, socket) => {
    socket.on('error', () => {});
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
    socket.on('data', (d) => socket.write(Buffer.concat([Buffer.from(`${name}:`), d])));
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

/** A node that resets the connection once the ClientHello arrives (mid-handshake). */
async function resettingNode(): Promise<Closer> {
  const server = net.createServer((socket) => { socket.once('data', () => socket.resetAndDestroy()); socket.on('error', () => {}); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Upgrades `path` to a WebSocket, sends `ping`, returns the status and the echo. */
function wsEcho(port: number, path: string): Promise<{ status: number; echo: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'Upgrade', upgrade: 'websocket' } });
    req.on('upgrade', (res, socket) => {
      socket.once('data', (d) => { resolve({ status: res.statusCode!, echo: d.toString() }); socket.destroy(); });
      socket.write('ping');
    });
    req.on('response', (res) => { res.resume(); resolve({ status: res.statusCode!, echo: '' }); });
    req.on('error', reject);
    req.end();
  });
}

/** `name: |` and the PEM below it, the key indented by `pad` spaces. */
const block = (name: string, pem: string, pad = 6) => `${' '.repeat(pad)}${name}: |\n${pem.trim().split('\n').map((l) => `${' '.repeat(pad + 2)}${l}`).join('\n')}\n`;

describe('https upstreams', () => {
  let certs: UpstreamCerts;
  let trusted: Closer, self: Closer, mtls: Closer, reset: Closer;
  let plain: Upstream;
  let gw: TestGateway;
  before(async () => {
    certs = makeUpstreamCerts();
    trusted = await tlsNode('trusted', { cert: certs.node.cert, key: certs.node.key });
    self = await tlsNode('self', { cert: certs.selfSigned.cert, key: certs.selfSigned.key });
    mtls = await tlsNode('mtls', { cert: certs.node.cert, key: certs.node.key, requestCert: true, rejectUnauthorized: true, ca: certs.clientCa.cert });
    reset = await resettingNode();
    plain = await startUpstream();
    const up = (id: string, port: number, extra = '', host = '127.0.0.1') => `  - id: ${id}\n    scheme: https\n    nodes: { "${host}:${port}": 1 }\n${extra}`;
    const ca = `    tls:\n${block('ca', certs.ca.cert)}`;
    gw = await startGateway(`
upstreams:
${up('trusted', trusted.port, ca)}
${up('by-name', trusted.port, ca, 'localhost')}
${up('rewrite', trusted.port, `    pass_host: rewrite\n    upstream_host: localhost\n${ca}`)}
${up('ca-file', trusted.port, `    tls: { ca_file: "${certs.caFile}" }\n`)}
${up('system-cas', trusted.port)}
${up('self', self.port, ca)}
${up('wrong-sni', trusted.port, `${ca}      sni: wrong.example\n`)}
${up('no-verify', self.port, '    tls: { verify: false }\n')}
${up('mtls', mtls.port, `${ca}${block('client_cert', certs.client.cert)}${block('client_key', certs.client.key)}`)}
${up('mtls-no-cert', mtls.port, ca)}
${up('plain', plain.port, ca)}
${up('reset', reset.port, ca)}
routes:
  - { id: trusted, uri: /trusted, upstream_id: trusted, enable_websocket: true }
  - { id: by-name, uri: /by-name, upstream_id: by-name }
  - { id: rewrite, uri: /rewrite, upstream_id: rewrite }
  - { id: ca-file, uri: /ca-file, upstream_id: ca-file }
  - { id: system-cas, uri: /system-cas, upstream_id: system-cas }
  - { id: self, uri: /self, upstream_id: self }
  - { id: wrong-sni, uri: /wrong-sni, upstream_id: wrong-sni }
  - { id: no-verify, uri: /no-verify, upstream_id: no-verify }
  - { id: mtls, uri: /mtls, upstream_id: mtls }
  - { id: mtls-no-cert, uri: /mtls-no-cert, upstream_id: mtls-no-cert }
  - { id: plain, uri: /plain, upstream_id: plain }
  - { id: reset, uri: /reset, upstream_id: reset }
`);
  });
  after(async () => {
    await gw?.close();
    await Promise.all([trusted, self, mtls, reset, plain].map((s) => s?.close()));
    certs?.remove();
  });

  const cases: { desc: string; path: string; host?: string; want: { status: number; body?: string; tlsError?: RegExp } }[] = [
    { desc: 'a node signed by the configured CA, reached by IP (no SNI; the IP is checked)', path: '/trusted', host: 'client.example', want: { status: 200, body: 'trusted sni=none host=client.example' } },
    { desc: 'a node reached by name: SNI is the node\'s host, not the client\'s Host', path: '/by-name', host: 'evil.example', want: { status: 200, body: 'trusted sni=localhost host=evil.example' } },
    { desc: 'pass_host rewrite: SNI is upstream_host', path: '/rewrite', want: { status: 200, body: 'trusted sni=localhost host=localhost' } },
    { desc: 'ca_file', path: '/ca-file', host: 'h', want: { status: 200, body: 'trusted sni=none host=h' } },
    { desc: 'verification is on by default: a private CA the system does not trust fails', path: '/system-cas', want: { status: 502, tlsError: /^UNABLE_TO_VERIFY_LEAF_SIGNATURE$/ } },
    { desc: 'a self-signed node certificate fails', path: '/self', want: { status: 502, tlsError: /^DEPTH_ZERO_SELF_SIGNED_CERT$/ } },
    { desc: 'a certificate for another name than the SNI fails', path: '/wrong-sni', want: { status: 502, tlsError: /^ERR_TLS_CERT_ALTNAME_INVALID$/ } },
    { desc: 'verify: false accepts the self-signed node', path: '/no-verify', host: 'h', want: { status: 200, body: 'self sni=none host=h' } },
    { desc: 'mutual TLS: the client certificate is presented', path: '/mtls', host: 'h', want: { status: 200, body: 'mtls sni=none host=h' } },
    { desc: 'mutual TLS: without a client certificate the node refuses', path: '/mtls-no-cert', want: { status: 502 } },
    { desc: 'hostile: plain HTTP on the https port', path: '/plain', want: { status: 502, tlsError: /^(EPROTO|ERR_SSL_WRONG_VERSION_NUMBER)$/ } },
    { desc: 'hostile: a reset in the middle of the handshake', path: '/reset', want: { status: 502 } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const logs = captureLogs();
      try {
        const res = await request(gw.port, c.path, { headers: c.host ? { host: c.host } : {} });
        assert.equal(res.status, c.want.status, res.body);
        if (c.want.body) assert.equal(res.body, c.want.body);
        if (c.want.status === 502) assert.equal(JSON.parse(res.body).code, 'GW_ERR_UPSTREAM_UNAVAILABLE');
        if (c.want.tlsError) {
          const line = logs.lines.find((l) => l.msg === 'upstream TLS failed');
          assert.ok(line, JSON.stringify(logs.lines));
          assert.equal(line.route, c.path.slice(1));
          assert.match(String(line.upstream), /^https:\/\/(127\.0\.0\.1|localhost):\d+$/);
          assert.match(String(line.error), c.want.tlsError);
        }
      } finally {
        logs.restore();
      }
    });
  }

  it('a plain-HTTP node is never served as if it spoke TLS (no request reaches it)', () => {
    assert.equal(plain.seen.length, 0);
  });

  it('/status shows each https node\'s TLS settings (never a key)', async () => {
    const status = JSON.parse((await request(gw.adminPort, '/status')).body) as { upstream_tls: { upstream: string }[] };
    const of = (id: string) => status.upstream_tls.find((t) => t.upstream === id);
    assert.deepEqual(of('mtls'), { upstream: 'mtls', node: `https://127.0.0.1:${mtls.port}`, verify: true, sni: null, ca: 'configured', client_cert: true });
    assert.deepEqual(of('no-verify'), { upstream: 'no-verify', node: `https://127.0.0.1:${self.port}`, verify: false, sni: null, ca: 'system', client_cert: false });
    assert.deepEqual(of('by-name'), { upstream: 'by-name', node: `https://localhost:${trusted.port}`, verify: true, sni: 'localhost', ca: 'configured', client_cert: false });
    assert.equal(of('wrong-sni') && (of('wrong-sni') as { sni?: string }).sni, 'wrong.example');
    assert.equal(status.upstream_tls.length, 12);
    assert.doesNotMatch(JSON.stringify(status), /PRIVATE KEY|BEGIN CERTIFICATE/);
  });

  it('wss: a WebSocket upgrade to an https node goes through the same TLS settings', async () => {
    assert.deepEqual(await wsEcho(gw.port, '/trusted'), { status: 101, echo: 'trusted:ping' });
  });
});

describe('https upstreams: passive health counts TLS failures', () => {
  let certs: UpstreamCerts;
  let good: Closer, self: Closer;
  let gw: TestGateway;
  before(async () => {
    certs = makeUpstreamCerts();
    good = await tlsNode('good', { cert: certs.node.cert, key: certs.node.key });
    self = await tlsNode('self', { cert: certs.selfSigned.cert, key: certs.selfSigned.key });
    gw = await startGateway(`
routes:
  - id: r
    uri: /r
    upstream:
      scheme: https
      nodes: { "127.0.0.1:${good.port}": 1, "127.0.0.1:${self.port}": 1 }
      checks: { passive: { tcp_failures: 1, ejection_seconds: 60 } }
      tls:
${block('ca', certs.ca.cert, 8)}`);
  });
  after(async () => {
    await gw?.close();
    await Promise.all([good, self].map((s) => s?.close()));
    certs?.remove();
  });

  it('the failing node is retried on the other, then ejected', async () => {
    const logs = captureLogs();
    try {
      for (let i = 0; i < 4; i++) assert.equal((await request(gw.port, '/r')).body, 'good sni=none host=127.0.0.1:' + gw.port);
      const ejected = await eventually(() => logs.lines.find((l) => l.msg === 'upstream node ejected by passive health check'));
      assert.equal(ejected.node, `https://127.0.0.1:${self.port}`);
    } finally {
      logs.restore();
    }
  });
});

describe('upstream.tls at load', () => {
  let certs: UpstreamCerts;
  const pools = new FunctionPools();
  before(() => { certs = makeUpstreamCerts(); });
  after(async () => { certs?.remove(); await pools.close(); });
  const route = (up: string) => `routes:\n  - id: r\n    uri: /r\n    upstream:\n${up}`;

  it('rejects what would fail every handshake, at its line', async () => {
    const cases: { desc: string; conf: () => string; want: RegExp[] }[] = [
      { desc: 'a CA that is not PEM', conf: () => route(`      scheme: https\n      nodes: { "127.0.0.1:1": 1 }\n      tls:\n        ca: "${'x'.repeat(70)}"\n`),
        want: [/^gateway\.yaml:8:13: routes\[0\]\.upstream\.tls\.ca: CA certificate does not parse: no PEM certificate/] },
      { desc: 'a client key that is not the certificate\'s', conf: () => route(`      scheme: https\n      nodes: { "127.0.0.1:1": 1 }\n      tls:\n${block('client_cert', certs.client.cert, 8)}${block('client_key', certs.node.key, 8)}`),
        want: [/^gateway\.yaml:\d+:\d+: routes\[0\]\.upstream\.tls\.client_key: client_key is not the key of client_cert$/] },
      { desc: 'a ca_file that cannot be read', conf: () => route(`      scheme: https\n      nodes: { "127.0.0.1:1": 1 }\n      tls: { ca_file: /nonexistent/ca.pem }\n`),
        want: [/^gateway\.yaml:7:23: routes\[0\]\.upstream\.tls\.ca_file: cannot read \/nonexistent\/ca\.pem: file not found$/] },
      { desc: 'ca and ca_file', conf: () => route(`      scheme: https\n      nodes: { "127.0.0.1:1": 1 }\n      tls:\n        ca_file: "${certs.caFile}"\n${block('ca', certs.ca.cert, 8)}`),
        want: [/^gateway\.yaml:8:9: routes\[0\]\.upstream\.tls\.ca_file: give either ca or ca_file, not both$/] },
      { desc: 'a client_cert_id naming no ssls entry', conf: () => route(`      scheme: https\n      nodes: { "127.0.0.1:1": 1 }\n      tls: { client_cert_id: nope }\n`),
        want: [/^gateway\.yaml:7:30: routes\[0\]\.upstream\.tls\.client_cert_id: client_cert_id "nope" names no ssls entry with a cert and key/] },
      { desc: 'a client certificate without its key', conf: () => route(`      scheme: https\n      nodes: { "127.0.0.1:1": 1 }\n      tls:\n${block('client_cert', certs.client.cert, 8)}`),
        want: [/^gateway\.yaml:8:9: routes\[0\]\.upstream\.tls: missing required field "client_key"$/] },
      { desc: 'gRPC', conf: () => route('      scheme: grpcs\n      nodes: { "127.0.0.1:1": 1 }\n'),
        want: [/^gateway\.yaml:5:15: routes\[0\]\.upstream\.scheme: gRPC proxying is not supported yet: Turnpike proxies HTTP and HTTPS upstreams/] },
    ];
    for (const c of cases) {
      const issues = await loadIssues(c.conf());
      assert.equal(issues.length, c.want.length, `${c.desc}: ${issues.join('\n')}`);
      c.want.forEach((re, i) => assert.match(issues[i], re, c.desc));
    }
  });

  it('tls on an http upstream is a warning, and an https upstream without tls loads (verification on)', async () => {
    const res = await loadConfigText(route('      nodes: { "127.0.0.1:1": 1 }\n      tls: { verify: false }\n') + '  - id: s\n    uri: /s\n    upstream: { scheme: https, nodes: { "example.com": 1 } }\n', 'gateway.yaml', { functions: (settings) => pools.host(settings) });
    assert.ok(res.ok, res.ok ? '' : res.issues.map(formatIssue).join('\n'));
    assert.deepEqual(res.warnings.map(formatIssue), ['gateway.yaml:6:7: routes[0].upstream.tls: warning: tls applies to scheme https; this upstream\'s scheme is http: ignored']);
    const node = res.snapshot.routes.find((r) => r.id === 's')!.upstream!.nodes[0];
    assert.equal(node.origin, 'https://example.com:443');
    assert.equal(node.tls?.verify, true);
    assert.equal(node.tls?.servername, 'example.com');
  });
});

describe('upstream.tls.ca_file is read with the config and watched like a certificate', () => {
  let certs: UpstreamCerts;
  let self: Closer;
  let gw: TestGateway;
  before(async () => {
    certs = makeUpstreamCerts();
    self = await tlsNode('self', { cert: certs.selfSigned.cert, key: certs.selfSigned.key });
    gw = await startGateway(`routes:\n  - id: r\n    uri: /r\n    upstream:\n      scheme: https\n      nodes: { "127.0.0.1:${self.port}": 1 }\n      tls: { ca_file: ./ca.pem }\n`,
      { files: { 'ca.pem': certs.ca.cert }, watch: true });
  });
  after(async () => { await gw?.close(); await self?.close(); certs?.remove(); });

  it('a new CA bundle in the file applies without a restart; one that does not parse is rejected while the last one serves', async () => {
    assert.equal((await request(gw.port, '/r')).status, 502, 'the node is not signed by the first CA');
    const { writeFile } = await import('node:fs/promises');
    const path = await import('node:path');
    await writeFile(path.join(gw.dir, 'ca.pem'), certs.selfSigned.cert);
    await eventually(async () => (await request(gw.port, '/r')).status === 200, 10_000, 100);
    const hash = gw.gw.status().hash;
    await writeFile(path.join(gw.dir, 'ca.pem'), 'not a certificate');
    await eventually(() => gw.gw.status().last_reload_ok === false, 10_000, 100);
    assert.match(String((gw.gw.status().last_failure as { message: string }).message), /routes\[0\]\.upstream\.tls\.ca_file: CA certificate does not parse/);
    assert.equal(gw.gw.status().hash, hash);
    assert.equal((await request(gw.port, '/r')).status, 200);
  });
});
