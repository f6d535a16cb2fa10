/** The edge: bounded clients. Header, body and keep-alive timeouts; the request body cap answered; the buffered response cap. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { captureLogs, eventually, fixture, rawExchange, rawStatus, request } from './helpers/harness.ts';

/** Buffers request bodies up to 1 KiB (rewrite) and responses for body_filter, without changing them. */
const BUFFERS = `export default {
  name: 'buffers', version: '1', priority: 1, schema: { type: 'object' },
  requestBody: () => 1024,
  phases: { rewrite() {}, body_filter() {} },
};
`;

const f = fixture((port) => `
client_header_timeout: 0.5
client_body_timeout: 0.5
keepalive_timeout: 0.5
max_buffered_response_bytes: 4096
plugin_paths: [./buffers.js]
routes:
  - { id: echo, uri: /echo, upstream: { nodes: { "127.0.0.1:${port}": 1 } } }
  - { id: buffered, uri: "/buffered/*", upstream: { nodes: { "127.0.0.1:${port}": 1 } }, plugins: { buffers: {} } }
`, {
  handler: (req, res) => {
    if (!req.url!.startsWith('/buffered/big')) return false;
    res.end(Buffer.alloc(64 * 1024, 'x'));
    return true;
  },
  files: { 'buffers.js': BUFFERS },
});

/** Opens a connection, sends `head`, then keeps dripping `drip` every 100 ms; resolves with what came back when the server closes (or '' after `ms`). */
function dripping(port: number, head: string, drip: string, ms: number): Promise<string> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    // The drip starts once connected: written before, it would come ahead of the head under load.
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(head);
      timer = setInterval(() => { if (drip && s.writable) s.write(drip); }, 100);
    });
    const chunks: Buffer[] = [];
    const giveUp = setTimeout(() => { s.destroy(); }, ms);
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => { clearInterval(timer); clearTimeout(giveUp); resolve(Buffer.concat(chunks).toString('latin1')); });
  });
}

describe('timeouts', () => {
  it('closes a connection whose headers trickle in past client_header_timeout', async () => {
    const out = await dripping(f.gw.port, 'GET /echo HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1\r\n', 10_000);
    assert.equal(rawStatus(out), 408, out);
  });

  it('closes many slow-header connections, not only one', async () => {
    const outs = await Promise.all(Array.from({ length: 40 }, () => dripping(f.gw.port, 'GET /echo HTTP/1.1\r\n', 'X-Slow: 1\r\n', 10_000)));
    assert.deepEqual(outs.map(rawStatus), outs.map(() => 408), outs.find((o) => rawStatus(o) !== 408));
  });

  it('answers 408 with a JSON body when the request body stalls past client_body_timeout', async () => {
    const logs = captureLogs();
    try {
      const before = f.up.seen.length;
      const out = await dripping(f.gw.port, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab', '', 10_000);
      assert.equal(rawStatus(out), 408, out);
      assert.match(out, /"code":"GW_ERR_CLIENT_TIMEOUT"/);
      assert.match(out, /connection: close/i);
      assert.equal(f.up.seen.length, before, 'the upstream never got a whole request');
      await eventually(() => logs.lines.find((l) => l.msg === 'access' && l.status === 408));
    } finally {
      logs.restore();
    }
  });

  it('keeps a body that arrives in slow chunks, each within client_body_timeout', async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: f.gw.port, path: '/echo', method: 'POST', agent: false, headers: { 'content-length': '6' } }, (r) => {
        let body = '';
        r.on('data', (c) => { body += c; });
        r.on('end', () => resolve({ status: r.statusCode!, body }));
      });
      req.on('error', reject);
      let n = 0;
      const t = setInterval(() => { req.write('ab'); if (++n === 3) { clearInterval(t); req.end(); } }, 200);
    });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).body, 'ababab');
  });

  it('closes an idle keep-alive connection after keepalive_timeout', async () => {
    const out = await rawExchange(f.gw.port, 'GET /echo HTTP/1.1\r\nHost: x\r\n\r\n', 10_000);
    assert.equal(rawStatus(out), 200);
  });
});

