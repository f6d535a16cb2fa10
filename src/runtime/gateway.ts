/**
 * A running gateway: the proxy and admin listeners, the snapshot in force, and
 * reloads (all or nothing; the last good snapshot keeps serving).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { formatIssue, type ConfigIssue } from '../errors.ts';
import { hashText, loadConfigText, maxConfigBytes, readConfigText, readSslFilesFromDisk, yieldToEventLoop, type LoadResult } from '../config/load.ts';
import { configHash, type FileSet } from '../config/ssl-files.ts';
import { ParseThread } from '../config/parse-thread.ts';
import { flushLogs, log } from '../log.ts';
import { ActiveProbes } from '../health/active.ts';
import { checkedNodes, describeHealth, describeTls, healthTable } from '../health/state.ts';
import { FunctionPools } from '../serverless/pool.ts';
import { SabSharedState } from '../shared/sab.ts';
import type { ServerlessSettings, Snapshot, UpstreamEntry } from '../snapshot.ts';
import { ADMIN_TLS } from '../config/ssls.ts';
import { VERSION } from '../version.ts';
import { adminHandler } from './admin.ts';
import { Folded } from './fold.ts';
import { Metrics } from './metrics.ts';
import { createRegistry, type RegistrySources } from './metrics-registry.ts';
import type { Registry } from 'prom-client';
import { UpstreamPools } from './pools.ts';
import { createConnectHandler, createRequestHandler } from './server.ts';
import { createUpgradeHandler } from './websocket.ts';
import { watchConfig, type Watcher } from './watch.ts';
import { CERT_FILE_CHANGED, FileWatchers } from '../tls/file-watch.ts';
import { Listeners, type EdgeHandlers } from '../tls/listeners.ts';
import { certMetrics, certStatus } from '../tls/status.ts';
import type { WorkerTls } from './worker-protocol.ts';

export interface GatewayOptions {
  /** Path of gateway.yaml. */
  config: string;
  env?: Readonly<Record<string, string | undefined>>;
  /** Reload when the file changes (default true). */
  watch?: boolean;
  /** Quiet period after a change before reloading, in ms. */
  debounceMs?: number;
  /** How often the watcher's safety net compares the file (stat, then the content hash), in ms. */
  pollMs?: number;
  /** How long a user plugin module may take to import (default 10 s). */
  pluginImportTimeoutMs?: number;
  /** The largest config file read, in bytes (default: TURNPIKE_MAX_CONFIG_BYTES from `env`, else 8 MiB). */
  maxConfigBytes?: number;
  /** Set by a worker thread (worker-main.ts): the host's shared state, this worker's counters, how it listens and loads. */
  worker?: WorkerSetup;
}

/** How a gateway runs as one of the host's workers: the main thread loads, watches and serves admin. */
export interface WorkerSetup {
  shared: SabSharedState;
  /** This worker's row of response counters (by status class) in the host's stats buffer. */
  counters: Float64Array;
  /** The ports every worker listens on (reusePort), in listener order: the ones the first worker took; undefined for the first (the file's). */
  ports?: number[];
  /** TLS session ticket keys (48 bytes) every worker shares, so a session resumes on any of them. */
  ticketKeys: Uint8Array;
  /** The first config, parsed once by the main thread. */
  source: ConfigSource;
  /** How many workers the host has: each worker's function pool gets its share of `serverless.threads`. */
  workers: number;
  /** This worker's index (labels its runtime metrics). */
  index?: number;
  /** Called when this worker parses YAML itself (only a file the main thread could not parse: to place its errors). */
  onParse?: () => void;
}

/** Config text and its YAML data, parsed once by the main thread (data undefined: YAML errors, the load parses to place them). */
export interface ConfigSource {
  text: string;
  data?: unknown;
  /** The certificate files `ssls` names, read by the main thread with the text (workers never read files). */
  files?: FileSet;
}

/** Thrown by `start` when the config is not valid: carries every issue. */
export class ConfigRejected extends Error {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(`config rejected:\n${issues.map(formatIssue).join('\n')}`);
    this.issues = issues;
  }
}

/** Reasons the watcher gives (watch.ts). */
const WATCHER_REASONS = new Set(['file changed', 'periodic check', CERT_FILE_CHANGED]);

