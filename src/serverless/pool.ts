/**
 * The function pool: tinypool worker threads that run serverless functions,
 * with a time limit per call, a bounded queue, an empty environment and the
 * permission model. Whatever a function does, the gateway process survives.
 *
 * Calls made in one turn of the event loop are sent together, one batch per
 * worker: a message to a thread and its answer cost more than the call itself.
 */
import { createHash, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { MessagePort } from 'node:worker_threads';
import { Tinypool } from 'tinypool';
import { GatewayError } from '../errors.ts';
import { log } from '../log.ts';
import type { Ctx, FunctionHost, FunctionProgram, FunctionSource, HandlerResult } from '../plugin.ts';
import { RequestData } from '../runtime/context.ts';
import type { ServerlessSettings } from '../snapshot.ts';
import {
  MISSING, PENDING, UNCHANGED,
  type BatchResult, type CallResult, type CheckResult, type LateResult, type WireCall, type WireChanges, type WireProgram, type WireResponse, type WorkerShared,
} from './messages.ts';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));
const PRELOAD = fileURLToPath(new URL('./preload.js', import.meta.url));
const TINYPOOL_MAIN = createRequire(import.meta.url).resolve('tinypool');
const TINYPOOL_DIR = path.dirname(TINYPOOL_MAIN);
const SLOTS = 256;
/** Grace past a call's limit before a worker is presumed stuck in synchronous code. */
const STUCK_GRACE_MS = 50;
/** How often calls in flight are checked against their deadline. */
const SWEEP_MS = 10;

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
  /** The port of the worker running this call, while it is PENDING there. */
  late: LatePort | undefined;
  readonly seq: number;
  readonly program: Program;
  readonly ctx: Ctx;
  readonly deadline: number;
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

/** A worker's port for calls that outlive their batch; it keeps the process up only while such calls wait. */
class LatePort {
  private jobs = new Set<Job>();
  readonly port: MessagePort;
  constructor(port: MessagePort) {
    this.port = port;
    port.unref();
  }
  add(j: Job): void {
    if (this.jobs.size === 0) this.port.ref();
    this.jobs.add(j);
    j.late = this;
  }
  delete(j: Job): void {
    if (this.jobs.delete(j) && this.jobs.size === 0) this.port.unref();
  }
  /** The calls still waiting, taken out. */
  drain(): Job[] {
    const all = [...this.jobs];
    this.jobs.clear();
    return all;
  }
}

/** One tinypool configured by one `serverless:` block, and the calls it carries. */
class WorkerPool {
  readonly pool: Tinypool;
  private beat: Float64Array;
  private owner: Int32Array;
  /** Ids of functions already checked: an unchanged function is not checked again on reload. */
  readonly checked = new Set<string>();
  /** Calls not sent yet. */
  private queue: Job[] = [];
  /** Calls sent and not answered, by seq. */
  private sent = new Map<number, Job>();
  /** Per worker thread: the port its calls that went async answer on. */
  private late = new Map<number, LatePort>();
  private scheduled = false;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly capacity: number;
  private readonly flushNow = () => this.flush();

  readonly settings: ServerlessSettings;
  constructor(settings: ServerlessSettings, channel: string) {
    this.settings = settings;
    const shared: WorkerShared = { heartbeat: new SharedArrayBuffer(SLOTS * 12), slots: SLOTS, channel, maxResultBytes: settings.maxResultBytes, tinypool: TINYPOOL_MAIN };
    this.beat = new Float64Array(shared.heartbeat, 0, SLOTS);
    this.owner = new Int32Array(shared.heartbeat, SLOTS * 8, SLOTS);
    this.capacity = settings.threads * settings.concurrency;
    const reads = [WORKER, PRELOAD, path.join(TINYPOOL_DIR, '*'), ...settings.allowFsRead.map((p) => path.resolve(p))];
    this.pool = new Tinypool({
      filename: WORKER,
      minThreads: settings.threads,
      maxThreads: settings.threads,
      // Batches, not calls: the call limits are kept here (capacity, queue).
      concurrentTasksPerWorker: settings.concurrency,
      idleTimeout: 2 ** 31 - 1,
      // An idle tinypool worker otherwise blocks in Atomics.wait, which would
      // freeze the timers and I/O of calls that outlived their batch.
      useAtomics: false,
      env: {},
      execArgv: ['--permission', ...reads.map((r) => `--allow-fs-read=${r}`), '--no-warnings', '--import', PRELOAD],
      resourceLimits: { maxOldGenerationSizeMb: settings.maxHeapMb },
      workerData: shared,
    });
    // A worker that dies (heap blown, replaced) is reported here; tinypool replaces it.
    this.pool.on('error', (err: Error) => log('warn', 'function worker ended', { error: err.message }));
  }

