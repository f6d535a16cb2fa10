import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { fixture, request, type Res } from '../helpers/harness.ts';
import { pluginConfigErrors } from '../helpers/load.ts';

const TOO_LARGE = { error: 'request body is larger than 64 bytes', code: 'GW_ERR_BODY_TOO_LARGE' };

/** Sends `text` as is and reads until the gateway closes the connection. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(text));
    let out = '';
    s.on('data', (c) => { out += c; });
    s.on('end', () => { s.destroy(); resolve(out); });
    s.on('error', reject);
  });
}

/** A chunked request that sends `chunks` and does not end: the answer must come while the client is still sending. */
function chunked(port: number, path: string, chunks: string[]): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { 'transfer-encoding': 'chunked' } }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => { req.destroy(); resolve({ status: res.statusCode!, headers: res.headers, body }); });
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
  });
}

describe('client-control', () => {
  const f = fixture((port) => {
    const up = `upstream: { nodes: { "127.0.0.1:${port}": 1 } }`;
    return `routes:
  - { id: cap, uri: /cap, ${up}, plugins: { client-control: { max_body_size: 64 } } }
  - { id: nocap, uri: /nocap, ${up}, plugins: { client-control: { max_body_size: 0 } } }
`;
  });

  const cases: { desc: string; path: string; body: string; want: { status: number; body?: unknown; seen?: string } }[] = [
    { desc: 'Content-Length under the cap', path: '/cap', body: 'x'.repeat(10), want: { status: 200, seen: 'x'.repeat(10) } },
    { desc: 'Content-Length at the cap', path: '/cap', body: 'y'.repeat(64), want: { status: 200, seen: 'y'.repeat(64) } },
    { desc: 'Content-Length over the cap: 413 before the upstream', path: '/cap', body: 'z'.repeat(65), want: { status: 413, body: TOO_LARGE } },
    { desc: 'max_body_size 0: no cap of its own', path: '/nocap', body: 'n'.repeat(1000), want: { status: 200, seen: 'n'.repeat(1000) } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const before = f.up.seen.length;
      const res = await request(f.gw.port, c.path, { method: 'POST', body: c.body });
      assert.equal(res.status, c.want.status);
      if (c.want.body) {
        assert.deepEqual(JSON.parse(res.body), c.want.body);
        assert.equal(f.up.seen.length, before, 'refused before the upstream');
      }
      if (c.want.seen !== undefined) assert.equal(f.up.seen.at(-1)!.body, c.want.seen);
    });
  }

  it('chunked under the cap streams through', async () => {
    const res = await new Promise<Res>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: f.gw.port, path: '/cap', method: 'POST', agent: false, headers: { 'transfer-encoding': 'chunked' } }, (r) => {
        let body = '';
        r.on('data', (c) => { body += c; });
        r.on('end', () => resolve({ status: r.statusCode!, headers: r.headers, body }));
      });
      req.on('error', reject);
      req.write('a'.repeat(30));
      req.end('b'.repeat(30));
    });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).body, 'a'.repeat(30) + 'b'.repeat(30));
  });

  it('chunked past the cap: 413 with a body while the client is still sending; the upstream never gets the whole body', { timeout: 15_000 }, async () => {
    const before = f.up.seen.length;
    const res = await chunked(f.gw.port, '/cap', ['a'.repeat(40), 'b'.repeat(40)]);
    assert.equal(res.status, 413);
    assert.deepEqual(JSON.parse(res.body), TOO_LARGE);
    assert.equal(res.headers.connection, 'close');
    assert.equal(f.up.seen.length, before, 'the upstream saw no complete request');
    const after = await request(f.gw.port, '/cap', { method: 'POST', body: 'ok' });
    assert.equal(after.status, 200, 'the gateway still serves');
  });

  it('a Content-Length that lies (more bytes follow): the rest is no body and no request', async () => {
    const before = f.up.seen.length;
    const extra = 'GARBAGE'.repeat(20);
    const out = await raw(f.gw.port, `POST /cap HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\n${'k'.repeat(10)}${extra}`);
    assert.match(out, /HTTP\/1\.1 400 Bad Request/, 'the rest is not a request');
    // A later request on another connection: whatever the first one reached the upstream with is in by then.
    assert.equal((await request(f.gw.port, '/cap', { method: 'POST', body: 'next' })).status, 200);
    const bodies = f.up.seen.slice(before).map((s) => s.body);
    assert.equal(bodies.at(-1), 'next');
    for (const b of bodies.slice(0, -1)) assert.equal(b, 'k'.repeat(10), 'only the declared bytes');
  });

  it('a chunk size that lies (more bytes than declared): refused, nothing past the cap upstream', async () => {
    const before = f.up.seen.length;
    const out = await raw(f.gw.port, `POST /cap HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n5\r\n${'q'.repeat(80)}\r\n0\r\n\r\n`);
    assert.doesNotMatch(out, /^HTTP\/1\.1 200 /);
    assert.equal(f.up.seen.length, before);
  });
});

describe('client-control config errors', () => {
  const at = 'routes[0].plugins.client-control';
  const cases: { desc: string; conf: unknown; want: string[] }[] = [
    { desc: 'negative', conf: { max_body_size: -1 }, want: [`${at}.max_body_size: plugin client-control: must be >= 0`] },
    { desc: 'not an integer', conf: { max_body_size: 1.5 }, want: [`${at}.max_body_size: plugin client-control: must be of type integer`] },
    { desc: 'a string', conf: { max_body_size: '1m' }, want: [`${at}.max_body_size: plugin client-control: must be of type integer`] },
    { desc: 'unknown field', conf: { max_body: 10 }, want: [`${at}.max_body: plugin client-control: unknown field "max_body"`] },
  ];
  for (const c of cases) it(c.desc, async () => assert.deepEqual(await pluginConfigErrors('client-control', c.conf), c.want));
});
