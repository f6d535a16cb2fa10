/** RSA and ECDSA pairs on ssls entries picked by SNI: each client gets the pair it accepts (ClientHello read before TLS), over HTTP/1.1 and h2, with mTLS, across reloads, against hostile clients. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { X509Certificate } from 'node:crypto';
import tls, { type PeerCertificate } from 'node:tls';
import { eventually, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness.ts';
import { pemYaml, TestCA, type Pem } from './helpers/certs.ts';
import { captureHello, h2Requests, httpsRequest, reframe, type TlsOptions } from './helpers/tls.ts';

const ca = new TestCA();
const rsaA = ca.leaf({ names: ['a.test'] });
const ecA = ca.leaf({ names: ['a.test'], kind: 'ec' });
const rsaW = ca.leaf({ names: ['*.w.test'] });
const ecW = ca.leaf({ names: ['*.w.test'], kind: 'ec' });
const ecA2 = ca.leaf({ names: ['a.test'], kind: 'ec' });
const client = ca.leaf({ names: ['client one'], client: true, kind: 'ec' });
// A client limited to RSA signatures signs its CertificateVerify with RSA too.
const clientRsa = ca.leaf({ names: ['client two'], client: true });
const dflt = ca.leaf({ names: ['default.test'] });
after(() => ca.close());

const HEAD = 'admin:\n  listen: 127.0.0.1:0\nlisten:\n  - { host: 127.0.0.1, port: 0 }\n  - { host: 127.0.0.1, port: 0, tls: true, http2: true }\n';
const entry = (id: string, sni: string, pairs: Pem[], extra = '') => `  - id: ${id}\n    snis: ["${sni}"]\n    certs:\n${pairs.map((p) => `      - ${pemYaml(p.cert, 8)}\n`).join('')}    keys:\n${pairs.map((p) => `      - ${pemYaml(p.key, 8)}\n`).join('')}${extra}`;
const conf = (up: number, aPairs: Pem[]) => HEAD + `routes:\n  - { id: r, uri: "/*", upstream: { nodes: { "127.0.0.1:${up}": 1 } } }\nssls:\n`
  + entry('a', 'a.test', aPairs) + entry('w', '*.w.test', [rsaW, ecW], `    client:\n      ca: ${pemYaml(ca.cert, 8)}\n`) + entry('d', 'default.test', [dflt], '    default: true\n');

const kind = (peer: PeerCertificate | undefined) => (peer?.asn1Curve !== undefined ? 'ec' : peer?.modulus !== undefined ? 'rsa' : '?');
const RSA_ONLY = { sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' };
const EC_ONLY = { sigalgs: 'ecdsa_secp256r1_sha256' };
const RSA_12 = { maxVersion: 'TLSv1.2' as const, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' };
const EC_12 = { maxVersion: 'TLSv1.2' as const, ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' };

/** Other clients meanwhile: the RSA-only one gets RSA, the ECDSA-only one ECDSA. */
async function bothServed(port: number): Promise<void> {
  const rsa = await httpsRequest(port, '/', { ca: ca.cert, servername: 'a.test', ...RSA_ONLY });
  const ec = await httpsRequest(port, '/', { ca: ca.cert, servername: 'a.test', ...EC_ONLY });
  assert.deepEqual([rsa.status, kind(rsa.peer), ec.status, kind(ec.peer)], [200, 'rsa', 200, 'ec']);
}

/** Resolves when the server ends the connection (or it errors), with the bytes it sent. */
function rawClient(port: number): { sock: net.Socket; closed: Promise<Buffer> } {
  const sock = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  sock.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<Buffer>((resolve) => { sock.on('close', () => resolve(Buffer.concat(chunks))); sock.on('error', () => {}); });
  return { sock, closed };
}

/** A real TLS handshake whose ClientHello goes out one byte per write (re-framed first); the certificate served. */
async function slowHandshake(port: number, o: tls.ConnectionOptions, recordSize: number): Promise<PeerCertificate> {
  const raw = net.connect(port, '127.0.0.1');
  raw.setNoDelay(true);
  let first = true;
  const duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      if (!first) { raw.write(chunk, cb); return; }
      first = false;
      const bytes = reframe(chunk, recordSize);
      void (async () => {
        for (let i = 0; i < bytes.length; i++) { raw.write(bytes.subarray(i, i + 1)); await new Promise((r) => setImmediate(r)); }
        cb();
      })();
    },
  });
  raw.on('data', (d: Buffer) => duplex.push(d));
  raw.on('close', () => duplex.push(null));
  try {
    return await new Promise<PeerCertificate>((resolve, reject) => {
      const s = tls.connect({ socket: duplex, checkServerIdentity: () => undefined, ...o }, () => resolve(s.getPeerCertificate()));
      s.on('error', reject);
    });
  } finally { raw.destroy(); }
}

