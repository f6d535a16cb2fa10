/**
 * `npm run bench`: every scenario in one run on loopback, each against the
 * same upstream, reported as ratios to a bare undici proxy measured in the
 * same run. Writes bench/RESULTS.md and prints it.
 *
 * BENCH_SECONDS (default 6) × BENCH_ROUNDS (5, median reported), each after
 * BENCH_WARMUP_SECONDS (5) of the same load, BENCH_CONNECTIONS (50),
 * BENCH_SOAK_SECONDS (180: two of V8's heap cycles under load; 0 skips),
 * BENCH_LOAD=autocannon to use autocannon even where wrk is installed.
 *
 * The upstream is nginx when it is installed (bench/nginx.ts: never the
 * bottleneck), the Node upstream otherwise; RESULTS.md says which. Turnpike
 * runs with --workers 1 except in the workers rows.
 * BENCH_ONLY=tls runs only the TLS rows (bench/tls.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchJwt, gatewayYaml, scenarios } from './configs.ts';
import { haveWrk, load, type LoadResult } from './load.ts';
import { findNginx, startNginx } from './nginx.ts';
import { freePort, spawnHelper } from './procs.ts';
import { haveRedis, startRedis } from './redis.ts';
import { counterCost } from './shared-counter.ts';
import { tlsRows, type TlsBench } from './tls.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(HERE);
const TMP = path.join(HERE, '.tmp');
const PROM_JWT = 'turnpike: prometheus, jwt-auth';
const BARE2 = 'bare undici proxy (dispatch API), 2 worker threads (reusePort)';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 5));
const WARM = Number(process.env.BENCH_WARMUP_SECONDS ?? 5);
const CONNS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const SOAK = Number(process.env.BENCH_SOAK_SECONDS ?? 180);
const children = new Set<ChildProcess>();
const LIMIT_LOCAL = 'turnpike: limit-count, policy local (never reached)';
const LIMIT_REDIS = 'turnpike: limit-count, policy redis (never reached; Redis on loopback)';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Turnpike { proc: ChildProcess; port: number; admin: number; file: string; stop(): Promise<void> }

async function get(port: number, p: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`).catch(() => undefined);
  return res ? { status: res.status, body: await res.text() } : { status: 0, body: '' };
}

/** `listen` overrides the scenario's single listener (the TLS rows' list). */
async function startTurnpike(name: string, body: string, workers = 1, listen?: string): Promise<Turnpike> {
  const dir = path.join(TMP, name);
  await mkdir(dir, { recursive: true });
  const [port, admin] = [await freePort(), await freePort()];
  const file = path.join(dir, 'gateway.yaml');
  await writeFile(file, listen ? `${listen}admin:\n  listen: 127.0.0.1:${admin}\n${body}` : gatewayYaml(port, admin, body));
  const proc = spawn(process.execPath, [path.join(ROOT, 'bin', 'turnpike.js'), 'start', '-c', file, '--workers', String(workers)], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.add(proc);
  // A 10,000-route config on a busy machine can take a while: wait for it, but not forever.
  for (let i = 0; (await get(admin, '/readyz')).status !== 200; i++) {
    if (i > 2400 || proc.exitCode !== null) throw new Error(`turnpike (${name}) did not become ready`);
    await sleep(25);
  }
  return {
    proc, port, admin, file,
    stop: async () => { proc.kill('SIGTERM'); await new Promise((r) => proc.once('exit', r)); children.delete(proc); },
  };
}

async function memKb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const s = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
}

interface Row extends LoadResult { name: string; peakRssMb?: number; note?: string; cpuUsPerReq?: number }

/** CPU time (user + system) the process has used, in µs (/proc/PID/stat, clock ticks of 10 ms). */
async function cpuUs(pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
}
const rows: Row[] = [];

