/** Real sockets for tests: an echo upstream, a gateway on port 0, a raw client. */
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net, { type AddressInfo } from 'node:net';
import { after, before } from 'node:test';
import { Gateway } from '../../src/runtime/gateway.ts';
import { setLogSink } from '../../src/log.ts';

export interface Seen { method: string; url: string; headers: IncomingHttpHeaders; body: string }

export interface Upstream {
  port: number;
  seen: Seen[];
  /** TCP connections accepted so far. */
  connections(): number;
  /** Called when a connection to this upstream closes. */
  onClose?: () => void;
  close(): Promise<void>;
}

/** An upstream that answers with what it received, as JSON, unless `handler` answers. */
export async function startUpstream(handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void | boolean): Promise<Upstream> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      if (handler && handler(req, res, body) !== false) return;
      const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
      res.end(out);
    });
  });
  let connections = 0;
  server.on('connection', (socket) => {
    connections++;
    socket.on('close', () => up.onClose?.());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const up: Upstream = {
    port: (server.address() as AddressInfo).port,
    seen,
    connections: () => connections,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
  return up;
}

export interface TestGateway {
  gw: Gateway;
  file: string;
  dir: string;
  port: number;
  adminPort: number;
  close(): Promise<void>;
}

// Tests read logs through captureLogs(); otherwise they would clutter the runner's output.
if (!process.env.TURNPIKE_TEST_LOGS) setLogSink(() => {});

const HEAD = 'listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n';

/** Writes `yaml` (listeners on port 0 added) to a temp dir and starts a gateway on it. */
export async function startGateway(yaml: string, opts: { env?: Record<string, string | undefined>; files?: Record<string, string>; watch?: boolean } = {}): Promise<TestGateway> {
  const dir = await mkdtemp(path.join(tmpdir(), 'turnpike-test-'));
  const file = path.join(dir, 'gateway.yaml');
  for (const [name, text] of Object.entries(opts.files ?? {})) {
    await writeFile(path.join(dir, name), text);
  }
  await writeFile(file, (/^listen:/m.test(yaml) ? '' : HEAD) + yaml);
  let gw: Gateway;
  try {
    gw = await Gateway.start({ config: file, env: opts.env ?? {}, watch: opts.watch ?? false });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    gw, file, dir, port: gw.port, adminPort: gw.adminPort ?? 0,
    async close() { await gw.close(500); await rm(dir, { recursive: true, force: true }); },
  };
}

export interface Res { status: number; headers: IncomingHttpHeaders; body: string }

/** A plain HTTP request; `headers.host` may be set freely. */
export function request(port: number, pathname: string, opts: { method?: string; headers?: Record<string, string | string[]>; body?: string | Buffer; agent?: http.Agent | false } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: pathname, method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Collects structured log lines while a test runs. */
export function captureLogs(): { lines: Record<string, unknown>[]; restore(): void } {
  const lines: Record<string, unknown>[] = [];
  const prev = setLogSink((chunk) => { for (const l of chunk.split('\n')) if (l) lines.push(JSON.parse(l)); });
  return { lines, restore: () => { setLogSink(prev); } };
}

/**
 * A loopback port that refuses connections. A port freed right after a port-0
 * bind can go to another test file's listener a moment later (files run two at
 * a time), so this one is taken below the kernel's ephemeral range, which
 * neither port-0 binds nor outgoing connections draw from.
 */
export async function refusedPort(): Promise<number> {
  const range = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').catch(() => '49152 65535');
  const low = Math.max(Number(range.trim().split(/\s+/)[0]) || 49152, 2048);
  for (let tries = 0; tries < 100; tries++) {
    const port = 1024 + Math.floor(Math.random() * (low - 1024));
    const s = net.createServer();
    const free = await new Promise<boolean>((r) => { s.once('error', () => r(false)); s.listen(port, '127.0.0.1', () => r(true)); });
    if (free) { await new Promise<void>((r) => s.close(() => r())); return port; }
  }
  throw new Error('no free port below the ephemeral range');
}

/** Polls `fn` until it returns truthy or `ms` pass. */
export async function eventually<T>(fn: () => T | Promise<T>, ms = 3000, step = 20): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, step));
  }
}

/**
 * Registers before/after hooks for the usual pair: an upstream (echo, or
 * `handler`) and a gateway on `yaml(upstreamPort)`. Read `.gw` and `.up` in tests.
 */
export function fixture(
  yaml: (upstreamPort: number) => string,
  opts: { handler?: Parameters<typeof startUpstream>[0]; env?: Record<string, string | undefined>; files?: Record<string, string> } = {},
): { gw: TestGateway; up: Upstream } {
  const f = {} as { gw: TestGateway; up: Upstream };
  before(async () => {
    f.up = await startUpstream(opts.handler);
    f.gw = await startGateway(yaml(f.up.port), { env: opts.env, files: opts.files });
  });
  after(async () => {
    await f.gw?.close();
    await f.up?.close();
  });
  return f;
}

/** Sends `text` as is on a new connection and returns all it gets back until the server closes (or `ms` pass). */
export function rawExchange(port: number, text: string | Buffer, ms = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => s.destroy(), ms);
    s.on('data', (c) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')); });
    s.write(text);
  });
}

/** The status code of the first response in a raw exchange (0 when none came). */
export function rawStatus(text: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return m ? Number(m[1]) : 0;
}
