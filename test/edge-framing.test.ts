/** The edge: framing is the gateway's; statuses 200-599; upstream 1xx. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before } from 'node:test';
import { captureLogs, eventually, fixture, rawExchange, rawStatus, request, startGateway, type TestGateway } from './helpers/harness.ts';

/** A test plugin that does what its conf says: reply, set request headers, or change the upstream's response head. */
const KNOBS = `export default {
  name: 'knobs', version: '1', priority: 1, schema: { type: 'object' }, canReply: true,
  phases: {
    rewrite(c, ctx) { if (c.req) Object.assign(ctx.request.headers, c.req); if (c.reply) return c.reply; },
    header_filter(c, ctx) { if (c.resp) Object.assign(ctx.response.headers, c.resp); if (c.status !== undefined) ctx.response.status = c.status; },
  },
};
`;

function yaml(port: number, routes: Record<string, string>): string {
  return `plugin_paths: [./knobs.js]\nroutes:\n` + Object.entries(routes).map(([uri, knobs]) =>
    `  - { id: "${uri.slice(1)}", uri: "${uri}", upstream: { nodes: { "127.0.0.1:${port}": 1 } }, plugins: { knobs: ${knobs} } }\n`).join('');
}

/** Header lines of a raw response, lower-cased names. */
function headerLines(raw: string): string[] {
  return raw.split('\r\n\r\n')[0].split('\r\n').slice(1).map((l) => l.toLowerCase());
}