/**
 * One measured run, after a warm-up in every round, not only the first: a
 * gateway left idle while the others were measured would spend the start of
 * its run getting back to speed. Turnpike takes longer than the bare proxy to
 * get there: after 2 s of warm-up, one route measured 0.84-0.88 of the bare
 * proxy in the first two rounds and 0.93-0.99 in the next two; hence WARM.
 */
async function measureOnce(name: string, url: string, opts: { headers?: Record<string, string>; pid?: number; round: number }): Promise<Row> {
  return run(name, url, WARM, opts, ` [round ${opts.round}]`);
}

/** A scenario outside the interleaved rounds (reloads), measured once and added to the table. */
async function measure(name: string, url: string, opts: { headers?: Record<string, string>; pid?: number; note?: string } = {}): Promise<Row> {
  const row = await run(name, url, Math.min(2, SECONDS), opts, '');
  row.note = opts.note;
  rows.push(row);
  return row;
}

async function run(name: string, url: string, warm: number, opts: { headers?: Record<string, string>; pid?: number }, label: string): Promise<Row> {
  await load(url, { seconds: warm, connections: CONNS, headers: opts.headers });
  const cpu0 = opts.pid ? await cpuUs(opts.pid) : 0;
  const r = await load(url, { seconds: SECONDS, connections: CONNS, headers: opts.headers });
  const row: Row = { name, ...r };
  if (opts.pid && r.requests > 0) row.cpuUsPerReq = ((await cpuUs(opts.pid)) - cpu0) / r.requests;
  if (opts.pid) row.peakRssMb = (await memKb(opts.pid, 'VmHWM')) / 1024;
  process.stderr.write(`${name}${label}: ${r.rps.toFixed(0)} req/s, p99 ${r.p99.toFixed(2)} ms, errors ${r.errors}\n`);
  return row;
}

async function withTurnpike<T>(name: string, body: string, fn: (t: Turnpike) => Promise<T>): Promise<T> {
  const t = await startTurnpike(name, body);
  try { return await fn(t); } finally { await t.stop(); }
}

/** Rewrites the file every `everyMs` while `fn` runs; returns how many writes were made. */
async function rewriting<T>(t: Turnpike, up: number, everyMs: number, fn: () => Promise<T>): Promise<[T, number]> {
  let n = 0;
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      await sleep(everyMs);
      n++;
      await writeFile(t.file, gatewayYaml(t.port, t.admin, scenarios.many(up, 1000, `p${n}`)));
    }
  })();
  const r = await fn();
  stop = true;
  await loop;
  return [r, n];
}

/** Time from a write to the new config answering, over `writes` writes. */
async function reloadLatency(t: Turnpike, up: number, writes: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 1; i <= writes; i++) {
    const marker = `m${i}`;
    const started = performance.now();
    await writeFile(t.file, gatewayYaml(t.port, t.admin, scenarios.many(up, 1000, marker)));
    for (;;) {
      if ((await get(t.port, '/probe')).body === marker) break;
      if (performance.now() - started > 10_000) throw new Error('reload did not land in 10 s');
      await sleep(2);
    }
    out.push(performance.now() - started);
    await sleep(50);
  }
  return out.sort((a, b) => a - b);
}

/**
 * Flat: the lowest RSS of the last third of the soak is at most 5% + 5 MiB above
 * the lowest of the first or of the middle third, whichever is higher. RSS is a
 * sawtooth as V8 grows its heap and gives pages back (a 180 s run here went
 * 176 → 280 → 186 → 264 MiB under steady load, one cycle about 100 s), so a
 * trough falls in some thirds and not others; a leak shows as troughs that
 * climb above every earlier one. A soak shorter than two cycles proves little:
 * run it for 180 s or more.
 */
