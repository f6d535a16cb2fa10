/**
 * The host's main thread: it watches gateway.yaml, reads and parses it once
 * per change, hands the parsed config to every worker thread (each compiles
 * its own snapshot and serves on the shared port with reusePort), and commits
 * a reload only when every worker compiled it. It serves the admin listener
 * from the workers' shared counters, and replaces a worker that dies or whose
 * event loop stops beating; the process never exits because of one worker.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { availableParallelism } from 'node:os';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { formatIssue, type ConfigIssue } from '../errors.ts';
import { hashText, readConfigText, readSslFilesFromDisk } from '../config/load.ts';
import { readYaml } from '../config/yaml-read.js';
import { parseListen } from '../config/upstream.ts';
import { describeHealth, describeTls, healthTable, type HealthNode } from '../health/state.ts';
import { adminListen } from '../config/compile.ts';
import { ADMIN_TLS } from '../config/ssls.ts';
import { configHash, sslFilePaths } from '../config/ssl-files.ts';
import { CERT_FILE_CHANGED, FileWatchers } from '../tls/file-watch.ts';
import { certMetrics } from '../tls/status.ts';
import { flushLogs, log, writeLogLines } from '../log.ts';
import { SabSharedState } from '../shared/sab.ts';
import { VERSION } from '../version.ts';
import { adminHandler } from './admin.ts';
import { Folded } from './fold.ts';
import { ConfigRejected, type ConfigSource, type GatewayOptions } from './gateway.ts';
import { Metrics } from './metrics.ts';
import { HostMetrics } from './metrics-host.ts';
import { watchConfig, type Watcher } from './watch.ts';
import { STAT_CONNECTIONS, STAT_HEAP, STAT_PARSES, STATS_ROW, type FromWorker, type Hook, type ToWorker, type WorkerInit, type WorkerTls } from './worker-protocol.ts';

// worker-main.ts here, worker-main.js in the JavaScript build (dist/).
const WORKER_FILE = new URL(`./worker-main.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url);
const MAX_WORKERS = 1024;
/**
 * A worker's young generation: 24 MiB, three 8 MiB semi-spaces. Left to V8 it
 * may reach 192 MiB on a large host; under steady load here it grew to 32 MiB
 * semi-spaces, so a worker held a 164 MiB heap for a 30 MiB live set, and RSS
 * swung by 100 MiB as V8 grew and shrank it. Capped, the heap held 56 MiB and
 * the CPU per request measured the same (README, Workers and shared state).
 */
export const YOUNG_GENERATION_MB = 24;
const mb = (bytes: number) => Math.round(bytes / 104857.6) / 10;

export interface HostOptions extends GatewayOptions {
  /** Worker threads: overrides the file's `workers` (`turnpike start --workers N`). */
  workers?: number;
  /** A worker whose event loop has not beaten for this long is replaced (default 10 s). */
  watchdogMs?: number;
  /** Let tests crash, block or make a worker reject (the `hook` method). */
  testHooks?: boolean;
}

/** `workers: auto | N` as written (auto, or absent: every core). */
export function workerCount(v: unknown): number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 ? Math.min(v, MAX_WORKERS) : availableParallelism();
}

/** What a host-wide reload answers: in force in every worker, unchanged, or rejected everywhere. */
export type HostReload = { ok: true; hash: string; unchanged?: true } | { ok: false; hash: string; issues: ConfigIssue[] };

interface Slot {
  index: number;
  worker: Worker;
  hash: string;
  restarts: number;
  /** Resolves the answer the slot waits for (prepared, drained, started). */
  waiter?: (m: FromWorker | undefined) => void;
  lastBeat: number;
  beatSeenAt: number;
  started: boolean;
  /** Why it died, when it threw. */
  error?: string;
  /** Gone; its replacement is starting. */
  exited?: boolean;
}

