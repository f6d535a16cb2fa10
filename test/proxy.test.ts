/** Proxying over real sockets: faults, headers, retries, streaming, WebSocket. */
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { captureLogs, eventually, refusedPort, request, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness.ts';

describe('proxy', () => {
  let up: Upstream;
  let slow: Upstream;
  let gw: TestGateway;
  let dead: number;
  const hung = new Set<http.IncomingMessage>();
  const wsSockets = new Set<import('node:stream').Duplex>();
  const closed: string[] = [];

  before(async () => {
    dead = await refusedPort();
    up = await startUpstream((req, res) => {
      if (req.url === '/hop') {
        res.writeHead(200, { connection: 'x-hop', 'x-hop': '1', 'proxy-authenticate': 'Basic', 'x-kept': 'yes' });
        res.end('ok');
        return true;
      }
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(Buffer.alloc(256 * 1024, 7));
        return true;
      }
      return false;
    });
    slow = await startUpstream((req) => {
      // Never answers; remembers when the gateway gives up on it.
      hung.add(req);
      req.socket.on('close', () => closed.push(req.url!));
      return true;
    });
    // WebSocket-style upgrade: answer 101 and echo bytes back.
    const wsServer = (http.createServer() as http.Server);
    gwClose.push(() => new Promise<void>((r) => { for (const s of wsSockets) s.destroy(); wsServer.close(() => r()); }));
    wsServer.on('upgrade', (req, socket) => {
      wsSockets.add(socket);
      socket.on('close', () => wsSockets.delete(socket));
      socket.on('end', () => socket.end()); // as a real server does when its peer leaves
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nx-path: ${req.url}\r\n\r\n`);
      socket.on('data', (d) => socket.write(Buffer.concat([Buffer.from('echo:'), d])));
    });
    await new Promise<void>((r) => wsServer.listen(0, '127.0.0.1', r));
    const wsPort = (wsServer.address() as AddressInfo).port;

    gw = await startGateway(`
trusted_proxies: ["10.0.0.0/8"]
upstreams:
  - id: live
    nodes: { "127.0.0.1:${up.port}": 1 }
  - id: flaky
    nodes: { "127.0.0.1:${dead}": 1, "127.0.0.1:${up.port}": 1 }
routes:
  - { id: echo, uris: ["/echo", "/echo/*", "/hop", "/big"], upstream_id: live }
  - { id: refused, uri: /refused, upstream: { nodes: { "127.0.0.1:${dead}": 1 } } }
  - { id: slow, uri: /slow, upstream: { nodes: { "127.0.0.1:${slow.port}": 1 }, timeout: { read: 0.3 } } }
  - { id: hang, uri: /hang, upstream: { nodes: { "127.0.0.1:${slow.port}": 1 } } }
  - { id: retry, uri: /retry, upstream_id: flaky }
  - { id: node-host, uri: /node-host, upstream: { pass_host: node, nodes: { "127.0.0.1:${up.port}": 1 } } }
  - { id: rewrite-host, uri: /rewrite-host, upstream: { pass_host: rewrite, upstream_host: internal.example, nodes: { "127.0.0.1:${up.port}": 1 } } }
  - { id: ws, uri: /ws, enable_websocket: true, upstream: { nodes: { "127.0.0.1:${wsPort}": 1 } } }
  - id: boom
    uri: /boom
    upstream_id: live
    plugins:
      boom: {}
plugin_paths: [./boom.js]
`, { files: { 'boom.js': `export default { name: 'boom', version: '1', priority: 1, schema: { type: 'object' }, phases: { access() { throw new Error('kaboom'); } } };\n` } });
  });
  const gwClose: (() => Promise<void>)[] = [];
  after(async () => {
    for (const r of hung) r.socket.destroy();
    await gw.close();
    await up.close();
    await slow.close();
    for (const c of gwClose) await c();
  });

  it('forwards method, path, query and body', async () => {
    const res = await request(gw.port, '/echo/a?x=1&y=2', { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain' } });
    assert.equal(res.status, 200);
    const seen = JSON.parse(res.body);
    assert.deepEqual([seen.method, seen.url, seen.body], ['POST', '/echo/a?x=1&y=2', 'hello']);
    assert.equal(res.headers['x-upstream'], 'yes');
  });

  it('answers 404 with a JSON body when no route matches', async () => {
    const res = await request(gw.port, '/nowhere');
    assert.equal(res.status, 404);
    assert.deepEqual(JSON.parse(res.body), { error: 'no route matches GET /nowhere', code: 'GW_ERR_ROUTE_NOT_FOUND' });
  });

  let logs: ReturnType<typeof captureLogs>;
  beforeEach(() => { logs = captureLogs(); });
  afterEach(() => logs.restore());

  it('answers 502 when the upstream refuses the connection', async () => {
    const res = await request(gw.port, '/refused');
    assert.equal(res.status, 502);
    assert.deepEqual(JSON.parse(res.body), { error: 'upstream unavailable', code: 'GW_ERR_UPSTREAM_UNAVAILABLE' });
    const line = await eventually(() => logs.lines.find((l) => l.route === 'refused' && l.level === 'error'));
    assert.equal(line.msg, `upstream http://127.0.0.1:${dead} failed: ECONNREFUSED`);
  });

  it('answers 504 when the upstream is silent past timeout.read', async () => {
    const res = await request(gw.port, '/slow');
    assert.equal(res.status, 504);
    assert.deepEqual(JSON.parse(res.body), { error: 'upstream timed out', code: 'GW_ERR_UPSTREAM_TIMEOUT' });
    const line = await eventually(() => logs.lines.find((l) => l.route === 'slow' && l.level === 'error'));
    assert.equal(line.msg, `upstream http://127.0.0.1:${slow.port} did not answer within 0.3s`);
  });

  it('aborts the upstream request when the client goes away', async () => {
    const req = http.request({ host: '127.0.0.1', port: gw.port, path: '/hang', agent: false });
    req.on('error', () => {});
    req.end();
    await eventually(() => slow.seen.some((s) => s.url === '/hang'));
    req.destroy();
    await eventually(() => closed.includes('/hang'), 2000);
  });

  it('retries an idempotent request on another node', async () => {
    const before = up.seen.length;
    const res = await request(gw.port, '/retry');
    assert.equal(res.status, 200);
    assert.equal(up.seen.length, before + 1);
  });

  it('does not retry a request whose body was streamed', async () => {
    // Round robin's first pick is the dead node: a POST with a body must not be replayed.
    const statuses = new Set<number>();
    for (let i = 0; i < 4; i++) statuses.add((await request(gw.port, '/retry', { method: 'POST', body: 'x' })).status);
    assert.deepEqual([...statuses].sort(), [200, 502]);
  });

  it('strips hop-by-hop headers both ways', async () => {
    const res = await request(gw.port, '/hop', {
      headers: { connection: 'x-custom, close', 'x-custom': '1', te: 'trailers', 'proxy-authorization': 'secret', upgrade: 'h2c', 'x-normal': 'kept' },
    });
    assert.equal(res.status, 200);
    const seen = up.seen.at(-1)!.headers;
    for (const h of ['x-custom', 'te', 'proxy-authorization', 'upgrade']) assert.equal(seen[h], undefined, h);
    assert.notEqual(seen.connection, 'x-custom, close');
    assert.equal(seen['x-normal'], 'kept');
    assert.equal(res.headers['x-hop'], undefined);
    assert.equal(res.headers['proxy-authenticate'], undefined);
    assert.equal(res.headers['x-kept'], 'yes');
  });

  it('sets X-Forwarded-* and X-Real-IP, replacing what an untrusted client sent', async () => {
    const res = await request(gw.port, '/echo', { headers: { host: 'shop.example', 'x-forwarded-for': '6.6.6.6', 'x-real-ip': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil' } });
    const h = JSON.parse(res.body).headers;
    assert.deepEqual([h['x-forwarded-for'], h['x-real-ip'], h['x-forwarded-proto'], h['x-forwarded-host'], h.host], ['127.0.0.1', '127.0.0.1', 'http', 'shop.example', 'shop.example']);
  });

  it('sends the Host header by pass_host', async () => {
    assert.equal(JSON.parse((await request(gw.port, '/node-host', { headers: { host: 'client.example' } })).body).headers.host, `127.0.0.1:${up.port}`);
    assert.equal(JSON.parse((await request(gw.port, '/rewrite-host', { headers: { host: 'client.example' } })).body).headers.host, 'internal.example');
  });

  it('streams large bodies both ways', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 'a');
    const res = await request(gw.port, '/echo', { method: 'PUT', body: big });
    assert.equal(JSON.parse(res.body).body.length, big.length);
    const down = await new Promise<number>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: gw.port, path: '/big', agent: false }, (r) => {
        let n = 0;
        r.on('data', (c: Buffer) => { n += c.length; });
        r.on('end', () => resolve(n));
      }).on('error', reject);
    });
    assert.equal(down, 256 * 1024);
  });

  it('answers 500 when a plugin throws, and never forwards the request', async () => {
    {
      const before = up.seen.length;
      const res = await request(gw.port, '/boom');
      assert.equal(res.status, 500);
      assert.deepEqual(JSON.parse(res.body), { error: 'internal error', code: 'GW_ERR_PLUGIN_FAILED' });
      assert.equal(up.seen.length, before);
      await eventually(() => logs.lines.find((l) => l.msg === 'plugin failed'));
      const line = logs.lines.find((l) => l.msg === 'plugin failed')!;
      assert.deepEqual([line.route, line.plugin, (line.error as { message: string }).message], ['boom', 'boom', 'kaboom']);
    }
  });

  it('proxies WebSocket upgrades on routes that enable them', async () => {
    const echoed = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: gw.port, path: '/ws?room=1', agent: false, headers: { connection: 'Upgrade', upgrade: 'websocket' } });
      req.on('upgrade', (res, socket) => {
        assert.equal(res.statusCode, 101);
        assert.equal(res.headers['x-path'], '/ws?room=1');
        socket.once('data', (d) => { resolve(d.toString()); socket.destroy(); });
        socket.write('ping');
      });
      req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
      req.on('error', reject);
      req.end();
    });
    assert.equal(echoed, 'echo:ping');
    // The client left: the gateway must not keep the upstream connection open.
    await eventually(() => wsSockets.size === 0, 2000);
  });

  it('refuses upgrades on routes that do not enable them', async () => {
    const status = await new Promise<string>((resolve) => {
      const s = net.connect(gw.port, '127.0.0.1', () => s.write('GET /echo HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n'));
      s.once('data', (d) => { resolve(d.toString().split('\r\n')[0]); s.destroy(); });
    });
    assert.equal(status, 'HTTP/1.1 404 Not Found');
  });
});

