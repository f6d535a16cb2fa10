/** HTTP/2 on TLS listeners (ALPN), through the one request path; wss and redirect http_to_https beside it. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { captureLogs, request, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness.ts';
import { pemYaml, TestCA } from './helpers/certs.ts';
import { h2Requests, handshake, httpsRequest } from './helpers/tls.ts';

const ca = new TestCA();
after(() => ca.close());
const cert = ca.leaf({ names: ['api.test'], kind: 'ec' });
const SSLS = `ssls:\n  - id: api\n    snis: [api.test]\n    default: true\n    cert: ${pemYaml(cert.cert, 6)}\n    key: ${pemYaml(cert.key, 6)}\n`;
const LISTEN = 'admin:\n  listen: 127.0.0.1:0\nlisten:\n  - { host: 127.0.0.1, port: 0 }\n  - { host: 127.0.0.1, port: 0, tls: true, http2: true }\n';
const o = { servername: 'api.test', ca: ca.cert };

describe('HTTP/2 through the plugin chain', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream((req, res) => {
      if (req.url === '/hints') {
        res.writeEarlyHints({ link: '</style.css>; rel=preload' });
        res.end('page');
        return true;
      }
      if (req.url !== '/hop') return false;
      // An HTTP/1.1 upstream's connection-specific fields never reach an HTTP/2 client.
      res.writeHead(200, { connection: 'keep-alive', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked', 'x-up': '1' });
      res.end('chunked body');
      return true;
    });
    gw = await startGateway(LISTEN + SSLS + `
consumers:
  - username: alice
    plugins: { key-auth: { key: k1 } }
routes:
  - id: r
    uri: "/api/*"
    upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }
    plugins:
      key-auth: {}
      proxy-rewrite: { regex_uri: ["^/api/(.*)", "/v2/$1"], headers: { set: { x-via: h2-test } } }
  - { id: hop, uri: /hop, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } } }
  - { id: hints, uri: /hints, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } } }
`);
  });
  after(async () => { await gw.close(); await up.close(); });

  it('ALPN offers h2 and http/1.1 on the one port', async () => {
    const h2 = await new Promise<string | false | null>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: gw.gw.ports[1], servername: 'api.test', ca: ca.cert, ALPNProtocols: ['h2'] }, () => { resolve(s.alpnProtocol); s.end(); });
      s.on('error', reject);
    });
    assert.equal(h2, 'h2');
    assert.equal((await handshake(gw.gw.ports[1], o)).alpn, 'http/1.1');
  });

  it('requests on one connection run key-auth and proxy-rewrite and reach the upstream as HTTP/1.1', async () => {
    const logs = captureLogs();
    let res;
    try {
      res = await h2Requests(gw.gw.ports[1], o, [
        { path: '/api/one?q=1', headers: { apikey: 'k1' } },
        { path: '/api/two', method: 'POST', headers: { apikey: 'k1', 'content-type': 'text/plain' }, body: 'hello h2' },
        { path: '/api/three' },
      ]);
    } finally {
      logs.restore();
    }
    assert.deepEqual(res.map((r) => [r.alpn, r.status]), [['h2', 200], ['h2', 200], ['h2', 401]]);
    const seen = res.slice(0, 2).map((r) => JSON.parse(r.body));
    assert.deepEqual(seen.map((s) => [s.method, s.url, s.body, s.headers['x-via'], s.headers.host, s.headers['x-forwarded-proto']]), [
      ['GET', '/v2/one?q=1', '', 'h2-test', 'api.test:' + gw.gw.ports[1], 'https'],
      ['POST', '/v2/two', 'hello h2', 'h2-test', 'api.test:' + gw.gw.ports[1], 'https'],
    ]);
    // No pseudo-header or HTTP/2-only field went to the HTTP/1.1 upstream.
    for (const s of seen) assert.deepEqual(Object.keys(s.headers).filter((k) => k.startsWith(':')), []);
    assert.deepEqual(JSON.parse(res[2].body), { message: 'Missing API key in request' });
    const access = logs.lines.filter((l) => l.msg === 'access').map((l) => [l.route, l.method, l.path, l.status]);
    assert.deepEqual(access.sort(), [['r', 'GET', '/api/one', 200], ['r', 'GET', '/api/three', 401], ['r', 'POST', '/api/two', 200]]);
  });

  it('connection-specific fields of the upstream response are dropped for the HTTP/2 client', async () => {
    const [res] = await h2Requests(gw.gw.ports[1], o, [{ path: '/hop' }]);
    assert.equal(res.status, 200);
    assert.equal(res.body, 'chunked body');
    assert.equal(res.headers['x-up'], '1');
    for (const k of ['connection', 'keep-alive', 'transfer-encoding']) assert.equal(res.headers[k], undefined, k);
  });

  it('the same route over HTTP/1.1 on the TLS port answers the same', async () => {
    const res = await httpsRequest(gw.gw.ports[1], '/api/one?q=1', { ...o, headers: { apikey: 'k1', host: 'api.test' } });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).url, '/v2/one?q=1');
  });

  it('/metrics counts HTTP/2 responses with the others', async () => {
    const metrics = (await request(gw.adminPort, '/metrics')).body;
    assert.match(metrics, /turnpike_http_responses_total\{class="4xx"\} [1-9]/);
    assert.match(metrics, /turnpike_http_responses_total\{class="2xx"\} [1-9]/);
  });

  it('103 Early Hints from the upstream reach an HTTP/2 client before the response', async () => {
    const { connect } = await import('node:http2');
    const session = connect(`https://127.0.0.1:${gw.gw.ports[1]}`, { servername: 'api.test', ca: ca.cert });
    try {
      const seen = await new Promise<string[]>((resolve, reject) => {
        const out: string[] = [];
        const s = session.request({ ':path': '/hints' });
        s.on('headers', (h) => out.push(`${h[':status']} ${h.link}`));
        s.on('response', (h) => out.push(String(h[':status'])));
        s.on('error', reject);
        s.resume();
        s.on('end', () => resolve(out));
      });
      assert.deepEqual(seen, ['103 </style.css>; rel=preload', '200']);
    } finally {
      session.close();
    }
  });

  it('a CONNECT stream is answered 405', async () => {
    const http2 = await import('node:http2');
    const client = http2.connect(`https://127.0.0.1:${gw.gw.ports[1]}`, { ...o, checkServerIdentity: () => undefined });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const s = client.request({ ':method': 'CONNECT', ':authority': 'example.com:443' });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
      });
      assert.equal(status, 405);
    } finally {
      client.close();
    }
  });
});

describe('wss and redirect http_to_https', () => {
  let ws: http.Server;
  let wsPort: number;
  const wsSockets = new Set<import('node:stream').Duplex>();
  let gw: TestGateway;
  before(async () => {
    ws = http.createServer((_req, res) => { res.writeHead(426); res.end(); });
    ws.on('upgrade', (req, socket) => {
      wsSockets.add(socket);
      socket.on('error', () => {});
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nx-proto: ${req.headers['x-forwarded-proto']}\r\n\r\n`);
      socket.on('data', (d) => socket.write(Buffer.concat([Buffer.from('echo:'), d])));
    });
    await new Promise<void>((r) => ws.listen(0, '127.0.0.1', r));
    wsPort = (ws.address() as AddressInfo).port;
    gw = await startGateway(LISTEN + SSLS + `
routes:
  - { id: ws, uri: /ws, enable_websocket: true, upstream: { nodes: { "127.0.0.1:${wsPort}": 1 } } }
  - id: secure
    uri: "/s/*"
    upstream: { nodes: { "127.0.0.1:${wsPort}": 1 } }
    plugins: { redirect: { http_to_https: true } }
`);
  });
  after(async () => {
    await gw.close();
    for (const s of wsSockets) s.destroy();
    ws.closeAllConnections();
    await new Promise<void>((r) => ws.close(() => r()));
  });

  it('a WebSocket upgrade over TLS (wss) is tunnelled to the upstream', async () => {
    const got = await new Promise<{ status: number; proto: string; echo: string }>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: gw.gw.ports[1], servername: 'api.test', ca: ca.cert, ALPNProtocols: ['http/1.1'] }, () => {
        s.write('GET /ws HTTP/1.1\r\nhost: api.test\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n');
      });
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString();
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!buf.includes('echo:')) { s.write('ping'); return; }
        resolve({ status: Number(buf.slice(9, 12)), proto: /x-proto: (\S+)/.exec(buf)?.[1] ?? '', echo: buf.slice(buf.indexOf('echo:')) });
        s.destroy();
      });
      s.on('error', reject);
    });
    assert.deepEqual(got, { status: 101, proto: 'https', echo: 'echo:ping' });
  });

  const redirects = [
    { desc: 'GET over plain HTTP: 301 to the TLS listener\'s port', method: 'GET', want: 301 },
    { desc: 'POST over plain HTTP: 308', method: 'POST', want: 308 },
  ];
  for (const c of redirects) {
    it(c.desc, async () => {
      const res = await request(gw.gw.ports[0], '/s/page?a=1', { method: c.method, headers: { host: 'api.test:8080' } });
      assert.equal(res.status, c.want);
      assert.equal(res.headers.location, `https://api.test:${gw.gw.ports[1]}/s/page?a=1`);
    });
  }

  it('over TLS the route is served, not redirected', async () => {
    const res = await httpsRequest(gw.gw.ports[1], '/s/page', { ...o, headers: { host: 'api.test' } });
    assert.equal(res.status, 426);
  });
});

describe('HTTP/2: a stalled upload', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(LISTEN + SSLS + `client_body_timeout: 1
routes:
  - { id: up, uri: /up, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } } }
`);
  });
  after(async () => { await gw.close(); await up.close(); });

  it('a stream whose body stops gets 408 at client_body_timeout; the connection serves other streams meanwhile', async () => {
    const { connect } = await import('node:http2');
    const session = connect(`https://127.0.0.1:${gw.gw.ports[1]}`, { servername: 'api.test', ca: ca.cert });
    try {
      const stalled = new Promise<number>((resolve, reject) => {
        const s = session.request({ ':method': 'POST', ':path': '/up', 'content-length': '10' });
        s.write('ab');
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
      });
      const other = await new Promise<number>((resolve, reject) => {
        const s = session.request({ ':path': '/up' });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
        s.resume();
      });
      assert.equal(other, 200);
      assert.equal(await stalled, 408);
    } finally {
      session.close();
    }
  });
});