/** A running host: the main thread and its workers. Same surface as Gateway where it can be. */
export class Host {
  readonly opts: HostOptions;
  readonly workers: number;
  private readonly shared = new SabSharedState();
  private readonly stats: SharedArrayBuffer;
  private readonly beats: SharedArrayBuffer;
  private readonly rows: Float64Array;
  private readonly totals = new Float64Array(6);
  readonly metrics = new Metrics(this.totals);
  /** The workers' prom-client registries, summed for /metrics. */
  private readonly series = new HostMetrics();
  private slots: Slot[] = [];
  private source!: ConfigSource;
  private hash = '';
  private loadedAt = 0;
  private servingPorts: number[] = [];
  /** Made once: every worker's TLS listeners encrypt session tickets with it, so a session resumes on any worker. */
  private readonly ticketKeys = randomBytes(48);
  /** The certificates in force, as the first worker compiled them. */
  private tls: WorkerTls = { certs: [] };
  private files?: FileWatchers;
  /** YAML parses done by the main thread (one per distinct file content). */
  parses = 0;
  private restarts = 0;
  private lostConnections = 0;
  private lastFailure?: { at: string; message: string; errors: string[] };
  private admin?: http.Server;
  private watcher?: Watcher;
  private watchdog?: NodeJS.Timeout;
  private reloads = new Folded<HostReload>();
  private seq = 0;
  private closing = false;
  /** The checked upstream nodes of the config in force, as the probing worker reports them. */
  private healthNodes: HealthNode[] = [];

  private constructor(opts: HostOptions, workers: number) {
    this.opts = opts;
    this.workers = workers;
    this.stats = new SharedArrayBuffer(workers * STATS_ROW * 8);
    this.beats = new SharedArrayBuffer(workers * 4);
    this.rows = new Float64Array(this.stats);
  }

  /** Reads and parses the file, starts the workers (the first picks the port when it is 0), then the admin listener and the watcher. */
  static async start(opts: HostOptions): Promise<Host> {
    const read = await readConfigText(opts.config);
    if ('issue' in read) throw new ConfigRejected([read.issue]);
    const { source, hash } = await withFiles(parseOnce(read.text, opts), opts);
    const doc = (source.data ?? {}) as { workers?: unknown; admin?: { enabled?: boolean; listen?: string | number } };
    const host = new Host(opts, opts.workers ?? workerCount(doc.workers));
    host.parses = 1;
    host.source = source;
    host.hash = hash;
    host.loadedAt = Date.now();
    try {
      host.slots[0] = await host.spawn(0, undefined);
      await Promise.all(Array.from({ length: host.workers - 1 }, async (_, i) => { host.slots[i + 1] = await host.spawn(i + 1, host.servingPorts); }));
      const a = adminListen(doc as Parameters<typeof adminListen>[0]);
      if (a) {
        const handler = adminHandler({ ready: () => !host.closing, status: () => host.status(), metrics: () => host.renderMetrics() });
        host.admin = a.tls ? https.createServer(host.adminTls(), handler) : http.createServer(handler);
        await new Promise<void>((resolve, reject) => { host.admin!.once('error', reject); host.admin!.listen(a.port, a.host, resolve); });
      }
      if (opts.watch !== false) {
        host.watcher = watchConfig(opts.config, () => { void host.reload('file changed'); }, opts.debounceMs);
        host.files = new FileWatchers(() => { void host.reload(CERT_FILE_CHANGED); }, opts.debounceMs);
        await Promise.all([host.watcher.ready, host.files.sync(sslFilePaths(source.data, opts.config))]);
      }
    } catch (err) {
      await host.close(0).catch(() => {});
      throw err;
    }
    const bound = opts.watchdogMs ?? 10_000;
    host.watchdog = setInterval(() => host.checkBeats(bound), Math.max(50, Math.min(1000, bound / 4)));
    host.watchdog.unref();
    const listen = (doc as { listen?: unknown }).listen;
    const listenHost = Array.isArray(listen) ? String((listen[0] as { host?: string } | undefined)?.host ?? '0.0.0.0') : parseListen((listen as string | number | undefined) ?? 9080, '0.0.0.0').host;
    const adminHost = host.admin ? (host.admin.address() as AddressInfo).address : '';
    log('info', 'turnpike started', { listen: `${listenHost}:${host.port}`, ...(host.servingPorts.length > 1 ? { ports: host.servingPorts } : {}), admin: host.admin ? `${adminHost}:${host.adminPort}` : null, workers: host.workers, hash: host.hash });
    return host;
  }

  get port(): number { return this.servingPorts[0] ?? 0; }
  /** Every listener's port, in `listen` order. */
  get ports(): number[] { return [...this.servingPorts]; }

  /** The admin listener's TLS options: the default certificate entry as the first worker compiled it. */
  private adminTls(): https.ServerOptions {
    return { ...ADMIN_TLS, honorCipherOrder: true, ...(this.tls.adminCert as https.ServerOptions | undefined ?? {}) };
  }