export type ReloadOutcome = LoadResult | { ok: true; hash: string; unchanged: true };

/** A running gateway; `Gateway.start` loads the config and listens, `close` drains and stops. */
export class Gateway {
  readonly pools: UpstreamPools;
  /** Active health probes: the gateway alone runs them; of a host's workers, the first (index 0), so each node is probed once per host. */
  readonly probes?: ActiveProbes;
  readonly functions = new FunctionPools();
  /** Parses reloaded files off the request thread. */
  private parser = new ParseThread();
  readonly metrics: Metrics;
  /** Prometheus series (prom-client), plugins' included; the same across reloads. */
  readonly registry: Registry;
  /** Outlives reloads: rate-limit counters carry over. */
  readonly shared: SabSharedState;
  /** A config compiled by `prepare`, waiting for `commit` (a worker's half of a host-wide reload). */
  private pending?: { snapshot: Snapshot; warnings: readonly ConfigIssue[] };
  /** The proxy listeners, made once the first config is loaded. */
  listeners!: Listeners;
  private readonly handlers: EdgeHandlers;
  /** Emits `connection` for every listener's accepted sockets (metrics, the host's connection count). */
  readonly connections = new EventEmitter();
  private readonly rt: { snapshot(): Snapshot; pools: UpstreamPools; onRequestDone(status: number): void; httpsPort?: number };
  private readonly ticketKeys: Buffer;
  admin?: http.Server | https.Server;
  private files?: FileWatchers;
  private current!: Snapshot;
  private loadedAt = 0;
  private lastFailure?: { at: string; message: string; errors: string[] };
  /** What the config in force loads with but Turnpike ignores (formatted). */
  private warnings: string[] = [];
  private reloads = new Folded<ReloadOutcome>();
  private upgraded = new Set<import('node:stream').Duplex>();
  private watcher?: Watcher;
  private rejectedHash?: string;

  readonly opts: GatewayOptions;
  private constructor(opts: GatewayOptions) {
    this.opts = opts;
    this.shared = opts.worker?.shared ?? new SabSharedState();
    this.metrics = new Metrics(opts.worker?.counters);
    this.pools = new UpstreamPools(this.shared);
    if (!opts.worker || opts.worker.index === 0) this.probes = new ActiveProbes(this.shared);
    const rt = this.rt = {
      snapshot: () => this.current,
      pools: this.pools,
      onRequestDone: (status: number) => this.metrics.request(status),
    };
    this.ticketKeys = opts.worker ? Buffer.from(opts.worker.ticketKeys) : randomBytes(48);
    const upgrade = createUpgradeHandler(rt);
    this.handlers = {
      request: createRequestHandler(rt),
      // Upgraded sockets leave the server's connection tracking: close() must end them itself.
      upgrade: (req, socket, head) => {
        this.upgraded.add(socket);
        socket.once('close', () => this.upgraded.delete(socket));
        upgrade(req, socket, head);
      },
      connect: createConnectHandler(rt),
      clientError,
    };
    this.registry = createRegistry(this.registrySources());
  }

  private registrySources(): RegistrySources {
    return {
      worker: this.opts.worker?.index, server: this.connections,
      requests: () => this.metrics.total(),
      upstreams: () => healthChecked(this.current),
      healthy: (n) => !this.pools.ejected(n),
      functions: () => this.functions.stats(),
    };
  }

  /** The first proxy listener. */
  get server(): http.Server { return this.listeners.servers[0] as http.Server; }