describe('caps', () => {
  it('answers a chunked body over the cap with 413 and a JSON body', async () => {
    const res = await new Promise<{ status: number; body: string; connection?: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: f.gw.port, path: '/buffered/x', method: 'POST', agent: false }, (r) => {
        let body = '';
        r.on('data', (c) => { body += c; });
        r.on('end', () => resolve({ status: r.statusCode!, body, connection: r.headers.connection }));
      });
      req.on('error', reject);
      req.write(Buffer.alloc(3000, 'a'));
      req.end(Buffer.alloc(3000, 'b'));
    });
    assert.equal(res.status, 413);
    assert.deepEqual(JSON.parse(res.body), { error: 'request body is larger than 1024 bytes', code: 'GW_ERR_BODY_TOO_LARGE' });
    assert.equal(res.connection, 'close');
  });

  it('fails closed on a buffered response over max_buffered_response_bytes, and says why', async () => {
    const logs = captureLogs();
    try {
      const out = await rawExchange(f.gw.port, 'GET /buffered/big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      assert.equal(rawStatus(out), 502);
      assert.match(out, /"code":"GW_ERR_RESPONSE_TOO_LARGE"/);
      assert.ok(!out.includes('xxxx'), 'no part of the upstream body goes out');
      await eventually(() => logs.lines.find((l) => String(l.msg).includes('over max_buffered_response_bytes (4096)')));
    } finally {
      logs.restore();
    }
  });
});

describe('upstream connections', () => {
  const hung = new Set<http.ServerResponse>();
  const p = fixture((port) => `
client_body_timeout: 30
routes:
  - id: small
    uri: "/*"
    upstream: { nodes: { "127.0.0.1:${port}": 1 }, keepalive_pool: { size: 4 }, timeout: { connect: 0.5 } }
`, {
    handler: (req, res) => {
      if (req.url !== '/hang') return false;
      hung.add(res);
      return true;
    },
  });
  const sockets = new Set<net.Socket>();
  const admin = () => request(p.gw.adminPort, '/status').then((r) => JSON.parse(r.body).upstream_connections[`http://127.0.0.1:${p.up.port}`]);

  /** A client that sends the head of an upload and one byte of its body, then stalls. */
  function slowUpload(): void {
    const s = net.connect(p.gw.port, '127.0.0.1', () => s.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\na'));
    s.on('error', () => {});
    sockets.add(s);
  }

  it('slow uploads hold at most half the connections: a GET still gets through, and /status shows the use', async () => {
    for (let i = 0; i < 6; i++) slowUpload();
    await eventually(async () => (await admin())?.uploads === 2);
    const res = await Promise.race([
      request(p.gw.port, '/get'),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the GET was starved')), 8000).unref()),
    ]);
    assert.equal(res.status, 200);
    const use = await admin();
    assert.deepEqual([use.size, use.in_use, use.uploads], [4, 2, 2]);
    assert.ok(use.queued >= 1);
  });

  it('uploads past the share wait a bounded time, then get 503', async () => {
    // The 6 uploads of the last test: 2 hold connections, 4 were queued for the 0.5 s wait.
    const got = new Map<net.Socket, string>();
    for (const s of sockets) {
      got.set(s, '');
      s.on('data', (c: Buffer) => got.set(s, got.get(s) + c.toString('latin1')));
    }
    await eventually(() => [...got.values()].filter((out) => rawStatus(out) === 503).length === 4, 8000);
    assert.equal([...got.values()].filter((out) => out === '').length, 2);
    assert.match([...got.values()].find((out) => out !== '')!, /"code":"GW_ERR_UPSTREAM_BUSY"/);
    const use = await admin();
    assert.deepEqual([use.queued, use.uploads], [0, 2]);
  });

  it('when every connection is busy, a request waits at most the connect timeout and gets 503', async () => {
    for (const s of sockets) s.destroy();
    sockets.clear();
    await eventually(async () => (await admin())?.in_use === 0);
    const pending = Array.from({ length: 4 }, () => request(p.gw.port, '/hang').catch(() => undefined));
    await eventually(async () => (await admin())?.in_use === 4);
    const res = await request(p.gw.port, '/next');
    assert.equal(res.status, 503);
    assert.equal(JSON.parse(res.body).code, 'GW_ERR_UPSTREAM_BUSY');
    for (const r of hung) r.end('late');
    await Promise.all(pending);
    assert.equal((await request(p.gw.port, '/after')).status, 200);
  });
});