  /** A worker's view of the certificates in force (all workers compile the same). */
  private takeTls(tls: WorkerTls): void {
    this.tls = tls;
    if (this.admin instanceof https.Server) this.admin.setSecureContext(this.adminTls());
  }
  get adminPort(): number | undefined { return this.admin ? (this.admin.address() as AddressInfo).port : undefined; }

  /** Starts worker `index` on the current config; resolves once it listens, rejects (ConfigRejected) if it cannot. */
  private spawn(index: number, ports: number[] | undefined): Promise<Slot> {
    const init: WorkerInit = {
      index, workers: this.workers, config: this.opts.config, env: this.opts.env, ports, ticketKeys: this.ticketKeys, source: this.source,
      shared: this.shared.buffer, stats: this.stats, beats: this.beats, testHooks: this.opts.testHooks === true,
    };
    // Workers inherit the process's flags (--import tsx, --permission…); --input-type (node -e) applies to its entry only and a worker refuses it.
    const execArgv = process.execArgv.some((a) => a.startsWith('--input-type')) ? process.execArgv.filter((a) => !a.startsWith('--input-type')) : undefined;
    const worker = new Worker(WORKER_FILE, {
      workerData: init, env: process.env, execArgv, stdout: false, stderr: false, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    });
    const slot: Slot = { index, worker, hash: '', restarts: 0, lastBeat: -1, beatSeenAt: Date.now(), started: false };
    return new Promise<Slot>((resolve, reject) => {
      slot.waiter = (m) => {
        slot.waiter = undefined;
        if (m?.type === 'started') {
          slot.started = true;
          slot.hash = m.hash;
          if (index === 0 && ports === undefined) { this.servingPorts = m.ports; this.takeTls(m.tls); }
          resolve(slot);
        } else if (m?.type === 'failed') reject(m.issues.length ? new ConfigRejected(m.issues) : new Error(m.message ?? `worker ${index} failed to start`));
        else reject(new Error(`worker ${index} exited while starting${slot.error ? `: ${slot.error}` : ''}`));
      };
      worker.on('message', (m: FromWorker) => this.onMessage(slot, m));
      worker.on('error', (err) => {
        slot.error = err.message;
        if (slot.started) log('error', 'worker crashed', { worker: index, error: err.message });
      });
      worker.on('exit', (code) => this.onExit(slot, code));
    });
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    if (m.type === 'log') { writeLogLines(m.chunk); return; }
    if (m.type === 'committed') {
      slot.hash = m.hash;
      if (slot === this.live()[0]) this.takeTls(m.tls);
      return;
    }
    if (m.type === 'metrics') { this.series.answer(m.seq, m.data); return; }
    if (m.type === 'health-nodes') { this.healthNodes = m.nodes; return; }
    slot.waiter?.(m);
  }

  /** A worker gone for any reason but close(): count what it held, replace it. */
  private onExit(slot: Slot, code: number): void {
    slot.exited = true;
    const waiter = slot.waiter;
    slot.waiter = undefined;
    waiter?.(undefined);
    if (this.closing || !slot.started || this.slots[slot.index] !== slot) return;
    const lost = this.rows[slot.index * STATS_ROW + STAT_CONNECTIONS];
    this.rows[slot.index * STATS_ROW + STAT_CONNECTIONS] = 0;
    this.lostConnections += lost;
    this.restarts++;
    log('error', 'worker exited; replacing it (its connections in flight are lost)', { worker: slot.index, exit_code: code, connections_lost: lost });
    this.respawn(slot, 0);
  }

  private respawn(old: Slot, attempt: number): void {
    if (this.closing) return;
    this.spawn(old.index, this.servingPorts).then((slot) => {
      slot.restarts = old.restarts + 1;
      if (this.closing) { void slot.worker.terminate(); return; }
      this.slots[old.index] = slot;
      // A reload committed while it started: it serves the old config, so start it again on the new one.
      if (slot.hash !== this.hash) { log('info', 'replacement worker started on an older config; starting it again', { worker: old.index }); void slot.worker.terminate(); return; }
      log('info', 'worker replaced', { worker: old.index, hash: slot.hash });
    }, (err) => {
      log('error', 'worker could not be replaced; trying again', { worker: old.index, error: (err as Error).message, attempt });
      setTimeout(() => this.respawn(old, attempt + 1), Math.min(5000, 100 * 2 ** attempt)).unref();
    });
  }