  /** Loads the config and starts listening; rejects with ConfigRejected when the file is not valid. */
  static async start(opts: GatewayOptions): Promise<Gateway> {
    const gw = new Gateway(opts);
    const res = opts.worker ? await gw.load(opts.worker.source.text, opts.worker.source.data, opts.worker.source.files) : await gw.readAndLoad();
    if (!res.ok) {
      await gw.functions.close();
      throw new ConfigRejected(res.issues);
    }
    const snap = res.snapshot;
    gw.swap(res.snapshot, res.warnings);
    gw.listeners = new Listeners(snap.listeners, gw.handlers, () => gw.current, gw.ticketKeys);
    gw.listeners.apply(snap);
    for (const s of gw.listeners.servers) s.on('connection', (socket: Socket) => gw.connections.emit('connection', socket));
    try {
      await gw.listeners.listen(opts.worker?.ports, !!opts.worker);
      const tlsAt = snap.listeners.findIndex((l) => l.tls);
      if (tlsAt >= 0) gw.rt.httpsPort = gw.listeners.ports()[tlsAt];
      if (snap.admin && !opts.worker) {
        const handler = adminHandler({
          ready: () => gw.server.listening,
          status: () => gw.status(),
          metrics: async () => gw.metrics.render() + certMetrics(certStatus(gw.current.ssls)) + await gw.registry.metrics(),
        });
        gw.admin = snap.admin.tls ? https.createServer(adminTlsOptions(gw.current, gw.ticketKeys), handler) : http.createServer(handler);
        await listen(gw.admin, snap.admin.port, snap.admin.host);
      }
      if (opts.watch !== false && !opts.worker) {
        gw.watcher = watchConfig(opts.config, (why) => { void gw.reload(why); }, opts.debounceMs, opts.pollMs);
        gw.files = new FileWatchers(() => { void gw.reload(CERT_FILE_CHANGED); }, opts.debounceMs, opts.pollMs);
        await Promise.all([gw.watcher.ready, gw.files.sync(snap.sslFiles)]);
      }
    } catch (err) {
      // Nothing may keep the process alive after a failed start (a port in use, say).
      await gw.close(0).catch(() => {});
      throw err;
    }
    const more = snap.listeners.length > 1 || snap.listeners[0].tls ? { listeners: snap.listeners.map((l, i) => `${l.tls ? 'https' : 'http'}://${l.host}:${gw.ports[i]}${l.http2 ? ' (h2)' : ''}`) } : {};
    if (!opts.worker) log('info', 'turnpike started', { listen: `${snap.listen.host}:${gw.port}`, ...more, admin: gw.admin ? `${snap.admin!.host}:${gw.adminPort}` : null, routes: snap.routes.length, hash: snap.hash, ...(gw.warnings.length ? { warnings: gw.warnings } : {}) });
    return gw;
  }

  /** The snapshot in force. */
  snapshot(): Snapshot { return this.current; }

  /** The certificates in force for the host's main thread (worker-protocol.ts). */
  tlsView(): WorkerTls {
    const def = this.current.ssls.defaultEntry?.options;
    return { certs: certStatus(this.current.ssls), adminCert: def && { cert: def.cert, key: def.key }, httpsPort: this.rt.httpsPort };
  }
  get port(): number { return (this.server.address() as AddressInfo).port; }
  /** Every listener's port, in `listen` order. */
  get ports(): number[] { return this.listeners.ports(); }
  get adminPort(): number | undefined { return this.admin ? (this.admin.address() as AddressInfo).port : undefined; }

  /** Loads `text`; `data` is its YAML already parsed by the host's main thread (a worker never parses a valid file again). */
  private load(text: string, data?: unknown, files?: FileSet): Promise<LoadResult> {
    // The first load serves nothing yet: it parses here, and the parse thread
    // (one more V8 heap, ~40 MB while it parses 10,000 routes) starts only at the first reload.
    const w = this.opts.worker;
    const parse = w ? async () => { if (data !== undefined) return { data }; w.onParse?.(); return undefined; } : this.current ? this.parser.parse.bind(this.parser) : undefined;
    const functions = (s: ServerlessSettings) => this.functions.host(w ? { ...s, threads: Math.max(1, Math.ceil(s.threads / w.workers)) } : s);
    const max = this.maxBytes();
    return loadConfigText(text, this.opts.config, {
      env: this.opts.env, functions, pause: yieldToEventLoop, parse, previous: this.current, shared: this.shared, metrics: this.registry,
      // A worker never reads files: the main thread read them with the text.
      files: w ? files ?? new Map() : undefined,
      maxBytes: typeof max === 'number' ? max : undefined, pluginImportTimeoutMs: this.opts.pluginImportTimeoutMs,
    });
  }

  private maxBytes(): number | string {
    return this.opts.maxConfigBytes ?? maxConfigBytes(this.opts.env ?? process.env);
  }

