/** TLS and HTTP/2 clients for tests: which certificate a handshake got, and the response. */
import http2 from 'node:http2';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import tls, { type PeerCertificate } from 'node:tls';

export interface TlsOptions {
  /** The SNI to send; none when undefined. */
  servername?: string;
  /** CA to trust (the test CA). */
  ca: string;
  cert?: string;
  key?: string;
  /** Signature algorithms offered (e.g. only ECDSA). */
  sigalgs?: string;
  maxVersion?: tls.SecureVersion;
  /** Cipher suites offered (TLSv1.2: they decide RSA or ECDSA). */
  ciphers?: string;
  session?: Buffer;
  headers?: Record<string, string>;
  method?: string;
  body?: string;
}

export interface TlsRes {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The CN of the certificate the gateway served. */
  cn: string;
  peer: PeerCertificate;
  protocol: string | null;
  reused: boolean;
  session?: Buffer;
}

/** The CN in a certificate's subject. */
export function cnOf(peer: PeerCertificate): string {
  return String(peer.subject?.CN ?? '');
}

/** One HTTPS/1.1 request on a new connection; rejects when the handshake or the request fails. */
export function httpsRequest(port: number, path: string, o: TlsOptions): Promise<TlsRes> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const req = https.request({
      host: '127.0.0.1', port, path, method: o.method ?? 'GET', agent: false, headers: { host: o.servername ?? 'localhost', ...o.headers },
      servername: o.servername ?? '', ca: o.ca, cert: o.cert, key: o.key, sigalgs: o.sigalgs, maxVersion: o.maxVersion, ciphers: o.ciphers, session: o.session,
      // The tests check which certificate came back themselves (by CN).
      checkServerIdentity: () => undefined,
    } as https.RequestOptions, (res) => {
      const socket = res.socket as tls.TLSSocket;
      const peer = socket.getPeerCertificate();
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({
        status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString(), cn: cnOf(peer), peer,
        protocol: socket.getProtocol(), reused: socket.isSessionReused(), session: session ?? socket.getSession(),
      }));
      res.on('error', reject);
    });
    req.on('socket', (s) => s.on('session', (x: Buffer) => { session = x; }));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** The certificate a bare handshake gets (no request), or the handshake's error. */
export function handshake(port: number, o: TlsOptions): Promise<{ cn: string; peer: PeerCertificate; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: o.servername ?? '', ca: o.ca, cert: o.cert, key: o.key, sigalgs: o.sigalgs, maxVersion: o.maxVersion, checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] }, () => {
      const peer = s.getPeerCertificate();
      resolve({ cn: cnOf(peer), peer, alpn: s.alpnProtocol });
      s.end();
    });
    s.on('error', reject);
    s.setTimeout(5000, () => { s.destroy(); reject(new Error('handshake timed out')); });
  });
}

export interface H2Res { status: number; headers: http2.IncomingHttpHeaders; body: string; alpn: string | undefined; peer?: PeerCertificate }

/** Requests over one HTTP/2 connection (h2 through ALPN), in parallel; the session closes after. */
export async function h2Requests(port: number, o: TlsOptions, reqs: { path: string; method?: string; headers?: Record<string, string>; body?: string }[]): Promise<H2Res[]> {
  const client = http2.connect(`https://127.0.0.1:${port}`, { servername: o.servername, ca: o.ca, cert: o.cert, key: o.key, sigalgs: o.sigalgs, maxVersion: o.maxVersion, ciphers: o.ciphers, checkServerIdentity: () => undefined });
  let peer: PeerCertificate | undefined;
  client.once('connect', (_s, socket) => { peer = (socket as tls.TLSSocket).getPeerCertificate(); });
  const errored = new Promise<never>((_, reject) => client.on('error', reject));
  try {
    return await Promise.race([errored, Promise.all(reqs.map((r) => new Promise<H2Res>((resolve, reject) => {
      const stream = client.request({ ':path': r.path, ':method': r.method ?? 'GET', ...r.headers });
      let head: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => { head = h; });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks).toString(), alpn: client.alpnProtocol, peer }));
      stream.on('error', reject);
      stream.end(r.body);
    })))]);
  } finally {
    client.close();
  }
}

/** The first flight a Node TLS client sends with these options (caught by a one-shot TCP server). */
export async function captureHello(o: tls.ConnectionOptions): Promise<Buffer> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const got = new Promise<Buffer>((resolve) => srv.once('connection', (s) => s.once('data', (d: Buffer) => { resolve(d); s.destroy(); })));
  const c = tls.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false, ...o });
  c.on('error', () => {});
  const hello = await got;
  c.destroy();
  srv.close();
  return hello;
}

/** The first record of a flight re-framed into records of `size` fragment bytes (what follows it kept). */
export function reframe(hello: Buffer, size: number): Buffer {
  const frag = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const out: Buffer[] = [];
  for (let i = 0; i < frag.length; i += size) {
    const part = frag.subarray(i, i + size);
    out.push(Buffer.from([22, hello[1], hello[2], part.length >> 8, part.length & 0xff]), part);
  }
  return Buffer.concat([...out, hello.subarray(5 + frag.length)]);
}