  /** The watchdog: a started worker whose heartbeat has not moved for `bound` ms is terminated (then replaced by onExit). */
  private checkBeats(bound: number): void {
    const beats = new Int32Array(this.beats);
    const now = Date.now();
    for (const slot of this.slots) {
      if (!slot?.started || slot.exited) continue;
      const b = Atomics.load(beats, slot.index);
      if (b !== slot.lastBeat) { slot.lastBeat = b; slot.beatSeenAt = now; continue; }
      if (now - slot.beatSeenAt > bound) {
        log('error', 'worker event loop blocked; terminating it', { worker: slot.index, blocked_ms: now - slot.beatSeenAt });
        slot.beatSeenAt = now;
        void slot.worker.terminate();
      }
    }
  }

  /** The workers serving now (not those being replaced). */
  private live(): Slot[] { return this.slots.filter((s) => !s.exited); }

  /** Sends `m` to every live worker and waits for each one's answer (undefined: it went away meanwhile). */
  private ask(m: ToWorker): Promise<(FromWorker | undefined)[]> {
    return Promise.all(this.live().map((slot) => new Promise<FromWorker | undefined>((resolve) => {
      slot.waiter = resolve;
      slot.worker.postMessage(m);
    })));
  }

  /** Reloads the file in every worker or in none; one at a time, calls during one folded into one more. */
  reload(reason = 'manual'): Promise<HostReload> {
    return this.reloads.run(() => this.doReload(reason));
  }

  private async doReload(reason: string): Promise<HostReload> {
    const started = performance.now();
    const read = await readConfigText(this.opts.config);
    if ('issue' in read) return this.rejected(reason, '', [read.issue], started);
    // The same text is not parsed again: only its certificate files may have changed.
    const sameText = read.text === this.source.text;
    const { source, hash } = await withFiles(sameText ? { text: read.text, data: this.source.data } : parseOnce(read.text, this.opts), this.opts);
    // The files of the config tried too: fixing a rejected certificate file reloads.
    await this.files?.sync(new Set([...sslFilePaths(this.source.data, this.opts.config), ...sslFilePaths(source.data, this.opts.config)]));
    if (hash === this.hash) return { ok: true, hash, unchanged: true };
    if (!sameText) this.parses++;
    const seq = ++this.seq;
    const answers = await this.ask({ type: 'prepare', seq, source });
    const bad = answers.find((a) => a?.type !== 'prepared' || !a.ok);
    if (bad) {
      for (const slot of this.live()) slot.worker.postMessage({ type: 'abort', seq } satisfies ToWorker);
      const issues = bad?.type === 'prepared' ? bad.issues : [{ code: 'GW_ERR_CONFIG_READ' as const, file: this.opts.config, line: 0, col: 0, path: '', message: 'a worker went away while compiling the config' }];
      return this.rejected(reason, hash, issues, started);
    }
    for (const slot of this.live()) slot.worker.postMessage({ type: 'commit', seq } satisfies ToWorker);
    this.source = source;
    this.hash = hash;
    this.loadedAt = Date.now();
    this.metrics.reloadsOk++;
    this.metrics.lastReloadOk = 1;
    const want = workerCount((source.data as { workers?: unknown }).workers);
    if (this.opts.workers === undefined && want !== this.workers) log('warn', 'workers changed: it takes effect on restart', { workers: this.workers, in_file: want });
    log('info', 'config reloaded', { result: 'success', reason, hash, duration_ms: Math.round(performance.now() - started), workers: this.workers });
    return { ok: true, hash };
  }

  private rejected(reason: string, hash: string, issues: ConfigIssue[], started: number): HostReload {
    this.metrics.reloadsFailed++;
    this.metrics.lastReloadOk = 0;
    const errors = issues.map(formatIssue);
    this.lastFailure = { at: new Date().toISOString(), message: errors[0] ?? 'config rejected', errors };
    log('error', 'config rejected, still serving the last good config', { result: 'failure', reason, hash, duration_ms: Math.round(performance.now() - started), serving: this.hash, errors });
    return { ok: false, hash, issues };
  }

  /** Test hook: crash, block or make worker `index` reject the next config (only with `testHooks`). */
  hook(index: number, hook: Hook): void {
    this.slots[index].worker.postMessage({ type: 'hook', hook } satisfies ToWorker);
  }