describe('framing belongs to the gateway', () => {
  let gw: TestGateway;
  const f = fixture(() => 'routes: []\n', {
    handler: (req, res) => {
      const body = JSON.stringify({ url: req.url, headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    },
  });
  before(async () => {
    gw = await startGateway(yaml(f.up.port, {
      '/reply': `{ reply: { status: 200, body: "hello", headers: { Content-Length: "999", Transfer-Encoding: "chunked", CONNECTION: "keep-alive", X-A: "1" } } }`,
      '/stream': `{ resp: { CONTENT-LENGTH: "1", Transfer-Encoding: "chunked", X-B: "2" } }`,
      '/req': `{ req: { Transfer-Encoding: "chunked", Content-Length: "5", X-Case: "Up" } }`,
      '/bad-value': `{ reply: { status: 200, headers: { x-bad: "a\\r\\nset-cookie: x=1" } } }`,
      '/bad-name': `{ reply: { status: 200, headers: { "bad name": "1" } } }`,
      '/bad-req-header': `{ req: { "x-bad": "a\\nb" } }`,
    }), { files: { 'knobs.js': KNOBS } });
  });
  after(() => gw.close());

  it('a reply carries one Content-Length, computed, and no chunking or Connection from the plugin', async () => {
    const raw = await rawExchange(gw.port, 'GET /reply HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const lines = headerLines(raw);
    assert.equal(rawStatus(raw), 200);
    assert.deepEqual(lines.filter((l) => l.startsWith('content-length:')), ['content-length: 5']);
    assert.deepEqual(lines.filter((l) => l.startsWith('transfer-encoding:')), []);
    assert.ok(lines.includes('x-a: 1'));
    assert.ok(raw.endsWith('\r\n\r\nhello'));
  });

  it('header_filter cannot change the framing of a streamed response', async () => {
    const raw = await rawExchange(gw.port, 'GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(rawStatus(raw), 200);
    const body = raw.split('\r\n\r\n').slice(1).join('\r\n\r\n');
    const lines = headerLines(raw);
    assert.deepEqual(lines.filter((l) => l.startsWith('content-length:')), [`content-length: ${Buffer.byteLength(body)}`]);
    assert.deepEqual(lines.filter((l) => l.startsWith('transfer-encoding:')), []);
    assert.ok(lines.includes('x-b: 2'));
    assert.equal(JSON.parse(body).url, '/stream');
  });

  it('request framing set by a plugin is dropped; names are lower-cased', async () => {
    const res = await request(gw.port, '/req');
    assert.equal(res.status, 200);
    const h = JSON.parse(res.body).headers;
    assert.deepEqual([h['transfer-encoding'], h['content-length'], h['x-case']], [undefined, undefined, 'Up']);
  });

  const bad: { desc: string; path: string }[] = [
    { desc: 'a header value with CR LF', path: '/bad-value' },
    { desc: 'a header name with a space', path: '/bad-name' },
    { desc: 'a request header value with LF', path: '/bad-req-header' },
  ];
  for (const c of bad) {
    it(`fails closed on ${c.desc}`, async () => {
      const logs = captureLogs();
      try {
        const before = f.up.seen.length;
        const res = await request(gw.port, c.path);
        assert.equal(res.status, 500);
        assert.equal(JSON.parse(res.body).code, 'GW_ERR_PLUGIN_FAILED');
        assert.equal(res.headers['set-cookie'], undefined);
        assert.equal(f.up.seen.length, before);
        await eventually(() => logs.lines.find((l) => String(l.msg).includes('not valid')));
      } finally {
        logs.restore();
      }
    });
  }
});

describe('status codes', () => {
  let gw: TestGateway;
  const f = fixture(() => 'routes: []\n');
  const statuses = [100, 101, 103, 199, 250.5, 600, 1000];
  before(async () => {
    const routes: Record<string, string> = {};
    for (const s of statuses) {
      routes[`/reply-${String(s).replace('.', '_')}`] = `{ reply: { status: ${s}, body: "x" } }`;
      routes[`/filter-${String(s).replace('.', '_')}`] = `{ status: ${s} }`;
    }
    gw = await startGateway(yaml(f.up.port, routes), { files: { 'knobs.js': KNOBS } });
  });
  after(() => gw.close());

  for (const s of statuses) {
    for (const how of ['reply', 'filter']) {
      it(`a ${how === 'reply' ? 'reply' : 'header_filter'} with status ${s} answers 500, and the connection serves the next request`, async () => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        try {
          const res = await request(gw.port, `/${how}-${String(s).replace('.', '_')}`, { agent });
          assert.equal(res.status, 500);
          const next = await request(gw.port, '/filter-100'.replace('filter-100', 'nothing'), { agent });
          assert.equal(next.status, 404);
        } finally {
          agent.destroy();
        }
      });
    }
  }
});

/** Raw responses by path; a string is written at once, an array piece by piece (separate TCP segments). */
const INFORMATIONAL: Record<string, string | string[]> = {
  '/hints': 'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  '/continue': 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  '/continue-headers': 'HTTP/1.1 100 Continue\r\nX-Odd: 1\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  '/continue-twice': 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 100 Go on\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  '/continue-split': ['HTTP/1.1 10', '0 Continue\r\n', '\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'],
  '/continue-alone': ['HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'],
  '/body-looks-like-100': 'HTTP/1.1 200 OK\r\ncontent-length: 25\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n',
  '/continue-then-close': 'HTTP/1.1 100 Continue\r\n\r\n',
  '/continue-endless': 'HTTP/1.1 100 Continue\r\nX-Pad: ' + 'a'.repeat(20_000),
};

describe('upstream informational responses', () => {
  let upstream: net.Server;
  let gw: TestGateway;
  let connections = 0;
  before(async () => {
    // Speaks raw HTTP on kept-alive connections: 1xx before the final response, as misbehaving or modern servers do.
    upstream = net.createServer((s) => {
      connections++;
      s.setNoDelay(true);
      s.on('error', () => {});
      s.on('data', async (d) => {
        const path = d.toString().split(' ')[1];
        if (path === '/continue-forever') {
          // A hostile upstream: 100 heads, one every few milliseconds, and never a response.
          const t = setInterval(() => s.write('HTTP/1.1 100 Continue\r\n\r\n'), 5);
          s.once('close', () => clearInterval(t));
          return;
        }
        const script = INFORMATIONAL[path] ?? 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n';
        for (const piece of Array.isArray(script) ? script : [script]) {
          s.write(piece);
          if (Array.isArray(script)) await new Promise((r) => setTimeout(r, 40));
        }
        if (path.startsWith('/continue-then') || path === '/continue-endless') s.end();
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as AddressInfo).port;
    gw = await startGateway(`routes:\n  - { id: up, uri: "/*", upstream: { nodes: { "127.0.0.1:${port}": 1 } } }\n`
      + `  - { id: flood, uri: "/continue-forever", upstream: { nodes: { "127.0.0.1:${port}": 1 }, timeout: { connect: 1, send: 1, read: 1 } } }\n`);
  });
  after(async () => { await gw.close(); await new Promise((r) => upstream.close(r)); });

  it('an upstream that sends 100s forever and no response: 504 at the read timeout, the gateway still serving', async () => {
    const res = await request(gw.port, '/continue-forever');
    assert.equal(res.status, 504);
    assert.equal((await request(gw.port, '/continue')).status, 200);
  });

  it('passes 103 Early Hints on, then the response', async () => {
    const hints: string[] = [];
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: gw.port, path: '/hints', agent: false }, (r) => {
        let body = '';
        r.on('data', (c) => { body += c; });
        r.on('end', () => resolve({ status: r.statusCode!, body }));
      });
      req.on('information', (info) => hints.push(`${info.statusCode} ${info.headers.link}`));
      req.on('error', reject);
    });
    assert.deepEqual(res, { status: 200, body: 'ok' });
    assert.deepEqual(hints, ['103 </style.css>; rel=preload']);
  });

  const cases = [
    { desc: 'a stray 100 before the response is dropped', path: '/continue', want: { status: 200, body: 'ok' } },
    { desc: 'a stray 100 with header fields is dropped', path: '/continue-headers', want: { status: 200, body: 'ok' } },
    { desc: 'two stray 100s (one HTTP/1.0) are dropped', path: '/continue-twice', want: { status: 200, body: 'ok' } },
    { desc: 'a 100 split across TCP segments is dropped', path: '/continue-split', want: { status: 200, body: 'ok' } },
    { desc: 'a 100 in its own segment, the response later', path: '/continue-alone', want: { status: 200, body: 'ok' } },
    { desc: 'a body that reads like a 100 head is left whole', path: '/body-looks-like-100', want: { status: 200, body: 'HTTP/1.1 100 Continue\r\n\r\n' } },
    { desc: 'a 100 and then nothing: 502, no hang', path: '/continue-then-close', want: { status: 502 } },
    { desc: 'a 100 head that never ends: 502, no hang', path: '/continue-endless', want: { status: 502 } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await request(gw.port, c.path);
      assert.equal(res.status, c.want.status);
      if (c.want.body !== undefined) assert.equal(res.body, c.want.body);
    });
  }

  it('keeps the upstream connection after a stray 100, and logs its cause once', async () => {
    const logs = captureLogs();
    try {
      await request(gw.port, '/hints'); // a kept-alive connection in the pool
      const before = connections;
      for (let i = 0; i < 3; i++) assert.equal((await request(gw.port, '/continue')).status, 200);
      assert.equal(connections, before, 'no new upstream connection: the stray 100 did not close one');
      const said = logs.lines.filter((l) => String(l.msg) === 'upstream sent an unrequested 100 Continue: dropped');
      assert.ok(said.length >= 1 && said.length <= 1 + before, `logged once per connection, got ${said.length}`);
    } finally {
      logs.restore();
    }
  });
});

describe('hop-by-hop request headers, with and without plugins', () => {
  const f = fixture((port) => `routes:
  - { id: plain, uri: /plain, upstream: { nodes: { "127.0.0.1:${port}": 1 } } }
  - { id: keyed, uri: /keyed, upstream: { nodes: { "127.0.0.1:${port}": 1 } }, plugins: { key-auth: {} } }
consumers:
  - { username: alice, plugins: { key-auth: { key: k1 } } }
`);
  for (const path of ['/plain', '/keyed']) {
    it(`${path}: Expect, Proxy-Authorization and what Connection names stay at the gateway (curl sends Expect on large uploads)`, async () => {
      const res = await request(f.gw.port, path, {
        method: 'POST', body: 'hello',
        headers: { apikey: 'k1', expect: '100-continue', 'proxy-authorization': 'Basic cHJveHk6c2VjcmV0', connection: 'keep-alive, x-hop', 'x-hop': '1', 'x-end': '2' },
      });
      assert.equal(res.status, 200, res.body);
      const seen = JSON.parse(res.body).headers;
      assert.deepEqual([seen.expect, seen['proxy-authorization'], seen['x-hop'], seen['x-end']], [undefined, undefined, undefined, '2']);
    });
  }
});
