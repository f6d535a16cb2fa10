/**
 * The function pool: worker threads that run serverless functions, with a
 * time limit per call, a bounded queue, an empty environment, the permission
 * model, and a realm locked down before any function is compiled (worker.ts,
 * realm.ts). Whatever a function does, the gateway process survives.
 *
 * The watchdog is here, on the main thread, and trusts only main-thread clocks
 * and main-thread bookkeeping: a call past its limit fails; a worker that does
 * not answer a ping within the limit (whatever it is doing: a loop in a timer,
 * microtasks, a getter) or whose memory on or off the heap passes the limit is
 * terminated and replaced, and its calls in flight fail closed.
 *
 * Calls made in one turn of the event loop are sent together, one batch per
 * worker: a message to a thread and its answer cost more than the call itself.
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { createRequire, stripTypeScriptTypes } from 'node:module';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { GatewayError } from '../errors.ts';
import { log } from '../log.ts';
import type { Ctx, FunctionHost, FunctionProgram, FunctionSource, HandlerResult } from '../plugin.ts';
import { RequestData } from '../runtime/context.ts';
import type { ServerlessSettings } from '../snapshot.ts';
import {
  BATCH, CANCEL, CHECK, CHECKED, LIVE, MISSING, PING, PONG, READY, RESULTS, UNCHANGED,
  type CallResult, type FromWorker, type ToWorker, type WireCall, type WireChanges, type WireFn, type WireProgram, type WireResponse, type WorkerInit,
} from './messages.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SES = path.join(path.dirname(createRequire(import.meta.url).resolve('ses')), 'ses.mjs');
/** Node's own type stripping; its one-time "experimental" warning is not the gateway operator's concern. */
function strip(ts: string): string {
  const emit = process.emitWarning;
  process.emitWarning = () => {};
  try {
    return stripTypeScriptTypes(ts);
  } finally {
    process.emitWarning = emit;
  }
}

/** `.ts` in a checkout, `.js` in the built package (dist/). */
const EXT = path.extname(fileURLToPath(import.meta.url));
let workerUrl: URL | undefined;
/**
 * The worker's modules, their types stripped here once and handed over as
 * data: URLs: a worker then reads no file at all (not even its own code), and
 * does not load the TypeScript stripper, which would cost it most of its start.
 */
