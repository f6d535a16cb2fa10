/** Load generation: wrk when installed, autocannon otherwise (a devDependency, so a fresh machine has it). */
import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

export interface LoadResult { rps: number; p50: number; p99: number; errors: number; requests: number; tool: string }

export function haveWrk(): boolean {
  if (process.env.BENCH_LOAD === 'autocannon') return false;
  try { execFileSync('wrk', ['--version'], { stdio: 'ignore' }); return true; } catch (e) { return (e as { status?: number }).status === 1; }
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${out}`))));
  });
}

const ms = (v: string, unit: string) => Number(v) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : 1);

/** Runs `seconds` of load with `connections` against `url`. */
export async function load(url: string, opts: { seconds: number; connections: number; headers?: Record<string, string> }): Promise<LoadResult> {
  const hdr = Object.entries(opts.headers ?? {});
  if (haveWrk()) {
    const out = await run('wrk', ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--latency', ...hdr.flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url]);
    const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? 0);
    const lat = (p: string) => { const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out); return m ? ms(m[1], m[2]) : NaN; };
    const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const errors = num(/Non-2xx or 3xx responses: (\d+)/) + (sock ? sock.slice(1).reduce((s, x) => s + Number(x), 0) : 0);
    return { rps: num(/Requests\/sec:\s+([\d.]+)/), p50: lat('50'), p99: lat('99'), errors, requests: num(/(\d+) requests in/), tool: 'wrk' };
  }
  const bin = path.join(path.dirname(createRequire(import.meta.url).resolve('autocannon/package.json')), 'autocannon.js');
  const out = await run(process.execPath, [bin, '-j', '-c', String(opts.connections), '-d', String(opts.seconds), ...hdr.flatMap(([k, v]) => ['-H', `${k}=${v}`]), url]);
  const j = JSON.parse(out.slice(out.indexOf('{')));
  return { rps: j.requests.average, p50: j.latency.p50, p99: j.latency.p99, errors: j.errors + j.non2xx + j.timeouts, requests: j.requests.total, tool: 'autocannon' };
}
