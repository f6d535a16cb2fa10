/** The access log line: valid JSON whatever the path, with the time and latency it claims. */
import { after, afterEach, before, beforeEach, describe, it, mock } from 'node:test';
import http from 'node:http';
import assert from 'node:assert/strict';
import { accessLog, flushLogs, log, setLogSink } from '../src/log.ts';
import { captureLogs, eventually, fixture, request } from './helpers/harness.ts';

/** Runs `fn` with the log captured; returns the raw lines it wrote. */
function written(fn: () => void): string[] {
  const chunks: string[] = [];
  const prev = setLogSink((c) => chunks.push(c));
  try { fn(); flushLogs(); } finally { setLogSink(prev); }
  return chunks.join('').split('\n').filter(Boolean);
}

describe('access log', () => {
  const cases: { desc: string; args: Parameters<typeof accessLog>; want: Record<string, unknown> }[] = [
    {
      desc: 'a proxied request',
      args: ['orders', 'GET', '/orders/7', 200, 'http://10.0.0.1:8080', 1.5, undefined],
      want: { route: 'orders', method: 'GET', path: '/orders/7', status: 200, upstream: 'http://10.0.0.1:8080', latency_ms: 1.5 },
    },
    {
      desc: 'no route matched',
      args: ['', 'POST', '/nowhere', 404, '', 0.0004, undefined],
      want: { route: '', method: 'POST', path: '/nowhere', status: 404, upstream: '', latency_ms: 0 },
    },
    {
      desc: 'quotes and backslashes in the path',
      args: ['r', 'GET', '/a"b\\c', 200, '', 2, undefined],
      want: { route: 'r', path: '/a"b\\c', latency_ms: 2 },
    },
    {
      desc: 'a control character in the path',
      args: ['r', 'GET', '/a\u0001b\tc', 200, '', 2, undefined],
      want: { path: '/a\u0001b\tc' },
    },
    {
      desc: 'non-ASCII and a lone surrogate in the path',
      args: ['r', 'GET', '/caf\u00e9/\ud800', 200, '', 2, undefined],
      want: { path: '/caf\u00e9/\ud800' },
    },
    {
      desc: 'a route id that needs escaping',
      args: ['say "hi"', 'GET', '/', 200, '', 2, undefined],
      want: { route: 'say "hi"' },
    },
    {
      desc: 'latency rounded to microseconds',
      args: ['r', 'GET', '/', 200, '', 12.3456789, undefined],
      want: { latency_ms: 12.346 },
    },
    {
      desc: 'latency with leading zeros after the point',
      args: ['r', 'GET', '/', 200, '', 7.005, undefined],
      want: { latency_ms: 7.005 },
    },
    {
      desc: 'the request id, escaped',
      args: ['r', 'GET', '/', 200, '', 1, 'id-"1"'],
      want: { request_id: 'id-"1"' },
    },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const lines = written(() => accessLog(...c.args));
      assert.equal(lines.length, 1);
      const entry = JSON.parse(lines[0]);
      assert.equal(entry.msg, 'access');
      assert.equal(entry.level, 'info');
      for (const [k, v] of Object.entries(c.want)) assert.deepEqual(entry[k], v, k);
      if (c.args[6] === undefined) assert.equal('request_id' in entry, false);
    });
  }
});

describe('log time', () => {
  beforeEach(() => mock.timers.enable({ apis: ['Date'], now: 0 }));
  afterEach(() => mock.timers.reset());

  it('writes the same ISO time as Date#toISOString, within and across seconds', () => {
    const at = [0, 7, 45, 999, 1000, 1001, 1_700_000_000_123, 1_700_000_000_999, 1_700_000_001_000, 1_700_000_061_050];
    const lines = written(() => {
      for (const ms of at) {
        mock.timers.setTime(ms);
        accessLog('r', 'GET', '/', 200, '', 1, undefined);
        log('info', 'x');
      }
    });
    const times = lines.map((l) => JSON.parse(l).time);
    assert.deepEqual(times, at.flatMap((ms) => [new Date(ms).toISOString(), new Date(ms).toISOString()]));
  });
});

describe('access log of real requests', () => {
  const f = fixture((up) => `
routes:
  - { id: plain, uri: /plain, upstream: { nodes: { "127.0.0.1:${up}": 1 } } }
  - id: rewritten
    uri: /old/*
    upstream: { nodes: { "127.0.0.1:${up}": 1 } }
    plugins:
      proxy-rewrite: { uri: /new }
`, { handler: (req, res) => {
    if (req.url === '/plain?slow') { setTimeout(() => { res.end('late'); }, 300); return true; }
    return false;
  } });
  let logs: ReturnType<typeof captureLogs>;
  before(() => { logs = captureLogs(); });
  after(() => logs.restore());
  const accessLines = (path: string) => logs.lines.filter((l) => l.msg === 'access' && l.path === path);

  const cases: { desc: string; path: string; want: Record<string, unknown> }[] = [
    { desc: 'a proxied request, with its upstream', path: '/plain', want: { route: 'plain', method: 'GET', status: 200 } },
    { desc: 'the path the client sent, not the rewritten one', path: '/old/x', want: { route: 'rewritten', method: 'GET', status: 200 } },
    { desc: 'no route', path: '/none', want: { route: '', method: 'GET', status: 404, upstream: '' } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      await request(f.gw.port, c.path);
      const [entry] = await eventually(() => { flushLogs(); const l = accessLines(c.path); return l.length ? l : undefined; });
      for (const [k, v] of Object.entries(c.want)) assert.equal(entry[k], v, k);
      if (c.want.status === 200) assert.equal(entry.upstream, `http://127.0.0.1:${f.up.port}`);
      assert.equal(typeof entry.latency_ms, 'number');
    });
  }

  it('logs 499 when the client leaves before the response', async () => {
    const req = http.request({ host: '127.0.0.1', port: f.gw.port, path: '/plain?slow', agent: false });
    req.on('error', () => {});
    req.end();
    await eventually(() => f.up.seen.some((s) => s.url === '/plain?slow'));
    req.destroy();
    const [entry] = await eventually(() => { flushLogs(); const l = accessLines('/plain'); return l.find((e) => e.status === 499) ? l.filter((e) => e.status === 499) : undefined; });
    assert.equal(entry.route, 'plain');
  });
});

describe('log batching (a worker thread sends its lines to the main thread in batches)', () => {
  const chunks: string[] = [];
  let prev: (chunk: string) => void;
  beforeEach(() => { chunks.length = 0; prev = setLogSink((c) => chunks.push(c), { delayMs: 60_000 }); });
  afterEach(() => { setLogSink(prev); });
  const turn = () => new Promise((r) => setImmediate(r));

  it('access lines of several event-loop turns wait for one chunk', async () => {
    accessLog('r', 'GET', '/a', 200, '', 1, undefined);
    await turn();
    accessLog('r', 'GET', '/b', 200, '', 1, undefined);
    await turn();
    assert.equal(chunks.length, 0);
    flushLogs();
    assert.deepEqual(chunks.map((c) => c.split('\n').filter(Boolean).map((l) => JSON.parse(l).path)), [['/a', '/b']]);
  });

  it('a warning or an error goes out at once, after the lines before it', () => {
    accessLog('r', 'GET', '/a', 200, '', 1, undefined);
    log('error', 'worker failing');
    assert.equal(chunks.length, 1);
    assert.deepEqual(chunks[0].split('\n').filter(Boolean).map((l) => JSON.parse(l).msg), ['access', 'worker failing']);
  });
});