describe('RSA and ECDSA on entries picked by SNI', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(conf(up.port, [rsaA, ecA]));
  });
  after(async () => { await gw.close(); await up.close(); });

  const mtls = { cert: client.cert, key: client.key };
  const mtlsRsa = { cert: clientRsa.cert, key: clientRsa.key };
  const cases: { desc: string; o: Partial<TlsOptions>; want: string }[] = [
    { desc: 'exact SNI, TLSv1.3 RSA-only signatures: RSA', o: { servername: 'a.test', ...RSA_ONLY }, want: 'rsa' },
    { desc: 'exact SNI, TLSv1.3 ECDSA-only signatures: ECDSA', o: { servername: 'a.test', ...EC_ONLY }, want: 'ec' },
    { desc: 'exact SNI, TLSv1.2 RSA suites: RSA', o: { servername: 'a.test', ...RSA_12 }, want: 'rsa' },
    { desc: 'exact SNI, TLSv1.2 ECDSA suites: ECDSA', o: { servername: 'a.test', ...EC_12 }, want: 'ec' },
    { desc: 'exact SNI, a default client: ECDSA (the client accepts it)', o: { servername: 'a.test' }, want: 'ec' },
    { desc: 'wildcard with mTLS, RSA-only: RSA', o: { servername: 'x.w.test', ...RSA_ONLY, ...mtlsRsa }, want: 'rsa' },
    { desc: 'wildcard with mTLS, ECDSA-only: ECDSA', o: { servername: 'x.w.test', ...EC_ONLY, ...mtls }, want: 'ec' },
    { desc: 'wildcard with mTLS, TLSv1.2 RSA suites: RSA', o: { servername: 'x.w.test', ...RSA_12, ...mtls }, want: 'rsa' },
  ];
  for (const c of cases) {
    it(`HTTP/1.1, ${c.desc}`, async () => {
      const res = await httpsRequest(gw.gw.ports[1], '/hello', { ca: ca.cert, ...c.o });
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.body).url, '/hello');
      assert.equal(kind(res.peer), c.want);
    });
    it(`h2, ${c.desc}`, async () => {
      const [res] = await h2Requests(gw.gw.ports[1], { ca: ca.cert, ...c.o }, [{ path: '/h2' }]);
      assert.deepEqual([res.status, res.alpn, JSON.parse(res.body).url, kind(res.peer)], [200, 'h2', '/h2', c.want]);
    });
  }

  it('the wildcard entry still requires a client certificate, for either pair', async () => {
    await assert.rejects(httpsRequest(gw.gw.ports[1], '/', { ca: ca.cert, servername: 'x.w.test', ...RSA_ONLY }));
    await assert.rejects(httpsRequest(gw.gw.ports[1], '/', { ca: ca.cert, servername: 'x.w.test', ...EC_ONLY }));
  });

  const hostile: { desc: string; send: (s: net.Socket, hello: Buffer) => void }[] = [
    { desc: 'garbage as the first packet', send: (s) => s.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n') },
    { desc: 'a record header whose length points past 16 KiB', send: (s) => s.write(Buffer.from([22, 3, 1, 0xff, 0xff, 1, 0, 0])) },
    { desc: 'half a ClientHello, then the client leaves', send: (s, hello) => s.end(hello.subarray(0, hello.length >> 1)) },
  ];
  for (const h of hostile) {
    it(`${h.desc}: the connection ends, the gateway keeps serving`, async () => {
      const hello = await captureHello({ servername: 'a.test' });
      const { sock, closed } = rawClient(gw.gw.ports[1]);
      h.send(sock, hello);
      const reply = await closed;
      assert.ok(reply.length === 0 || reply[0] === 21, `a TLS alert or nothing, got ${reply.subarray(0, 8).toString('hex')}`);
      await bothServed(gw.gw.ports[1]);
    });
  }

  const splits = [
    { desc: 'one byte per TCP segment', recordSize: 16384 },
    { desc: 'one byte per TCP segment, in 60-byte TLS records', recordSize: 60 },
  ];
  for (const c of splits) {
    it(`a ClientHello sent ${c.desc} is read whole: the RSA-only client gets RSA, the ECDSA-only one ECDSA`, async () => {
      for (const [o, want] of [[RSA_ONLY, 'rsa'], [EC_ONLY, 'ec']] as const) {
        const peer = await slowHandshake(gw.gw.ports[1], { servername: 'a.test', ca: ca.cert, ...o }, c.recordSize);
        assert.equal(kind(peer), want);
      }
    });
  }
});

describe('RSA and ECDSA: reload and timeouts', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(conf(up.port, [rsaA, ecA]) + 'client_header_timeout: 1\n');
  });
  after(async () => { await gw.close(); await up.close(); });

  it('a reload that changes the pairs applies to new handshakes', async () => {
    assert.equal((await httpsRequest(gw.gw.ports[1], '/', { ca: ca.cert, servername: 'a.test', ...EC_ONLY })).peer.fingerprint256, new X509Certificate(ecA.cert).fingerprint256);
    assert.equal(kind((await httpsRequest(gw.gw.ports[1], '/', { ca: ca.cert, servername: 'a.test', ...EC_ONLY })).peer), 'ec');
    await writeFile(gw.file, conf(up.port, [ecA2, rsaA]) + 'client_header_timeout: 1\n');
    assert.equal((await gw.gw.reload('test')).ok, true);
    const ec = await httpsRequest(gw.gw.ports[1], '/', { ca: ca.cert, servername: 'a.test', ...EC_ONLY });
    assert.equal(ec.peer.fingerprint256, new X509Certificate(ecA2.cert).fingerprint256);
    const rsa = await httpsRequest(gw.gw.ports[1], '/', { ca: ca.cert, servername: 'a.test', ...RSA_ONLY });
    assert.equal(kind(rsa.peer), 'rsa');
  });

  it('half a ClientHello and a stall: closed at the handshake timeout, others served meanwhile', async () => {
    const hello = await captureHello({ servername: 'a.test' });
    const { sock, closed } = rawClient(gw.gw.ports[1]);
    sock.write(hello.subarray(0, 20));
    await bothServed(gw.gw.ports[1]);
    await eventually(() => (sock.destroyed || sock.readableEnded ? true : undefined), 10_000);
    await closed;
  });
});