describe('shutdown', () => {
  it('lets a request in flight finish, refuses new connections, then closes', async () => {
    const up = await startUpstream((_req, res) => { setTimeout(() => res.end('late but whole'), 300); return true; });
    const gw = await startGateway(`routes:\n  - { id: slow, uri: /slow, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } } }\n`);
    try {
      const inFlight = request(gw.port, '/slow');
      await eventually(() => up.seen.length === 1);
      const closing = gw.gw.close(5000);
      await new Promise((r) => setTimeout(r, 50));
      await assert.rejects(request(gw.port, '/slow'), /ECONNREFUSED/);
      const res = await inFlight;
      assert.deepEqual([res.status, res.body], [200, 'late but whole']);
      await closing;
    } finally {
      await gw.close(); // a second close is harmless, and removes the temp dir
      await up.close();
    }
  });
});

describe('trusted proxies', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(`trusted_proxies: ["127.0.0.1"]\nroutes:\n  - { id: echo, uri: /echo, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } } }\n`);
  });
  after(async () => { await gw.close(); await up.close(); });

  it('keeps and appends to X-Forwarded-For from a trusted peer', async () => {
    const res = await request(gw.port, '/echo', { headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'public.example' } });
    const h = JSON.parse(res.body).headers;
    assert.deepEqual([h['x-forwarded-for'], h['x-real-ip'], h['x-forwarded-proto'], h['x-forwarded-host']], ['203.0.113.9, 127.0.0.1', '203.0.113.9', 'https', 'public.example']);
  });
});
