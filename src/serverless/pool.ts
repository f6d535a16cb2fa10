/**
 * The function pool: tinypool worker threads that run serverless functions,
 * with a time limit per call, a bounded queue, an empty environment and the
 * permission model. Whatever a function does, the gateway process survives.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Tinypool } from 'tinypool';
import { GatewayError } from '../errors.ts';
import { log } from '../log.ts';
import type { Ctx, FunctionHost, FunctionSource, HandlerResult, Phase } from '../plugin.ts';
import type { ServerlessSettings } from '../snapshot.ts';
import type { CallResult, CallTask, CheckResult, WireCtx, WireFn, WorkerShared } from './messages.ts';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));
const PRELOAD = fileURLToPath(new URL('./preload.js', import.meta.url));
const TINYPOOL_DIR = path.dirname(createRequire(import.meta.url).resolve('tinypool'));
const SLOTS = 256;
/** Grace past a call's limit before a worker is presumed stuck in synchronous code. */
const STUCK_GRACE_MS = 50;
/** How often calls in flight are checked against their deadline. */
const SWEEP_MS = 10;

interface Pending { deadline: number; timeoutMs: number; label: string; pool: WorkerPool; reject(err: Error): void }

function settingsKey(s: ServerlessSettings): string {
  return JSON.stringify([s.threads, s.concurrency, s.maxQueue, s.maxHeapMb, s.allowFsRead]);
}

/** One tinypool configured by one `serverless:` block. */
class WorkerPool {
  readonly pool: Tinypool;
  private beat: Float64Array;
  private owner: Int32Array;
  /** Ids of functions already checked: an unchanged function is not checked again on reload. */
  readonly checked = new Set<string>();

  constructor(readonly settings: ServerlessSettings, channel: string) {
    const shared: WorkerShared = { heartbeat: new SharedArrayBuffer(SLOTS * 12), slots: SLOTS, channel };
    this.beat = new Float64Array(shared.heartbeat, 0, SLOTS);
    this.owner = new Int32Array(shared.heartbeat, SLOTS * 8, SLOTS);
    const reads = [WORKER, PRELOAD, path.join(TINYPOOL_DIR, '*'), ...settings.allowFsRead.map((p) => path.resolve(p))];
    this.pool = new Tinypool({
      filename: WORKER,
      minThreads: settings.threads,
      maxThreads: settings.threads,
      concurrentTasksPerWorker: settings.concurrency,
      maxQueue: settings.maxQueue,
      idleTimeout: 2 ** 31 - 1,
      env: {},
      execArgv: ['--experimental-permission', ...reads.map((r) => `--allow-fs-read=${r}`), '--no-warnings', '--import', PRELOAD],
      resourceLimits: { maxOldGenerationSizeMb: settings.maxHeapMb },
      workerData: shared,
    });
    // A worker that dies (heap blown, replaced) is reported here; tinypool replaces it.
    this.pool.on('error', (err: Error) => log('warn', 'function worker ended', { error: err.message }));
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
          // calls and starts a replacement (a bare terminate() would leave them pending).
          (w as unknown as { emit(e: string, err: Error): void }).emit('error', new GatewayError('GW_ERR_FUNCTION_TIMEOUT', `worker ${tid} was stuck in a function for over ${ms} ms and was replaced`));
          n++;
        }
      }
    }
    return n;
  }

  destroy(): Promise<void> {
    return this.pool.destroy().catch(() => {});
  }
}

function wireCtx(ctx: Ctx, phase: Phase, withBody: boolean): WireCtx {
  const req = ctx.request as Ctx['request'] & { search?: string; target?: () => string };
  const target = req.target ? req.target() : req.path;
  const q = target.indexOf('?');
  const wire: WireCtx = {
    request: { method: req.method, path: req.path, search: q < 0 ? '' : target.slice(q), headers: req.headers, client_ip: req.client_ip },
    vars: ctx.vars,
    route: { id: ctx.route.id, uri: ctx.route.uri },
  };
  if (withBody && req.body) wire.request.body = req.body;
  if (ctx.service) wire.service = { id: ctx.service.id };
  if (ctx.consumer) wire.consumer = { username: ctx.consumer.username };
  if (ctx.response && (phase === 'header_filter' || phase === 'body_filter' || phase === 'log')) {
    const r = ctx.response;
    wire.response = { status: r.status, headers: r.headers as WireCtx['request']['headers'] };
    if (phase === 'body_filter' && r.body !== undefined) wire.response.body = typeof r.body === 'string' ? r.body : r.body;
  }
  return wire;
}

function toBuffer(b: unknown): Buffer | string | undefined {
  if (b === undefined || b === null) return undefined;
  if (typeof b === 'string') return b;
  if (b instanceof Uint8Array) return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return JSON.stringify(b);
}

