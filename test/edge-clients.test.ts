/** The edge: bounded clients. Header, body and keep-alive timeouts; the request body cap answered; the buffered response cap. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { captureLogs, eventually, fixture, rawExchange, rawStatus } from './helpers/harness.ts';

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
    const s = net.connect(port, '127.0.0.1', () => s.write(head));
    const chunks: Buffer[] = [];
    const timer = setInterval(() => { if (drip && s.writable) s.write(drip); }, 100);
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
    assert.deepEqual(outs.map(rawStatus), outs.map(() => 408));
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