function workerModule(): URL {
  const urls = new Map<string, string>();
  const load = (file: string): string => {
    let url = urls.get(file);
    if (url) return url;
    const text = readFileSync(path.join(HERE, file), 'utf8');
    const code = (EXT === '.ts' ? strip(text) : text).replace(/from (['"])\.\/([\w-]+\.[jt]s)\1/g, (_, q: string, f: string) => `from '${load(f)}'`);
    url = `data:text/javascript;base64,${Buffer.from(code).toString('base64')}`;
    urls.set(file, url);
    return url;
  };
  return (workerUrl ??= new URL(load(`worker${EXT}`)));
}

/** Grace past a limit, for a loaded machine: a call's, or a worker's answer to a ping. */
const GRACE_MS = 50;
/** How often the watchdog looks, while calls are in flight or a worker owes an answer; and when all is idle. */
const TICK_MS = 10;
const IDLE_TICK_MS = 100;
/** How often each worker is pinged and its memory read. */
const PING_MS = 100;
const MEMORY_MS = 20;
/** How long a call may wait for a ready worker, on top of its own limit (workers are being replaced). */
const START_WAIT_MS = 5000;
/** How long a worker whose call timed out has to answer a ping before it is presumed stuck and replaced. */
const SUSPECT_MS = 150;

function settingsKey(s: ServerlessSettings): string {
  return JSON.stringify([s.threads, s.concurrency, s.maxQueue, s.maxHeapMb, s.maxResultBytes, s.allowFsRead]);
}

/** What one plugin instance runs in one phase, fixed at load. */
class Program implements FunctionProgram {
  readonly wire: WireProgram;
  readonly label: string;
  readonly withBody: boolean;
  /** header_filter, body_filter and log see the response. */
  readonly seesResponse: boolean;
  readonly pool: () => WorkerPool;
  constructor(wire: WireProgram, label: string, withBody: boolean, seesResponse: boolean, pool: () => WorkerPool) {
    this.wire = wire;
    this.label = label;
    this.withBody = withBody;
    this.seesResponse = seesResponse;
    this.pool = pool;
  }
}

/** One call in the pool, from submit to its answer. */
class Job {
  done = false;
  /** Send the program along: the worker answered MISSING. */
  full = false;
  /** The worker running this call, once sent. */
  on: FnWorker | undefined;
  readonly seq: number;
  readonly program: Program;
  readonly ctx: Ctx;
  /** Main-thread clock (performance.now()) past which the call has failed: its limit from when a worker took it. */
  deadline: number;
  readonly resolve: (r: HandlerResult) => void;
  readonly reject: (e: Error) => void;
  constructor(seq: number, program: Program, ctx: Ctx, deadline: number, resolve: (r: HandlerResult) => void, reject: (e: Error) => void) {
    this.seq = seq;
    this.program = program;
    this.ctx = ctx;
    this.deadline = deadline;
    this.resolve = resolve;
    this.reject = reject;
  }
}

/** One worker thread and what the main thread knows of it; nothing here is written by the worker. */
class FnWorker {
  readonly thread: Worker;
  /** Calls sent to it and not answered, by seq. */
  readonly jobs = new Map<number, Job>();
  /** Checks sent to it, by id. */
  readonly checks = new Map<number, { resolve: (p: string[]) => void; reject: (e: Error) => void }>();
  /** Set once it has locked its realm and listens; before that it is not pinged. */
  ready = false;
  ended = false;
  /** When the ping it owes was sent (0: none owed), and when it last answered one. */
  pingAt = 0;
  pongAt = 0;
  pings = 0;
  memoryAt = 0;
  memoryAsked = false;
  /** When a call of its timed out (0: none since its last answer to a ping): it must answer the next ping promptly. */
  suspectAt = 0;
  constructor(thread: Worker) { this.thread = thread; }
  send(m: ToWorker): void { this.thread.postMessage(m); }
  /** Keeps the process up only while the worker owes an answer (a CLI's `validate` waits for its checks). */
  hold(): void {
    if (this.jobs.size || this.checks.size) this.thread.ref();
    else this.thread.unref();
  }
}

let checkIds = 0;

/** One set of worker threads configured by one `serverless:` block, and the calls it carries. */
class WorkerPool {
  /** Ids of functions already checked: an unchanged function is not checked again on reload. */
  readonly checked = new Set<string>();
  private workers: FnWorker[] = [];
  /** Calls not sent yet. */
  private queue: Job[] = [];
  private inFlight = 0;
  private scheduled = false;
  private watch: NodeJS.Timeout | undefined;
  /** When `watch` fires (performance.now()). */
  private watchDue = 0;
  private closed = false;
  private readonly capacity: number;
  private readonly flushNow = () => this.flush();
  private readonly tickNow = () => this.tick();
  private readonly execArgv: string[];
  private readonly init: WorkerInit;

  readonly settings: ServerlessSettings;
  private readonly stats: PoolStats;
  constructor(settings: ServerlessSettings, stats: PoolStats) {
    this.settings = settings;
    this.stats = stats;
    this.capacity = settings.threads * settings.concurrency;
    const allow = settings.allowFsRead.map((p) => path.resolve(p));
    const reads = [SES, ...allow];
    this.execArgv = ['--permission', ...reads.map((r) => `--allow-fs-read=${r}`), '--no-warnings'];
    this.init = { ses: SES, maxResultBytes: settings.maxResultBytes, allowFsRead: allow };
    for (let i = 0; i < settings.threads; i++) this.workers.push(this.start());
    this.tickSoon(IDLE_TICK_MS);
  }

  private start(): FnWorker {
    const thread = new Worker(workerModule(), {
      env: {},
      argv: [],
      execArgv: this.execArgv,
      resourceLimits: { maxOldGenerationSizeMb: this.settings.maxHeapMb },
      workerData: this.init,
    });
    const w = new FnWorker(thread);
    thread.on('message', (m: FromWorker) => this.message(w, m));
    thread.on('error', (err: Error) => this.end(w, mapRunError(err)));
    thread.on('exit', () => this.end(w, new GatewayError('GW_ERR_FUNCTION_FAILED', 'function worker ended during the call')));
    thread.unref();
    return w;
  }

  private message(w: FnWorker, m: FromWorker): void {
    switch (m[0]) {
      case RESULTS: {
        const a = m[1];
        let again: Job[] | undefined;
        for (let i = 0; i < a.length; i += 2) {
          const j = w.jobs.get(a[i] as number);
          if (j === undefined) continue;
          const res = a[i + 1] as CallResult;
          if (res === MISSING && !j.full) {
            // First call of this program on that worker (or a replaced one): send it along, first in line.
            j.full = true;
            this.detach(j);
            (again ??= []).push(j);
          } else {
            this.settle(j, res);
          }
        }
        if (again) { this.queue = again.concat(this.queue); this.schedule(); }
        break;
      }
      case PONG:
        if (m[1] === w.pings) {
          w.pingAt = 0;
          w.pongAt = performance.now();
          if (w.suspectAt) { w.suspectAt = 0; if (this.queue.length) this.schedule(); }
        }
        break;
      case CHECKED: { const c = w.checks.get(m[1]); w.checks.delete(m[1]); w.hold(); c?.resolve(m[2]); break; }
      case READY: w.ready = true; w.pongAt = performance.now(); if (this.queue.length) this.schedule(); break;
    }
  }

  /** A worker ended or was ended: its calls and checks fail closed with `err`; a new one takes its place. */
  private end(w: FnWorker, err: GatewayError): void {
    if (w.ended) return;
    w.ended = true;
    void w.thread.terminate();
    for (const j of [...w.jobs.values()]) this.fail(j, err);
    for (const c of w.checks.values()) c.reject(err);
    w.checks.clear();
    const i = this.workers.indexOf(w);
    if (i >= 0) {
      if (this.closed) this.workers.splice(i, 1);
      else { this.workers[i] = this.start(); this.stats.replaced++; log('warn', 'function worker replaced', { error: err.message }); }
    }
    if (this.queue.length) this.schedule();
  }

  /** Queues a call for the next batch; throws GW_ERR_FUNCTION_BUSY when the queue is full. */
  submit(job: Job): void {
    if (this.inFlight + this.queue.length >= this.capacity + this.settings.maxQueue) {
      throw new GatewayError('GW_ERR_FUNCTION_BUSY', 'function pool is busy: queue is full');
    }
    this.queue.push(job);
    this.schedule();
    this.tickSoon(TICK_MS);
  }

  /** Calls waiting for a worker. */
  get queued(): number { return this.queue.length; }

  /** Compiles functions in one worker; a worker that ends meanwhile fails the check. */
  check(fns: WireFn[]): Promise<string[]> {
    const w = this.workers.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    const id = ++checkIds;
    return new Promise((resolve, reject) => {
      w.checks.set(id, { resolve, reject });
      w.hold();
      w.send([CHECK, id, fns]);
      this.tickSoon(TICK_MS);
    });
  }

  /** Tells every worker which functions are still configured. */
  publish(ids: string[]): void {
    for (const w of this.workers) w.send([LIVE, ids]);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // After the I/O of this turn: every call it made goes in the same batch.
    setImmediate(this.flushNow);
  }

  private flush(): void {
    this.scheduled = false;
    const per = this.settings.concurrency;
    // Only workers that are ready and not suspected of being stuck take calls.
    const usable = this.workers.filter((w) => w.ready && !w.ended && w.suspectAt === 0 && w.jobs.size < per);
    const now = performance.now();
    // One batch per thread, so that slow functions still run in parallel.
    for (const w of usable) {
      if (this.queue.length === 0) break;
      const share = Math.min(per - w.jobs.size, Math.ceil(this.queue.length / usable.length));
      const batch: WireCall[] = [];
      while (batch.length < share && this.queue.length) {
        const j = this.queue.shift()!;
        if (j.done) continue;
        j.on = w;
        j.deadline = now + j.program.wire.timeoutMs + GRACE_MS;
        w.jobs.set(j.seq, j);
        this.inFlight++;
        batch.push(wireCall(j));
      }
      if (batch.length) { w.hold(); this.post(w, batch); }
    }
  }

  private post(w: FnWorker, batch: WireCall[]): void {
    try {
      w.send([BATCH, batch]);
    } catch (err) {
      // One call's ctx could not be cloned: send each alone, so that only it fails.
      for (const c of batch) {
        const j = w.jobs.get(c[0])!;
        try { w.send([BATCH, [c]]); } catch (e) { this.fail(j, mapRunError(isCloneError(e) ? e : err)); }
      }
    }
  }

  /** The call is no longer on its worker. */
  private detach(j: Job): void {
    if (j.on && j.on.jobs.delete(j.seq)) {
      this.inFlight--;
      if (j.on.jobs.size === 0) j.on.hold();
    }
    j.on = undefined;
  }

  private settle(j: Job, res: CallResult): void {
    if (j.done) return;
    this.finish(j);
    try {
      j.resolve(outcome(j, res));
    } catch (err) {
      j.reject(err as Error);
    }
  }

  private fail(j: Job, err: Error): void {
    if (j.done) return;
    this.finish(j);
    j.reject(err);
  }

  private finish(j: Job): void {
    j.done = true;
    this.detach(j);
    if (this.queue.length) this.schedule();
  }

  private tickSoon(ms: number): void {
    if (this.closed) return;
    const due = performance.now() + ms;
    if (this.watch) {
      // A tick due sooner stands: pushed back on every call, it never came while calls kept coming.
      if (this.watchDue <= due) return;
      clearTimeout(this.watch);
    }
    this.watchDue = due;
    this.watch = setTimeout(this.tickNow, ms).unref();
  }

  /**
   * The watchdog: fails calls past their limit, replaces workers that owe a
   * ping past the limit or hold more memory than allowed, and pings the others.
   */
  private tick(): void {
    this.watch = undefined;
    const now = performance.now();
    let busy = this.queue.length > 0;
    for (const j of this.queue) if (!j.done && j.deadline <= now) this.timedOut(j);
    for (const w of [...this.workers]) {
      if (w.ended) continue;
      let limit = this.settings.timeoutMs;
      for (const j of w.jobs.values()) {
        limit = Math.max(limit, j.program.wire.timeoutMs);
        if (j.deadline <= now) this.timedOut(j);
      }
      if (w.jobs.size || w.checks.size) busy = true;
      if (!w.ready) { busy = true; continue; }
      if (w.pingAt !== 0 && (now - w.pingAt > limit + GRACE_MS || (w.suspectAt !== 0 && now - Math.max(w.pingAt, w.suspectAt) > SUSPECT_MS))) {
        this.end(w, new GatewayError('GW_ERR_FUNCTION_TIMEOUT', `function worker did not answer for ${Math.round(now - w.pingAt)} ms and was replaced`));
        continue;
      }
      if (w.pingAt === 0 && now - w.pongAt >= PING_MS) { w.pingAt = now; w.send([PING, ++w.pings]); }
      if (w.pingAt !== 0) busy = true;
      if (!w.memoryAsked && now - w.memoryAt >= MEMORY_MS) this.readMemory(w);
    }
    this.tickSoon(busy ? TICK_MS : IDLE_TICK_MS);
  }

  /** Off-heap memory (ArrayBuffer, Buffer) past max_heap_mb ends the worker; the heap itself is bounded by resourceLimits. */
  private readMemory(w: FnWorker): void {
    w.memoryAsked = true;
    const limit = this.settings.maxHeapMb * 1024 * 1024;
    (w.thread as unknown as { getHeapStatistics(): Promise<{ external_memory: number }> }).getHeapStatistics().then((s) => {
      w.memoryAsked = false;
      w.memoryAt = performance.now();
      if (s.external_memory > limit) {
        this.end(w, new GatewayError('GW_ERR_FUNCTION_FAILED', `function worker held ${Math.round(s.external_memory / 1048576)} MiB outside its heap, over max_heap_mb (${this.settings.maxHeapMb}), and was replaced`));
      }
    }, () => { w.memoryAsked = false; });
  }

  private timedOut(j: Job): void {
    const w = j.on;
    log('error', 'function timed out', { route: j.ctx.route.id, function: j.program.label, error: `did not finish within ${j.program.wire.timeoutMs} ms` });
    this.fail(j, new GatewayError('GW_ERR_FUNCTION_TIMEOUT', `function ${j.program.label} timed out after ${j.program.wire.timeoutMs} ms`));
    // Its timers and fetches end; if it is stuck instead, the ping finds out soon.
    if (w && !w.ended) {
      w.send([CANCEL, j.seq]);
      w.suspectAt ||= performance.now();
      if (w.pingAt === 0) { w.pingAt = w.suspectAt; w.send([PING, ++w.pings]); }
    }
  }

  destroy(): Promise<void> {
    this.closed = true;
    clearTimeout(this.watch);
    const all = this.workers;
    this.workers = [];
    const closed = new GatewayError('GW_ERR_FUNCTION_FAILED', 'function pool closed');
    for (const w of all) {
      w.ended = true;
      for (const j of [...w.jobs.values()]) this.fail(j, closed);
      for (const c of w.checks.values()) c.reject(closed);
    }
    for (const j of this.queue) this.fail(j, closed);
    return Promise.all(all.map((w) => w.thread.terminate())).then(() => {});
  }
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

/**
 * Bytes that own their whole ArrayBuffer. A small Buffer is often a slice of a
 * shared pool, and a clone carries the whole ArrayBuffer: a function would read
 * other requests' bytes through `body.buffer`.
 */
function exact<T extends Uint8Array | string>(b: T): T {
  return typeof b === 'string' || (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) ? b : (new Uint8Array(b) as T);
}

/** A call as it crosses to the worker: see WireCall. */
function wireCall(j: Job): WireCall {
  const { ctx, program: p } = j;
  const req = ctx.request;
  let response: WireResponse | undefined;
  if (p.seesResponse && ctx.response) {
    const r = ctx.response;
    response = { status: r.status, headers: r.headers as WireResponse['headers'] };
    if (p.wire.phase === 'body_filter' && r.body !== undefined) response.body = exact(r.body);
  }
  return [
    j.seq, p.wire.id, req.method, req.path, req instanceof RequestData ? req.currentSearch() : '',
    req.headers, req.client_ip, hasKeys(ctx.vars) ? ctx.vars : undefined,
    ctx.route.id, ctx.route.uri, ctx.service?.id, ctx.consumer?.username,
    response, p.withBody && req.body ? exact(req.body) : undefined, j.full ? p.wire : undefined,
  ];
}

function toBuffer(b: unknown): Buffer | string | undefined {
  if (b === undefined || b === null) return undefined;
  if (typeof b === 'string') return b;
  if (b instanceof Uint8Array) return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return JSON.stringify(b);
}

/** Applies a call's answer to ctx; returns its reply, or throws what the function did wrong. */
function outcome(j: Job, res: CallResult): HandlerResult {
  if (res === UNCHANGED) return undefined;
  const ctx = j.ctx;
  if (res === MISSING) throw new GatewayError('GW_ERR_FUNCTION_FAILED', `function ${j.program.label} could not be loaded in a worker`);
  if (res.logs) for (const line of res.logs) log(line.level, line.msg, { route: ctx.route.id, function: line.fn, source: 'function' });
  if ('reason' in res) {
    log('error', 'function failed', { route: ctx.route.id, function: res.fn, error: res.error.stack ?? res.error.message });
    throw new GatewayError('GW_ERR_FUNCTION_FAILED', `function ${res.fn} ${res.error.message}`);
  }
  return apply(ctx, res, j.program.wire.phase);
}

function apply(ctx: Ctx, res: WireChanges, phase: string): HandlerResult {
  if (phase === 'log') return undefined;
  const req = ctx.request;
  if (res.path !== undefined) req.path = res.path;
  if (res.set) for (const k in res.set) req.headers[k] = res.set[k];
  if (res.del) for (const k of res.del) delete req.headers[k];
  if (res.query) req.query = res.query;
  if (res.vars) ctx.vars = res.vars;
  if (res.response && ctx.response) {
    ctx.response.status = res.response.status;
    ctx.response.headers = res.response.headers;
    const body = toBuffer(res.response.body);
    if (body !== undefined || phase === 'body_filter') ctx.response.body = body;
  }
  if (!res.reply) return undefined;
  const b = res.reply.body;
  return { status: res.reply.status, headers: res.reply.headers, body: b instanceof Uint8Array ? Buffer.from(b.buffer, b.byteOffset, b.byteLength) : (b as string | Record<string, unknown> | undefined) };
}

/**
 * Owns the worker pools; hands each config load a FunctionHost for its
 * `serverless:` settings. Pools whose settings are no longer used are closed by `retain`.
 */
export class FunctionPools {
  private pools = new Map<string, WorkerPool>();
  /** Calls, failures by kind and worker replacements since start (the metrics). */
  private readonly counts: PoolStats = { calls: 0, failures: { timeout: 0, busy: 0, error: 0 }, replaced: 0 };
  private seq = 0;
  private live: string[] | undefined;

  private poolFor(settings: ServerlessSettings): WorkerPool {
    const key = settingsKey(settings);
    let p = this.pools.get(key);
    if (!p) { p = new WorkerPool(settings, this.counts); this.pools.set(key, p); }
    return p;
  }

  /** The FunctionHost a config with these settings uses. */
  host(settings: ServerlessSettings): FunctionHost {
    const pools = this;
    let wp: WorkerPool | undefined;
    const get = () => (wp ??= pools.poolFor(settings));
    return {
      enabled: settings.enabled,
      defaultTimeoutMs: settings.timeoutMs,
      async check(fns: readonly FunctionSource[]): Promise<string[]> {
        if (!settings.enabled) return fns.map((f) => `${f.label}: serverless functions are disabled (serverless.enabled: false)`);
        const p = get();
        const todo = fns.filter((f) => !p.checked.has(f.id));
        if (todo.length === 0) return [];
        try {
          const problems = await p.check(todo.map((f) => ({ id: f.id, label: f.label, source: f.source })));
          if (problems.length === 0) for (const f of todo) p.checked.add(f.id);
          return problems;
        } catch (err) {
          return [`${todo[0].label}: could not be checked: ${(err as Error).message}`];
        }
      },
      prepare(fns, conf, phase, opts) {
        const canReply = phase === 'rewrite' || phase === 'access' || phase === 'before_proxy';
        const id = createHash('sha256').update(JSON.stringify([fns.map((f) => f.id), conf, phase, opts.timeoutMs])).digest('base64url').slice(0, 22);
        const wire: WireProgram = { id, fns: fns.map((f) => ({ id: f.id, label: f.label, source: f.source })), conf, phase, canReply, timeoutMs: opts.timeoutMs };
        const seesResponse = phase === 'header_filter' || phase === 'body_filter' || phase === 'log';
        return new Program(wire, fns[0].label, opts.withBody, seesResponse, get);
      },
      run(program, ctx) {
        return pools.call(program as Program, ctx);
      },
    };
  }

  /** Calls, failures by kind (timeout, busy, error), calls queued now, workers replaced. */
  stats(): PoolStats & { queued: number } {
    let queued = 0;
    for (const p of this.pools.values()) queued += p.queued;
    return { ...this.counts, failures: { ...this.counts.failures }, queued };
  }

  private call(p: Program, ctx: Ctx): Promise<HandlerResult> {
    this.counts.calls++;
    return new Promise<HandlerResult>((resolve, reject) => {
      const failed = (err: Error) => {
        const code = (err as GatewayError).code;
        this.counts.failures[code === 'GW_ERR_FUNCTION_TIMEOUT' ? 'timeout' : code === 'GW_ERR_FUNCTION_BUSY' ? 'busy' : 'error']++;
        reject(err);
      };
      const job = new Job(++this.seq, p, ctx, performance.now() + p.wire.timeoutMs + GRACE_MS + START_WAIT_MS, resolve, failed);
      try {
        p.pool().submit(job);
      } catch (err) {
        failed(mapRunError(err));
      }
    });
  }

  /** Tells workers which functions are still configured; they drop the others. */
  publish(ids: readonly string[]): void {
    this.live = [...ids];
    for (const p of this.pools.values()) p.publish(this.live);
  }

  /** Closes pools whose settings no config uses any more. */
  async retain(settings: readonly ServerlessSettings[]): Promise<void> {
    const keep = new Set(settings.map(settingsKey));
    const drop: WorkerPool[] = [];
    for (const [k, p] of this.pools) if (!keep.has(k)) { this.pools.delete(k); drop.push(p); }
    await Promise.all(drop.map((p) => p.destroy()));
  }

  async close(): Promise<void> {
    await this.retain([]);
  }
}

/** What the pools count for the metrics. */
interface PoolStats { calls: number; failures: { timeout: number; busy: number; error: number }; replaced: number }

/** postMessage refused a value (a function in ctx.vars, say). */
function isCloneError(err: unknown): boolean {
  return (err as Error)?.name === 'DataCloneError' || /could not be cloned|DataCloneError/i.test((err as Error)?.message ?? '');
}

function mapRunError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const msg = (err as Error)?.message ?? String(err);
  if (isCloneError(err)) return new GatewayError('GW_ERR_FUNCTION_FAILED', `request context cannot be sent to a function: ${msg}`);
  if ((err as { code?: string })?.code === 'ERR_WORKER_OUT_OF_MEMORY') return new GatewayError('GW_ERR_FUNCTION_FAILED', 'function worker ran out of memory and was replaced');
  return new GatewayError('GW_ERR_FUNCTION_FAILED', `function worker failed: ${msg}`);
}