function soakRow(samples: number[]): string {
  const third = Math.max(1, Math.floor(samples.length / 3));
  const firstLow = Math.min(...samples.slice(0, third));
  const middleLow = Math.min(...samples.slice(third, 2 * third));
  const lastLow = Math.min(...samples.slice(2 * third));
  const earlier = Math.max(firstLow, middleLow);
  const flat = lastLow <= earlier * 1.05 + 5;
  return `| RSS flat over a ${SOAK}s run (lowest RSS of the last third vs the higher low of the first two thirds) | ${fmt(lastLow)} vs ${fmt(earlier)} MiB (lows by third: ${fmt(firstLow)}, ${fmt(middleLow)}, ${fmt(lastLow)}; from ${fmt(samples[0])}, peak ${fmt(Math.max(...samples))}) | ${flat ? 'yes' : 'no'} |`;
}

/** The redis policy next to the local one: throughput and p99 side by side (no target: a report). */
function limitRow(local: Row, redis: Row | undefined): string {
  if (!redis) return '| limit-count redis vs local | not run: redis-server is not installed | – |';
  return `| limit-count redis vs local: req/s, p99 | ${fmt(redis.rps)} vs ${fmt(local.rps)} req/s (${fmt(redis.rps / local.rps, 2)}), p99 ${fmt(redis.p99, 2)} vs ${fmt(local.p99, 2)} ms | – |`;
}

const fmt = (n: number | undefined, d = 0) => (n === undefined || Number.isNaN(n) ? '–' : n.toFixed(d));

/** The TLS rows' view of this runner. */
function tlsBench(up: number): TlsBench {
  return {
    up, seconds: SECONDS, connections: CONNS, freePort,
    start: (name, listen, body) => startTurnpike(name, body, 1, listen),
  };
}

/** BENCH_ONLY=tls: the TLS rows alone, printed. */
async function tlsOnly(up: number): Promise<void> {
  const tls = await tlsRows(tlsBench(up));
  for (const r of tls) process.stdout.write(`| ${r.name} | ${fmt(r.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${r.errors} |${r.note ? ` ${r.note}` : ''}\n`);
}

