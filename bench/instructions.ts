/**
 * Instructions per request, counted by valgrind's callgrind: the bare undici
 * proxy against Turnpike with one route and no plugins. Throughput on a shared
 * 2-core machine drifts by ±10% between runs; an instruction count does not,
 * so this is the steady way to see what a change to the request path costs.
 *
 *   node --import tsx bench/instructions.ts      (needs valgrind; about 3 minutes)
 *
 * Each proxy runs under callgrind (both at once: counts do not depend on
 * timing). A keep-alive client sends WARM requests, the counters are zeroed,
 * then N more are counted. User-space instructions only, all threads of the
 * process; system calls are the same for both (checked with strace -c).
 * Not for the function pool: under valgrind its threads run one at a time,
 * which breaks up the batches it would make under real load.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gatewayYaml, scenarios } from './configs.ts';
import { freePort, helperArgs, spawnHelper } from './procs.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(HERE);
const WARM = Number(process.env.WARM ?? 20_000);
const N = Number(process.env.N ?? 10_000);
const CONC = 20;
/** Which one-route scenario Turnpike runs (`plain`, `traffic` for cors + limit-count + ip-restriction, `prometheus`). */
const SCENARIO = (process.env.SCENARIO ?? 'plain') as 'plain' | 'traffic' | 'prometheus';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children = new Set<ChildProcess>();

/** `n` GET /bench over CONC keep-alive connections; throws on any non-200. */
async function requests(port: number, n: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONC });
  let sent = 0;
  const one = (): Promise<void> => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/bench', agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    }).on('error', reject);
  });
  const worker = async () => { while (sent < n) { sent++; await one(); } };
  try { await Promise.all(Array.from({ length: CONC }, worker)); } finally { agent.destroy(); }
}

async function up(port: number): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    const ok = await new Promise<boolean>((r) => http.get({ host: '127.0.0.1', port, path: '/bench', agent: false }, (res) => { res.resume(); r(res.statusCode === 200); }).on('error', () => r(false)));
    if (ok) return;
    await sleep(250);
  }
  throw new Error(`nothing answered on port ${port}`);
}

/** Runs `args` under callgrind, loads it, and returns instructions per counted request. */
async function count(name: string, dir: string, port: number, args: string[], env: Record<string, string> = {}): Promise<number> {
  const out = path.join(dir, `${name}.%p`);
  const proc = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: 'ignore' });
  children.add(proc);
  await up(port);
  await requests(port, WARM);
  execFileSync('callgrind_control', ['-z', String(proc.pid)], { stdio: 'ignore' });
  await requests(port, N);
  execFileSync('callgrind_control', ['-d', String(proc.pid)], { stdio: 'ignore' });
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  children.delete(proc);
  // The dump on demand is part 1; the one at exit holds only the shutdown.
  const file = (await readdir(dir)).find((f) => f.startsWith(`${name}.`) && f.endsWith('.1'));
  const text = await readFile(path.join(dir, file!), 'utf8');
  return Number(/^summary:\s+(\d+)/m.exec(text)![1]) / N;
}

async function main(): Promise<void> {
  try { execFileSync('valgrind', ['--version'], { stdio: 'ignore' }); } catch { throw new Error('valgrind is not installed (apt-get install valgrind)'); }
  const dir = await mkdtemp(path.join(tmpdir(), 'turnpike-instr-'));
  const { port: upPort } = await spawnHelper('upstream.ts', {}, children);
  const [barePort, gwPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const file = path.join(dir, 'gateway.yaml');
  await writeFile(file, gatewayYaml(gwPort, adminPort, scenarios[SCENARIO](upPort)));
  process.stderr.write(`counting ${N} requests after ${WARM} of warm-up, under callgrind…\n`);
  const [bare, turnpike] = await Promise.all([
    count('bare', dir, barePort, helperArgs('undici-proxy.js'), { TARGET: `http://127.0.0.1:${upPort}`, PORT: String(barePort) }),
    // One worker, as the bare proxy has one event loop (and as npm run bench runs it): with `workers: auto`
    // each isolate warms its own JIT, and valgrind runs the threads one at a time.
    count('turnpike', dir, gwPort, [path.join(ROOT, 'bin', 'turnpike.js'), 'start', '-c', file, '--no-watch', '--workers', '1']),
  ]);
  await rm(dir, { recursive: true, force: true });
  const k = (n: number) => `${(n / 1000).toFixed(1)}k`;
  process.stdout.write(`bare undici proxy: ${k(bare)} instructions/request\nturnpike, 1 route, ${SCENARIO === 'plain' ? 'no plugins' : SCENARIO}: ${k(turnpike)} instructions/request (${((turnpike / bare - 1) * 100).toFixed(1)}% more)\n`);
}

main().catch((err) => { process.stderr.write(`${err.stack ?? err}\n`); process.exitCode = 1; }).finally(() => { for (const c of children) c.kill('SIGKILL'); });