  /** Queues a call for the next batch; throws GW_ERR_FUNCTION_BUSY when the queue is full. */
  submit(job: Job): void {
    if (this.sent.size + this.queue.length >= this.capacity + this.settings.maxQueue) {
      throw new GatewayError('GW_ERR_FUNCTION_BUSY', 'function pool is busy: queue is full');
    }
    this.queue.push(job);
    this.schedule();
    this.sweeper ??= setInterval(() => this.sweep(), SWEEP_MS).unref();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // After the I/O of this turn: every call it made goes in the same batch.
    setImmediate(this.flushNow);
  }

  private flush(): void {
    this.scheduled = false;
    const free = this.capacity - this.sent.size;
    if (free <= 0 || this.queue.length === 0) return;
    const jobs = this.queue.length <= free ? this.queue : this.queue.slice(0, free);
    this.queue = jobs === this.queue ? [] : this.queue.slice(free);
    const live = jobs.filter((j) => !j.done);
    // One batch per thread, so that slow functions still run in parallel.
    const n = Math.min(this.settings.threads, live.length);
    const size = Math.ceil(live.length / n);
    for (let i = 0; i < live.length; i += size) this.send(live.slice(i, i + size));
  }

  private send(batch: Job[]): void {
    for (const j of batch) this.sent.set(j.seq, j);
    this.pool.run(batch.map(wireCall)).then(
      (r: BatchResult) => this.answered(batch, r),
      (err: unknown) => this.batchFailed(batch, err),
    );
  }

  private answered(batch: Job[], r: BatchResult): void {
    if (r.port) this.adopt(r.thread, r.port);
    let again: Job[] | undefined;
    for (let i = 0; i < batch.length; i++) {
      const res = r.results[i];
      const j = batch[i];
      if (res === PENDING) {
        if (!j.done) this.late.get(r.thread)?.add(j);
      } else if (res === MISSING && !j.full && !j.done) {
        // First call of this program on that worker (or a replaced one): send it along, first in line.
        j.full = true;
        this.sent.delete(j.seq);
        (again ??= []).push(j);
      } else {
        this.settle(j, res);
      }
    }
    if (again) {
      this.queue = again.concat(this.queue);
      this.schedule();
    }
  }

  private batchFailed(batch: Job[], err: unknown): void {
    if (isCloneError(err) && batch.length > 1) {
      // One call's ctx could not be cloned: send each alone, so that only it fails.
      for (const j of batch) if (!j.done) this.send([j]);
      return;
    }
    const e = mapRunError(err);
    for (const j of batch) this.fail(j, e);
  }

  /** Takes a worker's port for calls that outlive their batch; it closes when the worker ends. */
  private adopt(thread: number, port: MessagePort): void {
    const late = new LatePort(port);
    this.late.set(thread, late);
    port.on('message', ([seq, res]: LateResult) => {
      const j = this.sent.get(seq);
      if (j) this.settle(j, res);
    });
    port.on('close', () => {
      this.late.delete(thread);
      for (const j of late.drain()) this.fail(j, new GatewayError('GW_ERR_FUNCTION_FAILED', 'function worker ended during the call'));
    });
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
    this.sent.delete(j.seq);
    j.late?.delete(j);
    if (this.queue.length) this.schedule();
  }

  /** One interval for every call in flight, instead of a timer per call. */
  private sweep(): void {
    const now = Date.now();
    for (const list of [this.sent.values(), this.queue]) {
      for (const j of list) {
        if (j.deadline > now || j.done) continue;
        const ms = j.program.wire.timeoutMs;
        this.replaceStuck(ms);
        this.fail(j, new GatewayError('GW_ERR_FUNCTION_TIMEOUT', `function ${j.program.label} timed out after ${ms} ms`));
      }
    }
    if (this.sent.size === 0 && this.queue.length === 0) { clearInterval(this.sweeper); this.sweeper = undefined; }
  }