  /** Reads the file (size checked first), or the issue that says why not. */
  private async read(): Promise<{ text: string } | { issue: ConfigIssue }> {
    const max = this.maxBytes();
    if (typeof max === 'string') return { issue: { code: 'GW_ERR_CONFIG_READ', file: this.opts.config, line: 0, col: 0, path: '', message: max } };
    return readConfigText(this.opts.config, max);
  }

  /** A worker's first phase of a host-wide reload: compiles `source` and holds it until `commit` or `abort`. */
  async prepare(source: ConfigSource): Promise<LoadResult> {
    this.pending = undefined;
    const res = await this.load(source.text, source.data, source.files);
    if (res.ok) this.pending = { snapshot: res.snapshot, warnings: res.warnings };
    else void this.functions.retain([this.current.serverless]);
    return res;
  }

  /** Puts the prepared config in force (every worker compiled it). */
  commit(): boolean {
    if (!this.pending) return false;
    this.swap(this.pending.snapshot, this.pending.warnings);
    this.pending = undefined;
    this.metrics.reloadsOk++;
    return true;
  }

  /** Drops the prepared config (some worker could not compile it). */
  abort(): void {
    if (!this.pending) return;
    this.pending = undefined;
    void this.functions.retain([this.current.serverless]);
  }

  /** Reads the file, then loads it; both failures come back as issues. */
  private async readAndLoad(): Promise<LoadResult> {
    const read = await this.read();
    return 'issue' in read ? { ok: false, hash: '', issues: [read.issue], warnings: [] } : this.load(read.text);
  }

  private swap(snap: Snapshot, warnings: readonly ConfigIssue[]): void {
    const prev = this.current;
    this.warnings = warnings.map(formatIssue);
    this.current = snap;
    this.loadedAt = Date.now();
    this.metrics.configHash = snap.hash;
    this.metrics.loadedAt = this.loadedAt;
    this.pools.retain(snap.origins);
    this.probes?.sync(snap);
    this.listeners?.apply(snap);
    if (this.admin instanceof https.Server) this.admin.setSecureContext(adminTlsOptions(snap, this.ticketKeys));
    this.functions.publish(snap.functionIds);
    void this.functions.retain([snap.serverless]);
    if (prev && JSON.stringify(prev.listeners) !== JSON.stringify(snap.listeners)) {
      log('warn', 'listeners changed: they take effect on restart', { listen: snap.listeners });
    }
  }

  /**
   * Reloads the file: one load at a time; calls during a load are folded into
   * one more load after it. A file whose hash is the loaded one is skipped.
   */
  reload(reason = 'manual'): Promise<ReloadOutcome> {
    // A last resort: whatever a reload throws is a rejected reload, never an unhandled rejection.
    return this.reloads.run(() => this.doReload(reason).catch((err: unknown) => this.rejected(reason, '', 0, [{ code: 'GW_ERR_CONFIG_SCHEMA', file: this.opts.config, line: 1, col: 1, path: '', message: `the file could not be loaded: ${(err as Error)?.message ?? err}` }])));
  }

  private async doReload(reason: string): Promise<ReloadOutcome> {
    const started = performance.now();
    const read = await this.read();
    // The text's hash with the current certificate files': a new text differs anyway, the same text differs when a file changed.
    const paths = this.current.sslFiles;
    const hash = 'text' in read ? configHash(hashText(read.text), paths.length ? await readSslFilesFromDisk(paths) : new Map(), paths) : '';
    if (hash === this.current.hash) return { ok: true, hash, unchanged: true };
    // The watcher's event and its periodic check may both see one change: a file already rejected is not rejected twice.
    if (hash && hash === this.rejectedHash && WATCHER_REASONS.has(reason)) return { ok: false, hash, issues: [], warnings: [] };
    const res = 'issue' in read ? { ok: false as const, hash: '', issues: [read.issue], warnings: [] } : await this.load(read.text);
    const ms = Math.round((performance.now() - started) * 10) / 10;
    // Files of the config in force and of the one just tried: fixing a rejected certificate file reloads too.
    await this.files?.sync([...this.current.sslFiles, ...(res.ok ? res.snapshot.sslFiles : res.files ?? [])].filter((p, i, a) => a.indexOf(p) === i));
    if (res.ok) {
      this.swap(res.snapshot, res.warnings);
      this.metrics.reloadsOk++;
      this.metrics.lastReloadOk = 1;
      log('info', 'config reloaded', { result: 'success', reason, hash: res.hash, duration_ms: ms, routes: res.snapshot.routes.length, ...(this.warnings.length ? { warnings: this.warnings } : {}) });
    } else {
      this.rejected(reason, res.hash, ms, res.issues);
    }
    return res;
  }