async function main(): Promise<void> {
  await rm(TMP, { recursive: true, force: true });
  const nginx = findNginx();
  let up: number;
  if (nginx) {
    up = await freePort();
    await startNginx(nginx, path.join(TMP, 'nginx'), up, children);
  } else ({ port: up } = await spawnHelper('upstream.ts', {}, children));
  const upstreamName = nginx ? `nginx (${nginx}, 1 worker process, return 200)` : 'the Node upstream (bench/upstream.ts; install nginx for a faster one)';
  if (process.env.BENCH_ONLY === 'tls') { await tlsOnly(up); return; }
  const { port: bare, proc: bareProc } = await spawnHelper('undici-proxy.js', { TARGET: `http://127.0.0.1:${up}`, MODE: 'dispatch' }, children);
  // The control for the workers rows: the same proxy on 2 event loops, to tell what a second loop costs on this machine.
  const { port: bare2, proc: bare2Proc } = await spawnHelper('undici-proxy.js', { TARGET: `http://127.0.0.1:${up}`, MODE: 'dispatch', THREADS: '2' }, children);
  const { port: bareRequest, proc: bareRequestProc } = await spawnHelper('undici-proxy.js', { TARGET: `http://127.0.0.1:${up}`, MODE: 'request' }, children);
  process.stderr.write(`load: ${haveWrk() ? 'wrk' : 'autocannon'}, ${CONNS} connections, ${SECONDS}s per scenario, upstream: ${upstreamName}\n`);

  // The throughput scenarios run interleaved, ROUNDS times each, and the median
  // run of each is reported: one run per scenario flipped targets between runs
  // on a 2-core machine; interleaving spreads machine drift over all of them.
  const gateways = await Promise.all([
    startTurnpike('plain', scenarios.plain(up)),
    startTurnpike('fn', scenarios.preFunction(up)),
    startTurnpike('chain', scenarios.chain(up)),
    startTurnpike('many', scenarios.many(up, 10_000)),
    startTurnpike('big', scenarios.big(up)),
    startTurnpike('traffic', scenarios.traffic(up)),
    startTurnpike('plain2', scenarios.plain(up), 2),
    startTurnpike('promjwt', scenarios.prometheusJwt(up)),
    startTurnpike('limit-local', scenarios.limitCount(up)),
  ]);
  const [tPlain, tFn, tChain, tMany, tBig, tTraffic, tPlain2, tPromJwt, tLimitLocal] = gateways;
  const jwt = await benchJwt();
  // The redis policy needs a redis-server: without one its row is left out and RESULTS.md says so.
  const tLimitRedis = haveRedis() ? await startTurnpike('limit-redis', scenarios.limitCount(up, await startRedis(children))) : undefined;
  if (tLimitRedis) gateways.push(tLimitRedis);
  const plan: { name: string; url: string; pid?: number; headers?: Record<string, string> }[] = [
    { name: 'direct to upstream', url: `http://127.0.0.1:${up}/bench` },
    { name: 'bare undici proxy (dispatch API)', url: `http://127.0.0.1:${bare}/bench`, pid: bareProc.pid },
    { name: 'bare undici proxy (request() + pipe), for reference', url: `http://127.0.0.1:${bareRequest}/bench`, pid: bareRequestProc.pid },
    { name: 'turnpike: 1 route, no plugins', url: `http://127.0.0.1:${tPlain.port}/bench`, pid: tPlain.proc.pid },
    { name: 'turnpike: 1 serverless pre-function', url: `http://127.0.0.1:${tFn.port}/bench`, pid: tFn.proc.pid },
    { name: 'turnpike: request-id, key-auth, proxy-rewrite, response-rewrite', url: `http://127.0.0.1:${tChain.port}/bench`, pid: tChain.proc.pid, headers: { apikey: 'bench-key' } },
    { name: 'turnpike: 10,000 routes (last one hit)', url: `http://127.0.0.1:${tMany.port}/svc9999/items/42`, pid: tMany.proc.pid },
    { name: 'bare undici proxy (dispatch API), 64 KiB body', url: `http://127.0.0.1:${bare}/big`, pid: bareProc.pid },
    { name: 'turnpike: 64 KiB body', url: `http://127.0.0.1:${tBig.port}/big`, pid: tBig.proc.pid },
    { name: 'turnpike: cors, limit-count (local, never reached), ip-restriction', url: `http://127.0.0.1:${tTraffic.port}/bench`, pid: tTraffic.proc.pid, headers: { origin: 'https://app.example.com' } },
    { name: 'turnpike: 1 route, no plugins, 2 workers', url: `http://127.0.0.1:${tPlain2.port}/bench`, pid: tPlain2.proc.pid },
    { name: BARE2, url: `http://127.0.0.1:${bare2}/bench`, pid: bare2Proc.pid },
    { name: PROM_JWT, url: `http://127.0.0.1:${tPromJwt.port}/bench`, pid: tPromJwt.proc.pid, headers: { authorization: `Bearer ${jwt}` } },
    { name: LIMIT_LOCAL, url: `http://127.0.0.1:${tLimitLocal.port}/bench`, pid: tLimitLocal.proc.pid },
    ...(tLimitRedis ? [{ name: LIMIT_REDIS, url: `http://127.0.0.1:${tLimitRedis.port}/bench`, pid: tLimitRedis.proc.pid }] : []),
  ];
  const runs = new Map<string, Row[]>(plan.map((p) => [p.name, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const p of plan) runs.get(p.name)!.push(await measureOnce(p.name, p.url, { headers: p.headers, pid: p.pid, round }));
  }
  const med = new Map<string, Row>();
  for (const p of plan) {
    const list = [...runs.get(p.name)!].sort((a, b) => a.rps - b.rps);
    const row = list[Math.floor(list.length / 2)];
    row.note = ROUNDS > 1 ? `median of ${ROUNDS}: ${list.map((r) => fmt(r.rps)).join(', ')}` : undefined;
    const cpus = list.map((r) => r.cpuUsPerReq).filter((c) => c !== undefined).sort((a, b) => a - b);
    if (cpus.length) row.cpuUsPerReq = cpus[Math.floor(cpus.length / 2)];
    rows.push(row);
    med.set(p.name, row);
  }
  // How the kernel spread the 2-worker gateway's connections (requests per worker since it started).
  const st = JSON.parse((await get(tPlain2.admin, '/status')).body || '{}') as { workers?: { requests: number }[] };
  const perWorker = (st.workers ?? []).map((w) => w.requests);
  const spread = perWorker.length ? `${perWorker.map((n) => fmt(n)).join(' / ')} requests (${perWorker.map((n) => fmt((100 * n) / perWorker.reduce((a, b) => a + b, 0), 0)).join(' / ')} %)` : 'no /status';
  for (const g of gateways) await g.stop();
  const direct = med.get(plan[0].name)!;
  const undici = med.get(plan[1].name)!;
  const plain = med.get(plan[3].name)!;
  const fn = med.get(plan[4].name)!;
  const chain = med.get(plan[5].name)!;
  const many = med.get(plan[6].name)!;
  const undiciBig = med.get(plan[7].name)!;
  const two = med.get(plan[10].name)!;
  const counters = [await counterCost(1), await counterCost(2)];
  const { steady, during, writes, lat } = await withTurnpike('reload', scenarios.many(up, 1000), async (t) => {
    const steady = await measure('turnpike: 1,000 routes, no reloads', `http://127.0.0.1:${t.port}/svc999/items/1`, { pid: t.proc.pid });
    const [during, writes] = await rewriting(t, up, 200, () => measure('turnpike: 1,000 routes, rewritten every 200 ms', `http://127.0.0.1:${t.port}/svc999/items/1`, { pid: t.proc.pid }));
    const lat = await reloadLatency(t, up, 50);
    return { steady, during, writes, lat };
  });
  rows.push(...await tlsRows(tlsBench(up)));
  // RSS sampled every second of the soak (see soakRow for what counts as flat).
  let soak: { samples: number[]; row: Row } | undefined;
  if (SOAK > 0) {
    soak = await withTurnpike('soak', scenarios.plain(up), async (t) => {
      await load(`http://127.0.0.1:${t.port}/bench`, { seconds: 3, connections: CONNS });
      const samples = [(await memKb(t.proc.pid!, 'VmRSS')) / 1024];
      const timer = setInterval(() => { void memKb(t.proc.pid!, 'VmRSS').then((kb) => samples.push(kb / 1024)); }, 1000);
      const r = await load(`http://127.0.0.1:${t.port}/bench`, { seconds: SOAK, connections: CONNS });
      clearInterval(timer);
      samples.push((await memKb(t.proc.pid!, 'VmRSS')) / 1024);
      const row: Row = { name: `turnpike: ${SOAK}s soak, 1 route`, ...r, note: `RSS ${fmt(samples[0])} → ${fmt(samples.at(-1))} MiB, peak ${fmt(Math.max(...samples))}` };
      rows.push(row);
      return { samples, row };
    });
  }

  const ratio = (a: Row, b: Row) => a.rps / b.rps;
  // A target compares two scenarios run back to back in each round: the median
  // of the per-round ratios is steadier than the ratio of the two medians,
  // as the machine drifts between rounds.
  /** a's value over b's in each round (the two measured back to back), and their median. */
  const perRound = (a: string, b: string, value: (r: Row) => number) => {
    const [ra, rb] = [runs.get(a)!, runs.get(b)!];
    const list = ra.map((r, i) => value(r) / value(rb[i]));
    return { list, median: [...list].sort((x, y) => x - y)[Math.floor(list.length / 2)] };
  };
  const paired = (a: string, b: string) => {
    const { list, median: value } = perRound(a, b, (r) => r.rps);
    return { value, text: `${fmt(value, 3)}${list.length > 1 ? ` (rounds: ${list.map((x) => fmt(x, 2)).join(', ')})` : ''}` };
  };
  /** The median over rounds of a's CPU per request over b's. */
  const cpuGrowth = (a: string, b: string) => perRound(a, b, (r) => r.cpuUsPerReq ?? NaN).median;
  const target = (label: string, a: string, b: string, min: number) => {
    const r = paired(a, b);
    return `| ${label} | ${r.text} | ${r.value >= min ? 'yes' : 'no'} |`;
  };
  const median = lat[Math.floor(lat.length / 2)];
  const roundRuns = new Set([...runs.values()].flat());
  const errors = [...roundRuns, ...rows.filter((r) => !roundRuns.has(r))].reduce((n, r) => n + r.errors, 0);
  const tool = rows[0].tool;
  const lines = [
    '# Benchmark results',
    '',
    `${new Date().toISOString().slice(0, 10)} · Node ${process.version} · ${os.cpus().length} cores · ${tool} · ${CONNS} connections · upstream: ${upstreamName} · throughput scenarios: ${ROUNDS} interleaved rounds of ${SECONDS}s, each after ${WARM}s of warm-up; the table shows each scenario's median run, the targets the median of the per-round ratios · everything on loopback, one process each`,
    '',
    '| scenario | req/s | p50 ms | p99 ms | errors | peak RSS MiB | CPU µs/req | vs direct | vs bare undici |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.name} | ${fmt(r.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${r.errors} | ${fmt(r.peakRssMb)} | ${fmt(r.cpuUsPerReq, 1)} | ${fmt(ratio(r, direct), 2)} | ${r.name.includes('64 KiB') ? fmt(ratio(r, undiciBig), 2) : fmt(ratio(r, undici), 2)}${r.note ? ` (${r.note})` : ''} |`),
    '',
    '## Targets',
    '',
    '| target | measured | met |',
    '| --- | ---: | :---: |',
    target('1 route, no plugins ≥ 0.90 × bare undici (dispatch API)', plan[3].name, plan[1].name, 0.9),
    target('1 pre-function ≥ 0.80 × no plugins', plan[4].name, plan[3].name, 0.8),
    target('4-plugin chain ≥ 0.80 × no plugins', plan[5].name, plan[3].name, 0.8),
    target('10,000 routes ≥ 0.95 × 1 route', plan[6].name, plan[3].name, 0.95),
    target('cors + limit-count + ip-restriction ≥ 0.85 × no plugins', plan[9].name, plan[3].name, 0.85),
    target('prometheus + jwt-auth ≥ 0.80 × no plugins', PROM_JWT, plan[3].name, 0.8),
    limitRow(med.get(LIMIT_LOCAL)!, med.get(LIMIT_REDIS)),
    // Not a target: CPU per request drifts less than req/s when the machine is shared, so it says the same thing more steadily.
    `| CPU time per request, 1 route vs bare undici (dispatch API) | ${fmt(plain.cpuUsPerReq, 1)} vs ${fmt(undici.cpuUsPerReq, 1)} µs (${plain.cpuUsPerReq !== undefined && undici.cpuUsPerReq ? fmt(undici.cpuUsPerReq / plain.cpuUsPerReq, 2) : '–'} × its throughput per CPU) | – |`,
    `| CPU time per request, 2 workers within 5% of 1 worker (no contention) | ${fmt(two.cpuUsPerReq, 1)} vs ${fmt(plain.cpuUsPerReq, 1)} µs | ${two.cpuUsPerReq !== undefined && plain.cpuUsPerReq !== undefined && two.cpuUsPerReq <= plain.cpuUsPerReq * 1.05 ? 'yes' : 'no'} |`,
    // A second event loop costs CPU on a machine whose cores the load generator and upstream share: the bare proxy pays it too.
    workersRow(cpuGrowth(plan[10].name, plan[3].name), cpuGrowth(BARE2, plan[1].name)),
    `| p99 ≤ 2 × bare undici (${fmt(undici.p99, 2)} ms) | ${fmt(Math.max(plain.p99, fn.p99, chain.p99, many.p99), 2)} ms worst | ${Math.max(plain.p99, fn.p99, chain.p99, many.p99) <= 2 * undici.p99 ? 'yes' : 'no'} |`,
    // Every run counts, not only the median ones the table shows.
    `| zero errors (every run of every round) | ${errors} | ${errors === 0 ? 'yes' : 'no'} |`,
    `| reloads: zero failed requests (${writes} rewrites of 1,000 routes) | ${during.errors} | ${during.errors === 0 ? 'yes' : 'no'} |`,
    `| reloads: p99 during vs without | ${fmt(during.p99, 2)} vs ${fmt(steady.p99, 2)} ms | – |`,
    `| write → new config serving, median < 250 ms (50 writes, 1,000 routes) | median ${fmt(median, 0)} ms, max ${fmt(lat.at(-1), 0)} ms | ${median < 250 ? 'yes' : 'no'} |`,
    soak ? soakRow(soak.samples) : '| RSS over a long run | skipped (BENCH_SOAK_SECONDS=0) | – |',
    '',
    '## Workers and shared state',
    '',
    `Connections spread over the 2-worker gateway by the kernel (reusePort): ${spread}.`,
    '',
    '| shared counter: threads incrementing one key | ns per update | updates/s, all threads | exact total |',
    '| ---: | ---: | ---: | :---: |',
    ...counters.map((c) => `| ${c.workers} | ${c.nsPerOp} | ${fmt(c.opsPerSec)} | ${c.exact ? 'yes' : 'no'} |`),
    '',
    `"vs direct" compares with a request straight to the upstream (no proxy) in the same run; "vs bare undici" with the bare dispatch-API proxy (64 KiB rows with its 64 KiB run). Direct to upstream: ${fmt(direct.rps)} req/s. Reproduce: \`npm run bench\` (wrk if installed: \`apt-get install wrk\`; autocannon otherwise).`,
    '',
  ];
  const text = lines.join('\n');
  await writeFile(path.join(HERE, 'RESULTS.md'), text);
  // Keep the README's Performance section on the latest run.
  const readmePath = path.join(ROOT, 'README.md');
  const readme = await readFile(readmePath, 'utf8');
  const table = text.replace(/^# Benchmark results\n\n/, '').replace(/^## /gm, '#### ');
  await writeFile(readmePath, readme.replace(/<!-- bench:start -->[\s\S]*<!-- bench:end -->/, `<!-- bench:start -->\n${table}\n<!-- bench:end -->`));
  process.stdout.write(text);
}

/**
 * What a second worker adds to Turnpike's CPU per request, against what a
 * second thread adds to the bare proxy's in the same rounds: met when
 * Turnpike's growth is no more than 5 points above the machine's own.
 */
function workersRow(turnpike: number, bare: number): string {
  const pct = (x: number) => `${x >= 1 ? '+' : ''}${fmt((x - 1) * 100, 1)}%`;
  const ok = Number.isFinite(turnpike) && Number.isFinite(bare) && turnpike - bare <= 0.05;
  return `| CPU per request, 2 workers vs 1, at most 5 points above the bare proxy's 2 threads vs 1 (medians of per-round ratios) | Turnpike ${pct(turnpike)}, bare proxy ${pct(bare)} | ${ok ? 'yes' : 'no'} |`;
}

const cleanup = () => { for (const c of children) c.kill('SIGKILL'); };
process.on('exit', cleanup);
process.on('SIGINT', () => { cleanup(); process.exit(130); });
main().then(() => { cleanup(); process.exit(0); }, (err) => { process.stderr.write(`bench failed: ${err.stack ?? err}\n`); cleanup(); process.exit(1); });