  /** Replaces every worker stuck in synchronous code for longer than `ms`. */
  replaceStuck(ms: number): number {
    const now = Date.now();
    let n = 0;
    for (let i = 0; i < SLOTS; i++) {
      const since = this.beat[i];
      if (since === 0 || now - since < ms) continue;
      const tid = Atomics.load(this.owner, i);
      this.beat[i] = 0;
      for (const w of this.pool.threads) {
        if ((w as unknown as { threadId: number }).threadId === tid) {
          // Going through tinypool's own error path drops the worker, fails its
          // batches and starts a replacement (a bare terminate() would leave them pending).
          (w as unknown as { emit(e: string, err: Error): void }).emit('error', new GatewayError('GW_ERR_FUNCTION_TIMEOUT', `worker ${tid} was stuck in a function for over ${ms} ms and was replaced`));
          n++;
        }
      }
    }
    return n;
  }

  destroy(): Promise<void> {
    clearInterval(this.sweeper);
    return this.pool.destroy().catch(() => {});
  }
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

/** A call as it crosses to the worker: see WireCall. */
function wireCall(j: Job): WireCall {
  const { ctx, program: p } = j;
  const req = ctx.request;
  let response: WireResponse | undefined;
  if (p.seesResponse && ctx.response) {
    const r = ctx.response;
    response = { status: r.status, headers: r.headers as WireResponse['headers'] };
    if (p.wire.phase === 'body_filter' && r.body !== undefined) response.body = r.body;
  }
  return [
    j.seq, p.wire.id, req.method, req.path, req instanceof RequestData ? req.currentSearch() : '',
    req.headers, req.client_ip, hasKeys(ctx.vars) ? ctx.vars : undefined,
    ctx.route.id, ctx.route.uri, ctx.service?.id, ctx.consumer?.username,
    response, p.withBody ? req.body : undefined, j.full ? p.wire : undefined,
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
    log('error', `function ${res.reason === 'timeout' ? 'timed out' : 'failed'}`, { route: ctx.route.id, function: res.fn, error: res.error.stack ?? res.error.message });
    if (res.reason === 'timeout') throw new GatewayError('GW_ERR_FUNCTION_TIMEOUT', `function ${res.fn} timed out`);
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
  // Per instance: two gateways in one process (tests) must not evict each other's functions.
  private channel = `turnpike-functions-${randomUUID()}`;
  private live = new BroadcastChannel(this.channel);
  private seq = 0;

  constructor() {
    (this.live as unknown as { unref?: () => void }).unref?.();
  }

  private poolFor(settings: ServerlessSettings): WorkerPool {
    const key = settingsKey(settings);
    let p = this.pools.get(key);
    if (!p) { p = new WorkerPool(settings, this.channel); this.pools.set(key, p); }
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
        const timer = setTimeout(() => p.replaceStuck(settings.timeoutMs), settings.timeoutMs + STUCK_GRACE_MS);
        try {
          const res = (await p.pool.run({ kind: 'check', fns: todo.map((f) => ({ id: f.id, label: f.label, source: f.source })), timeoutMs: settings.timeoutMs })) as CheckResult;
          if (res.problems.length === 0) for (const f of todo) p.checked.add(f.id);
          return res.problems;
        } catch (err) {
          return [`${todo[0].label}: could not be checked: ${(err as Error).message}`];
        } finally {
          clearTimeout(timer);
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

  private call(p: Program, ctx: Ctx): Promise<HandlerResult> {
    return new Promise<HandlerResult>((resolve, reject) => {
      const job = new Job(++this.seq, p, ctx, Date.now() + p.wire.timeoutMs + STUCK_GRACE_MS, resolve, reject);
      try {
        p.pool().submit(job);
      } catch (err) {
        reject(mapRunError(err));
      }
    });
  }

  /** Tells workers which functions are still configured; they drop the others. */
  publish(ids: readonly string[]): void {
    this.live.postMessage(ids);
  }

  /** Closes pools whose settings no config uses any more. */
  async retain(settings: readonly ServerlessSettings[]): Promise<void> {
    const keep = new Set(settings.map(settingsKey));
    const drop: WorkerPool[] = [];
    for (const [k, p] of this.pools) if (!keep.has(k)) { this.pools.delete(k); drop.push(p); }
    await Promise.all(drop.map((p) => p.destroy()));
  }

  async close(): Promise<void> {
    this.live.close();
    await this.retain([]);
  }
}

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