  /** A reload that failed: the last good config keeps serving, and status, metrics and the log say why. */
  private rejected(reason: string, hash: string, ms: number, issues: ConfigIssue[]): ReloadOutcome {
    const errors = issues.map(formatIssue);
    this.rejectedHash = hash;
    void this.functions.retain([this.current.serverless]);
    this.metrics.reloadsFailed++;
    this.metrics.lastReloadOk = 0;
    this.lastFailure = { at: new Date().toISOString(), message: errors[0] ?? 'config rejected', errors };
    log('error', 'config rejected, still serving the last good config', { result: 'failure', reason, hash, duration_ms: ms, serving: this.current.hash, errors });
    return { ok: false, hash, issues, warnings: [] };
  }

  /** What the admin /status endpoint shows. */
  status(): Record<string, unknown> {
    return {
      turnpike: VERSION,
      node: process.version,
      config: this.current.file,
      hash: this.current.hash,
      loaded_at: new Date(this.loadedAt).toISOString(),
      routes: this.current.routes.length,
      route_ids: this.current.routes.map((r) => r.id),
      warnings: this.warnings,
      reloads: { success: this.metrics.reloadsOk, failure: this.metrics.reloadsFailed },
      last_reload_ok: this.metrics.lastReloadOk === 1,
      last_failure: this.lastFailure ?? null,
      upstream_connections: this.pools.usage(),
      ...this.upstreamStatus(),
      certificates: certStatus(this.current.ssls),
    };
  }

  /** Each checked node's health and why, and each https node's TLS settings. */
  private upstreamStatus(): Record<string, unknown> {
    const nodes = checkedNodes(this.current);
    return { upstream_health: describeHealth(healthTable(this.shared), nodes), upstream_tls: describeTls(nodes) };
  }

  /** Stops accepting, lets requests in flight finish (up to `graceMs`), then closes everything. */
  async close(graceMs = 10_000): Promise<void> {
    await this.watcher?.close();
    this.probes?.stop();
    await this.files?.close();
    await this.listeners?.close(graceMs, () => { for (const s of this.upgraded) s.destroy(); });
    await new Promise<void>((resolve) => (this.admin?.listening ? this.admin.close(() => resolve()) : resolve()));
    this.admin?.closeAllConnections();
    await this.pools.close();
    // Plugins flush what they hold (opentelemetry's spans) once no request is left to add to it.
    await Promise.all([...(this.current?.plugins.values() ?? [])].map((p) => p.close?.().catch((err: unknown) => log('error', 'plugin close failed', { plugin: p.name, error: err }))));
    await this.functions.close();
    await this.parser.close();
    flushLogs();
  }
}

/** The snapshot's upstreams that have health checks (each once). */
function* healthChecked(snap: Snapshot | undefined): Generator<UpstreamEntry> {
  if (!snap) return;
  const seen = new Set<UpstreamEntry>();
  for (const r of snap.routes) {
    const up = r.upstream;
    if ((up?.passive || up?.active) && !seen.has(up)) { seen.add(up); yield up; }
  }
}

/** A request Node could not parse or that timed out before its headers: answered as Node would, then closed. */
function clientError(err: Error & { code?: string }, socket: import('node:stream').Duplex): void {
  if (!socket.writable) { socket.destroy(); return; }
  const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout'
    : err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
  socket.end(`HTTP/1.1 ${status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host }, () => { server.off('error', reject); resolve(); });
  });
}

/** The admin listener's TLS: the default certificate entry, TLSv1.2 and 1.3, the default ciphers. */
export function adminTlsOptions(snap: Snapshot, ticketKeys: Buffer): https.ServerOptions {
  return { ...ADMIN_TLS, honorCipherOrder: true, ticketKeys, ...(snap.ssls.defaultEntry?.options ?? {}) };
}
