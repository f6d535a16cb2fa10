/**
 * The TLS rows of `npm run bench`: one gateway with a plain and a TLS + HTTP/2
 * listener, measured over plain HTTP, HTTPS/1.1 (wrk or autocannon) and h2
 * (h2load, skipped with a note when nghttp2-client is missing), each reported
 * against the plain row of the same run; then the rate of new TLS connections
 * (h2load: one request per connection). The certificate is made at run time.
 * `BENCH_ONLY=tls npm run bench` runs only these rows.
 */
import { execFileSync, spawn } from 'node:child_process';
import { TestCA } from '../test/helpers/certs.ts';
import { load, type LoadResult } from './load.ts';

export interface TlsRow extends LoadResult { name: string; note?: string }

/** What the bench needs to start a gateway (run.ts's startTurnpike) and to measure. */
export interface TlsBench {
  up: number;
  seconds: number;
  connections: number;
  /** Starts turnpike with `listen` (a list, YAML) and `body` (the resources). */
  start(name: string, listen: string, body: string): Promise<{ stop(): Promise<void> }>;
  freePort(): Promise<number>;
}

function haveH2load(): boolean {
  try { execFileSync('h2load', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

/** One h2load run: requests per second, failures. */
function h2load(args: string[]): Promise<{ rps: number; errors: number; requests: number; p50: number; p99: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('h2load', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('close', () => {
      const m = /finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(out);
      const r = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
      if (!m || !r) { reject(new Error(`h2load: ${out.slice(-400)}`)); return; }
      const t = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(out);
      const ms = (v: string, u: string) => Number(v) * (u === 'us' ? 0.001 : u === 's' ? 1000 : 1);
      // h2load gives no percentiles: the p50 column carries its mean, the p99 column its max.
      resolve({ rps: Number(m[1]), requests: Number(r[3]), errors: Number(r[4]) + Number(r[5]), p50: t ? ms(t[5], t[6]) : NaN, p99: t ? ms(t[3], t[4]) : NaN, out });
    });
  });
}

/**
 * BENCH_TLS_DUAL=1: an extra entry picked by SNI with RSA and ECDSA pairs, so
 * every handshake pays the ClientHello read (listeners.ts) the rows measure.
 */
function dualEntry(ca: TestCA): string {
  if (process.env.BENCH_TLS_DUAL !== '1') return '';
  const rsa = ca.leaf({ names: ['dual.test'] });
  const ec = ca.leaf({ names: ['dual.test'], kind: 'ec' });
  return `  - { id: dual, snis: [dual.test], files: [{ cert_file: ${rsa.certFile}, key_file: ${rsa.keyFile} }, { cert_file: ${ec.certFile}, key_file: ${ec.keyFile} }] }\n`;
}

/** The TLS rows; the plain row of the same gateway first. */
export async function tlsRows(b: TlsBench): Promise<TlsRow[]> {
  const ca = new TestCA('Turnpike Bench CA');
  const rows: TlsRow[] = [];
  // wrk does not check certificates; autocannon (Node) does: trust the bench CA in its process.
  process.env.NODE_EXTRA_CA_CERTS = ca.certFile;
  try {
    const leaf = ca.leaf({ names: ['127.0.0.1', 'bench.test'], kind: 'ec' });
    const ports = [await b.freePort(), await b.freePort()];
    const t = await b.start('tls',
      `listen:\n  - { host: 127.0.0.1, port: ${ports[0]} }\n  - { host: 127.0.0.1, port: ${ports[1]}, tls: true, http2: true }\n`,
      `ssls:\n  - { id: bench, snis: [bench.test], default: true, cert_file: ${leaf.certFile}, key_file: ${leaf.keyFile} }\n${dualEntry(ca)}routes:\n  - { id: r, uri: /bench, upstream: { nodes: { "127.0.0.1:${b.up}": 1 } } }\n`);
    try {
      const plain: TlsRow = { name: 'turnpike: TLS gateway, plain HTTP listener', ...(await load(`http://127.0.0.1:${ports[0]}/bench`, { seconds: b.seconds, connections: b.connections })) };
      rows.push(plain);
      const h1: TlsRow = { name: 'turnpike: TLS HTTP/1.1', ...(await load(`https://127.0.0.1:${ports[1]}/bench`, { seconds: b.seconds, connections: b.connections })) };
      h1.note = `${(h1.rps / plain.rps).toFixed(2)} × plain HTTP of the same gateway`;
      rows.push(h1);
      if (!haveH2load()) {
        rows.push({ name: 'turnpike: TLS HTTP/2 (h2load)', rps: NaN, p50: NaN, p99: NaN, errors: 0, requests: 0, tool: 'h2load', note: 'skipped: h2load not installed (apt-get install nghttp2-client)' });
        return rows;
      }
      const url = `https://127.0.0.1:${ports[1]}/bench`;
      const h2 = await h2load(['-D', String(b.seconds), '-c', String(b.connections), '-m', '10', url]);
      rows.push({ name: 'turnpike: TLS HTTP/2 (h2load)', rps: h2.rps, p50: h2.p50, p99: h2.p99, errors: h2.errors, requests: h2.requests, tool: 'h2load', note: `${b.connections} connections × 10 streams; ${(h2.rps / plain.rps).toFixed(2)} × plain HTTP of the same gateway` });
      // New connections: each client makes one request, so every request pays a full handshake.
      const n = 500;
      const hs = await h2load(['-n', String(n), '-c', String(n), url]);
      rows.push({ name: 'turnpike: new TLS connections (h2load, 1 request each)', rps: hs.rps, p50: hs.p50, p99: hs.p99, errors: hs.errors, requests: hs.requests, tool: 'h2load', note: `${hs.rps.toFixed(0)} handshakes/s (${n} connections, TLSv1.3, ECDSA P-256)` });
    } finally {
      await t.stop();
    }
  } finally {
    delete process.env.NODE_EXTRA_CA_CERTS;
    ca.close();
  }
  return rows;
}
