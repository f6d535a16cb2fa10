/** WebSocket upgrades: the normal request path's node choice, trust rules, plugins, access log and metrics. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { captureLogs, eventually, rawExchange, rawStatus, refusedPort, request, startGateway, type TestGateway } from './helpers/harness.ts';

/** A WebSocket-style upstream: answers 101 with what it saw, then echoes bytes. */
async function wsUpstream(name: string): Promise<{ port: number; sockets: Set<Duplex>; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => { res.writeHead(426); res.end(); });
  const sockets = new Set<Duplex>();
  server.on('upgrade', (req, socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('end', () => socket.end());
    const seen = JSON.stringify({ node: name, url: req.url, xff: req.headers['x-forwarded-for'] ?? null, real: req.headers['x-real-ip'] ?? null, fwd: req.headers.forwarded ?? null });
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nx-seen: ${seen}\r\n\r\n`);
    socket.on('data', (d) => socket.write(Buffer.concat([Buffer.from('echo:'), d])));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    sockets,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

interface Upgraded { status: number; seen: { node: string; url: string; xff: string | null; real: string | null; fwd: string | null }; echo: string }

/** Upgrades `path`, sends `ping`, returns what came back, then closes. */
function upgrade(port: number, path: string, headers: Record<string, string> = {}): Promise<Upgraded> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'Upgrade', upgrade: 'websocket', ...headers } });
    req.on('upgrade', (res, socket) => {
      socket.once('data', (d) => { resolve({ status: res.statusCode!, seen: JSON.parse(String(res.headers['x-seen'])), echo: d.toString() }); socket.destroy(); });
      socket.write('ping');
    });
    req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
}

describe('websocket', () => {
  let a: Awaited<ReturnType<typeof wsUpstream>>;
  let b: Awaited<ReturnType<typeof wsUpstream>>;
  let gw: TestGateway;
  before(async () => {
    a = await wsUpstream('a');
    b = await wsUpstream('b');
    const dead = await refusedPort();
    gw = await startGateway(`
trusted_proxies: ["10.0.0.0/8"]
consumers:
  - username: alice
    plugins: { key-auth: { key: k1 } }
routes:
  - { id: ws, uri: "/ws/*", enable_websocket: true, upstream: { nodes: { "127.0.0.1:${a.port}": 1 } } }
  - id: ws-hash
    uri: /hash
    enable_websocket: true
    upstream: { type: chash, hash_on: header, key: x-user, nodes: { "127.0.0.1:${a.port}": 1, "127.0.0.1:${b.port}": 1 } }
  - { id: ws-retry, uri: /retry, enable_websocket: true, upstream: { nodes: { "127.0.0.1:${dead}": 1, "127.0.0.1:${b.port}": 1 } } }
  - { id: ws-auth, uri: /auth, enable_websocket: true, upstream: { nodes: { "127.0.0.1:${a.port}": 1 } }, plugins: { key-auth: {} } }
  - { id: ws-idle, uri: /idle, enable_websocket: true, upstream: { timeout: { read: 1 }, nodes: { "127.0.0.1:${b.port}": 1 } } }
`);
  });
  after(async () => { await gw.close(); await a.close(); await b.close(); });

  it('does not believe an untrusted client\'s forwarding headers', async () => {
    const r = await upgrade(gw.port, '/ws/x', { 'x-forwarded-for': '6.6.6.6', 'x-real-ip': '6.6.6.6', forwarded: 'for=6.6.6.6' });
    assert.equal(r.echo, 'echo:ping');
    assert.deepEqual([r.seen.xff, r.seen.real, r.seen.fwd], ['127.0.0.1', '127.0.0.1', null]);
  });

  it('routes and forwards the normalised path', async () => {
    const r = await upgrade(gw.port, '/ws/a/../b//c?q=1');
    assert.equal(r.seen.url, '/ws/b/c?q=1');
  });

  it('picks the node by consistent hashing, as for other requests', async () => {
    for (const user of ['u1', 'u2', 'u3', 'u4']) {
      const nodes = new Set<string>();
      for (let i = 0; i < 4; i++) nodes.add((await upgrade(gw.port, '/hash', { 'x-user': user })).seen.node);
      assert.equal(nodes.size, 1, `user ${user} went to ${[...nodes]}`);
    }
  });

  it('retries a node that refuses the connection on another', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await upgrade(gw.port, '/retry')).seen.node, 'b');
  });

  it('runs the route\'s plugins: no key, a 401 with its headers, and no upstream connection', async () => {
    const before = a.sockets.size;
    const out = await rawExchange(gw.port, 'GET /auth HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    assert.equal(rawStatus(out), 401);
    assert.match(out, /^HTTP\/1\.1 401 Unauthorized\r\n/);
    assert.match(out, /www-authenticate: Key realm="key"/i);
    assert.equal(a.sockets.size, before);
    assert.equal((await upgrade(gw.port, '/auth', { apikey: 'k1' })).echo, 'echo:ping');
  });

  it('is logged and counted when the tunnel closes', async () => {
    const logs = captureLogs();
    try {
      await upgrade(gw.port, '/ws/logged');
      const line = await eventually(() => logs.lines.find((l) => l.msg === 'access' && l.path === '/ws/logged'));
      assert.deepEqual([line.route, line.status, line.method], ['ws', 101, 'GET']);
      const metrics = (await request(gw.adminPort, '/metrics')).body;
      assert.match(metrics, /turnpike_http_responses_total\{class="1xx"\} [1-9]/);
    } finally {
      logs.restore();
    }
  });

  it('a tunnel with no byte either way for the upstream read timeout is closed, both sides; traffic keeps it open', async () => {
    const socket = await new Promise<Duplex>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: gw.port, path: '/idle', agent: false, headers: { connection: 'Upgrade', upgrade: 'websocket' } });
      req.on('upgrade', (_res, s) => resolve(s));
      req.on('error', reject);
      req.end();
    });
    let closed = false;
    socket.on('close', () => { closed = true; });
    socket.on('error', () => {});
    // 8 messages 250 ms apart: 2 s of a live tunnel, twice the 1 s timeout.
    for (let i = 0; i < 8; i++) {
      const echo = new Promise((r) => socket.once('data', r));
      socket.write(`m${i}`);
      assert.equal(String(await echo), `echo:m${i}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(closed, false, 'traffic keeps the tunnel open');
    await eventually(() => closed, 5000);
    await eventually(() => b.sockets.size === 0, 3000);
  });

  it('closes the upstream side when the client leaves', async () => {
    await upgrade(gw.port, '/ws/leave');
    await eventually(() => a.sockets.size === 0 && b.sockets.size === 0, 3000);
  });
});