  private requestsOf(index: number): number {
    let n = 0;
    for (let c = 1; c <= 5; c++) n += this.rows[index * STATS_ROW + c];
    return n;
  }

  /** What the admin /status endpoint shows: the host, and each worker's config hash, request count and heap. */
  status(): Record<string, unknown> {
    return {
      turnpike: VERSION,
      node: process.version,
      config: this.opts.config,
      hash: this.hash,
      loaded_at: new Date(this.loadedAt).toISOString(),
      reloads: { success: this.metrics.reloadsOk, failure: this.metrics.reloadsFailed },
      last_reload_ok: this.metrics.lastReloadOk === 1,
      last_failure: this.lastFailure ?? null,
      // The main thread's, and the workers' own (a worker parses only a file the main thread could not).
      parses: this.parses + this.slots.reduce((n, s) => n + this.rows[s.index * STATS_ROW + STAT_PARSES], 0),
      worker_restarts: this.restarts,
      connections_lost: this.lostConnections,
      upstream_health: describeHealth(healthTable(this.shared), this.healthNodes),
      upstream_tls: describeTls(this.healthNodes),
      certificates: this.tls.certs,
      workers: this.slots.map((s) => ({
        index: s.index, thread_id: s.worker.threadId, hash: s.hash, requests: this.requestsOf(s.index), parses: this.rows[s.index * STATS_ROW + STAT_PARSES], restarts: s.restarts,
        heap: { total_mb: mb(this.rows[s.index * STATS_ROW + STAT_HEAP]), young_generation_limit_mb: s.worker.resourceLimits?.maxYoungGenerationSizeMb },
      })),
    };
  }

  /** /metrics for the whole host: the workers' counters and registries summed, plus worker restarts. */
  async renderMetrics(): Promise<string> {
    const live = this.live().filter((s) => s.started);
    const series = await this.series.render(live.map((s) => s.worker), this.workers);
    this.totals.fill(0);
    for (let i = 0; i < this.workers; i++) for (let c = 1; c <= 5; c++) this.totals[c] += this.rows[i * STATS_ROW + c];
    this.metrics.configHash = this.hash;
    this.metrics.loadedAt = this.loadedAt;
    return this.metrics.render() + certMetrics(this.tls.certs) + [
      '# HELP turnpike_workers Worker threads serving.',
      '# TYPE turnpike_workers gauge',
      `turnpike_workers ${this.workers}`,
      '# HELP turnpike_worker_restarts_total Workers replaced after they died or their event loop blocked.',
      '# TYPE turnpike_worker_restarts_total counter',
      `turnpike_worker_restarts_total ${this.restarts}`,
      '# HELP turnpike_worker_connections_lost_total Client connections open on a worker when it died.',
      '# TYPE turnpike_worker_connections_lost_total counter',
      `turnpike_worker_connections_lost_total ${this.lostConnections}`,
    ].join('\n') + '\n' + series;
  }

  /** Drains every worker (each stops accepting and lets requests in flight finish, up to `graceMs`), then stops. */
  async close(graceMs = 10_000): Promise<void> {
    this.closing = true;
    clearInterval(this.watchdog);
    await this.watcher?.close();
    await this.files?.close();
    await Promise.race([
      this.ask({ type: 'drain', graceMs }),
      new Promise((r) => setTimeout(r, graceMs + 2000).unref()),
    ]);
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    await new Promise<void>((resolve) => (this.admin?.listening ? this.admin.close(() => resolve()) : resolve()));
    this.admin?.closeAllConnections();
    flushLogs();
  }
}

/**
 * Parses the file's text once (variables substituted), for every worker (data
 * undefined: problems, which a worker then places). Here, not on a parse
 * thread: this thread serves no traffic a parse could hold up.
 */
function parseOnce(text: string, opts: HostOptions): ConfigSource {
  const { problems, data } = readYaml(text, opts.env ?? process.env);
  return problems.length ? { text } : { text, data };
}

/** The certificate files a parsed source names, read here once for every worker, and the hash over the text and them. */
async function withFiles(source: ConfigSource, opts: HostOptions): Promise<{ source: ConfigSource; hash: string }> {
  const paths = sslFilePaths(source.data, opts.config);
  if (paths.length === 0) return { source, hash: hashText(source.text) };
  const files = await readSslFilesFromDisk(paths);
  return { source: { ...source, files }, hash: configHash(hashText(source.text), files, paths) };
}