function apply(ctx: Ctx, res: Extract<CallResult, { kind: 'ok' }>, phase: Phase): HandlerResult {
  if (phase === 'log') return undefined;
  const req = ctx.request;
  req.path = res.request.path;
  req.headers = res.request.headers as typeof req.headers;
  if (res.request.query) req.query = res.request.query;
  ctx.vars = res.vars;
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
      run(fns, conf, ctx, phase, opts) {
        return pools.call(get(), fns, conf, ctx, phase, opts);
      },
    };
  }

  private async call(p: WorkerPool, fns: readonly FunctionSource[], conf: unknown, ctx: Ctx, phase: Phase, opts: { timeoutMs: number; withBody: boolean }): Promise<HandlerResult> {
    const canReply = phase === 'rewrite' || phase === 'access' || phase === 'before_proxy';
    const task: CallTask = {
      kind: 'call',
      fns: wireFns(fns, false),
      conf, phase, canReply,
      ctx: wireCtx(ctx, phase, opts.withBody),
      timeoutMs: opts.timeoutMs,
      maxResultBytes: p.settings.maxResultBytes,
    };
    let res = await this.runWithDeadline(p, task, fns[0].label, opts.timeoutMs);
    if (res.kind === 'missing') {
      // First call on this worker (or a replaced one): send the sources along.
      task.fns = wireFns(fns, true);
      res = await this.runWithDeadline(p, task, fns[0].label, opts.timeoutMs);
    }
    if (res.kind === 'missing') throw new GatewayError('GW_ERR_FUNCTION_FAILED', 'function could not be loaded in a worker');
    for (const line of res.logs) log(line.level, line.msg, { route: ctx.route.id, function: line.fn, source: 'function' });
    if (res.kind === 'error') {
      log('error', `function ${res.reason === 'timeout' ? 'timed out' : 'failed'}`, { route: ctx.route.id, function: res.fn, error: res.error.stack ?? res.error.message });
      if (res.reason === 'timeout') throw new GatewayError('GW_ERR_FUNCTION_TIMEOUT', `function ${res.fn} timed out`);
      throw new GatewayError('GW_ERR_FUNCTION_FAILED', `function ${res.fn} ${res.error.message}`);
    }
    return apply(ctx, res, phase);
  }

  private runWithDeadline(p: WorkerPool, task: CallTask, label: string, timeoutMs: number): Promise<CallResult> {
    return new Promise<CallResult>((resolve, reject) => {
      let run: Promise<unknown>;
      try {
        run = p.pool.run(task);
      } catch (err) {
        reject(mapRunError(err));
        return;
      }
      // The worker enforces the limit on async work; the sweeper catches a worker
      // whose thread is blocked (a loop), answers now, and replaces that worker.
      const pending: Pending = { deadline: Date.now() + timeoutMs + STUCK_GRACE_MS, timeoutMs, label, pool: p, reject };
      this.track(pending);
      run.then(
        (r) => { if (this.pending.delete(pending)) resolve(r as CallResult); },
        (err) => { if (this.pending.delete(pending)) reject(mapRunError(err)); },
      );
    });
  }

  private pending = new Set<Pending>();
  private sweeper?: NodeJS.Timeout;

  /** One interval for every call in flight, instead of a timer per call. */
  private track(p: Pending): void {
    this.pending.add(p);
    this.sweeper ??= setInterval(() => {
      const now = Date.now();
      for (const c of this.pending) {
        if (c.deadline > now) continue;
        this.pending.delete(c);
        c.pool.replaceStuck(c.timeoutMs);
        c.reject(new GatewayError('GW_ERR_FUNCTION_TIMEOUT', `function ${c.label} timed out after ${c.timeoutMs} ms`));
      }
      if (this.pending.size === 0) { clearInterval(this.sweeper); this.sweeper = undefined; }
    }, SWEEP_MS);
    this.sweeper.unref();
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
    clearInterval(this.sweeper);
    this.live.close();
    await this.retain([]);
  }
}

const wireCache = new WeakMap<readonly FunctionSource[], [WireFn[], WireFn[]]>();

/** What is sent for an instance's functions: ids, or ids with labels and sources when a worker lacks them. Built once per instance. */
function wireFns(fns: readonly FunctionSource[], withSource: boolean): WireFn[] {
  let pair = wireCache.get(fns);
  if (!pair) {
    pair = [fns.map((f) => ({ id: f.id })), fns.map((f) => ({ id: f.id, label: f.label, source: f.source }))];
    wireCache.set(fns, pair);
  }
  return pair[withSource ? 1 : 0];
}

function mapRunError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const msg = (err as Error)?.message ?? String(err);
  if (/queue is at limit|No task queue available/i.test(msg)) return new GatewayError('GW_ERR_FUNCTION_BUSY', 'function pool is busy: queue is full');
  if (/could not be cloned|DataCloneError/i.test(msg) || (err as Error)?.name === 'DataCloneError') {
    return new GatewayError('GW_ERR_FUNCTION_FAILED', `request context cannot be sent to a function: ${msg}`);
  }
  if ((err as { code?: string })?.code === 'ERR_WORKER_OUT_OF_MEMORY') return new GatewayError('GW_ERR_FUNCTION_FAILED', 'function worker ran out of memory and was replaced');
  return new GatewayError('GW_ERR_FUNCTION_FAILED', `function worker failed: ${msg}`);
}
