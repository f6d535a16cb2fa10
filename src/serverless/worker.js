// The worker that runs serverless functions. Plain JavaScript, importing only
// node built-ins, so it starts fast under the permission model (it may read
// nothing but its own code).
// @ts-check
import vm from 'node:vm';
import { AsyncLocalStorage } from 'node:async_hooks';
import { serialize } from 'node:v8';

import { threadId, workerData } from 'node:worker_threads';

/** @typedef {import('./messages.ts').Task} Task */
/** @typedef {import('./messages.ts').CallTask} CallTask */
/** @typedef {import('./messages.ts').CheckTask} CheckTask */
/** @typedef {import('./messages.ts').CallResult} CallResult */
/** @typedef {import('./messages.ts').LogLine} LogLine */
/** @typedef {import('./messages.ts').WorkerShared} WorkerShared */

// The process itself is locked down by preload.js, which runs first.

/** @type {WorkerShared} */
const shared = Array.isArray(workerData) ? workerData[1] : workerData;
const beat = new Float64Array(shared.heartbeat, 0, shared.slots);
const owner = new Int32Array(shared.heartbeat, shared.slots * 8, shared.slots);
const slot = threadId % shared.slots;
Atomics.store(owner, slot, threadId);
const busy = () => { beat[slot] = Date.now(); };
const idle = () => { beat[slot] = 0; };

/** @type {AsyncLocalStorage<{ logs: LogLine[], fn: string }>} */
const als = new AsyncLocalStorage();
/** @param {unknown[]} args */
const text = (args) => args.map((a) => (typeof a === 'string' ? a : safeJson(a))).join(' ');
/** @param {unknown} v */
function safeJson(v) {
  if (v instanceof Error) return v.stack ?? v.message;
  try { return JSON.stringify(v) ?? String(v); } catch { return String(v); }
}
/** @param {'info'|'warn'|'error'} level */
const sink = (level) => (/** @type {unknown[]} */ ...args) => {
  const store = als.getStore();
  if (store && store.logs.length < 100) store.logs.push({ level, msg: text(args).slice(0, 8192), fn: store.fn });
};
const quietConsole = {
  log: sink('info'), info: sink('info'), debug: sink('info'), trace: sink('info'),
  warn: sink('warn'), error: sink('error'), dir: sink('info'), table: sink('info'),
};
Object.defineProperty(globalThis, 'console', { value: quietConsole, writable: false, configurable: false });
// A throw in a function's stray timer must not end the thread and the calls it carries.
process.on('uncaughtException', () => {});
process.on('unhandledRejection', () => {});

/** Compiled functions by id, with the label that names them in logs. @type {Map<string, { fn: Function, label: string }>} */
const cache = new Map();
const live = new BroadcastChannel(shared.channel);
live.onmessage = (/** @type {MessageEvent} */ ev) => {
  const keep = new Set(/** @type {string[]} */ (ev.data));
  for (const id of cache.keys()) if (!keep.has(id)) cache.delete(id);
};
/** @type {any} */ (live).unref?.();

/** @param {unknown} err */
function lineOf(err) {
  const m = /:(\d+)(?::\d+)?\n/.exec(String(/** @type {Error} */ (err)?.stack ?? ''));
  return m ? Number(m[1]) : undefined;
}

/**
 * Compiles a source into its function: a body that returns a function, or a
 * function expression. Runs the code before the `return` (closure state).
 * @param {string} source @param {string} label
 */
function compile(source, label) {
  /** @type {vm.Script | undefined} */
  let script;
  /** @type {unknown} */
  let first;
  for (const wrap of [`(function () { return (\n${source}\n); })`, `(function () {\n${source}\n})`]) {
    try { script = new vm.Script(wrap, { filename: label, lineOffset: -1 }); break; } catch (err) { first ??= err; }
  }
  if (!script) {
    const looksLikeExpression = /^\s*(async\b|function\b|\()/.test(source) && !/\breturn\b/.test(source.split('\n')[0]);
    const err = looksLikeExpression ? first : undefined;
    let bodyErr = /** @type {unknown} */ (undefined);
    try { new vm.Script(`(function () {\n${source}\n})`, { filename: label, lineOffset: -1 }); } catch (e) { bodyErr = e; }
    const shown = /** @type {Error} */ (err ?? bodyErr ?? first);
    // An unclosed construct is reported on the wrapper's closing line: show the source's last.
    const lines = source.replace(/\n+$/, '').split('\n').length;
    const at = lineOf(shown);
    const line = at === undefined ? undefined : Math.min(Math.max(at, 1), lines);
    throw new Error(`does not compile${line ? ` (line ${line})` : ''}: ${shown.message}`);
  }
  const wrapper = script.runInThisContext();
  let value;
  busy();
  try {
    value = wrapper();
  } catch (err) {
    const line = lineOf(err);
    throw new Error(`threw while loading${line ? ` (line ${line})` : ''}: ${/** @type {Error} */ (err)?.message ?? String(err)}`);
  } finally {
    idle();
  }
  if (typeof value !== 'function') {
    throw new Error(`must return a function (\`return function (conf, ctx) { ... }\`), but it returned ${value === null ? 'null' : typeof value}`);
  }
  return value;
}

/** @param {string} search */
function parseQuery(search) {
  /** @type {Record<string, string | string[]>} */
  const out = {};
  for (const [k, v] of new URLSearchParams(search)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

/** @param {unknown} v */
const isThenable = (v) => v !== null && typeof v === 'object' && typeof /** @type {any} */ (v).then === 'function';

/** @param {PromiseLike<unknown>} p @param {number} ms */
function withDeadline(p, ms) {
  /** @type {NodeJS.Timeout | undefined} */
  let t;
  const timer = new Promise((_, reject) => { t = setTimeout(() => reject(new DeadlineError()), Math.max(1, ms)); });
  return Promise.race([p, timer]).finally(() => clearTimeout(t));
}
class DeadlineError extends Error {}

/** @param {unknown} err */
const wireError = (err) => (err instanceof Error ? { message: err.message, stack: err.stack, name: err.name } : { message: String(err) });

/** ctx.request in the worker: the query is parsed only when read, and once read it is sent back. */
class WorkerRequest {
  /** @param {import('./messages.ts').WireRequest} req */
  constructor(req) {
    this.method = req.method;
    this.path = req.path;
    this.headers = req.headers;
    this.client_ip = req.client_ip;
    this.search = req.search;
    /** @type {Record<string, string | string[]> | undefined} */
    this.parsed = undefined;
    if (req.body) this.body = Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength);
  }
  get query() { return (this.parsed ??= parseQuery(this.search)); }
  set query(q) { this.parsed = q; }
}

/** ctx.log: lines go back with the result, tagged with the function that wrote them. */
class FnLog {
  /** @param {Call} call */
  constructor(call) { this.call = call; }
  /** @param {unknown[]} a */
  info(...a) { this.call.line('info', a); }
  /** @param {unknown[]} a */
  warn(...a) { this.call.line('warn', a); }
  /** @param {unknown[]} a */
  error(...a) { this.call.line('error', a); }
}

/**
 * One call: the functions of one plugin instance, in order. Sync functions
 * run without a promise; the call goes async only when a function returns a thenable.
 */
class Call {
  /** @param {CallTask} task */
  constructor(task) {
    this.task = task;
    this.started = Date.now();
    /** @type {LogLine[]} */
    this.logs = [];
    /** Label of the function running now (the console's AsyncLocalStorage store is this Call). */
    this.fn = '';
    /** @type {any} */
    this.reply = undefined;
    const w = task.ctx;
    this.request = new WorkerRequest(w.request);
    /** @type {any} */
    const response = w.response;
    if (response && response.body instanceof Uint8Array) response.body = Buffer.from(response.body.buffer, response.body.byteOffset, response.body.byteLength);
    this.ctx = { request: this.request, vars: w.vars, route: w.route, service: w.service, consumer: w.consumer, response, log: new FnLog(this) };
  }

  /** @param {'info'|'warn'|'error'} level @param {unknown[]} args */
  line(level, args) {
    if (this.logs.length < 100) this.logs.push({ level, msg: text(args).slice(0, 8192), fn: this.fn });
  }

  /** @param {number} i @returns {CallResult | Promise<CallResult>} */
  run(i) {
    const fns = this.task.fns;
    for (; i < fns.length; i++) {
      const f = fns[i];
      let entry = cache.get(f.id);
      this.fn = entry?.label ?? f.label ?? f.id;
      let r;
      try {
        if (!entry) {
          entry = { fn: compile(/** @type {string} */ (f.source), /** @type {string} */ (f.label)), label: /** @type {string} */ (f.label) };
          cache.set(f.id, entry);
        }
        busy();
        try { r = entry.fn(this.task.conf, this.ctx); } finally { idle(); }
      } catch (err) {
        return this.failed(err);
      }
      if (isThenable(r)) {
        const next = i + 1;
        const label = this.fn;
        return withDeadline(/** @type {PromiseLike<unknown>} */ (r), this.task.timeoutMs - (Date.now() - this.started))
          .then((v) => { this.fn = label; return this.settled(v) ? this.finish() : this.run(next); }, (err) => { this.fn = label; return this.failed(err); });
      }
      try {
        if (this.settled(r)) break;
      } catch (err) {
        return this.failed(err);
      }
    }
    return this.finish();
  }

  /** True when `r` is a reply that ends the call. @param {unknown} r */
  settled(r) {
    if (!this.task.canReply || r === undefined || r === null) return false;
    if (typeof r !== 'object' || typeof /** @type {any} */ (r).status !== 'number') {
      throw new Error('returned something that is not a reply: return { status, body?, headers? } or nothing');
    }
    this.reply = r;
    return true;
  }

  /** @param {unknown} err @returns {CallResult} */
  failed(err) {
    if (err instanceof DeadlineError) return { kind: 'error', reason: 'timeout', fn: this.fn, error: { message: `did not finish within ${this.task.timeoutMs} ms` }, logs: this.logs };
    return { kind: 'error', reason: 'threw', fn: this.fn, error: wireError(err), logs: this.logs };
  }

  /** @returns {CallResult} */
  finish() {
    const reply = this.reply;
    if (reply && reply.body !== undefined && !(reply.body instanceof Uint8Array) && typeof reply.body !== 'string' && typeof reply.body !== 'object') reply.body = String(reply.body);
    /** @type {CallResult} */
    const result = {
      kind: 'ok',
      reply: reply && { status: reply.status, body: reply.body, headers: reply.headers },
      request: { path: this.request.path, headers: this.request.headers, query: this.request.parsed },
      vars: this.ctx.vars,
      response: this.ctx.response,
      logs: this.logs,
    };
    let size;
    try { size = cloneSize(result, 0); } catch (err) {
      return { kind: 'error', reason: 'unsendable', fn: this.fn, error: { message: `left a value in ctx or its reply that cannot be sent back (${/** @type {Error} */ (err).message})` }, logs: this.logs };
    }
    if (size > this.task.maxResultBytes) {
      return { kind: 'error', reason: 'too_large', fn: this.fn, error: { message: `result is ${size} bytes, over the ${this.task.maxResultBytes}-byte limit` }, logs: this.logs };
    }
    return result;
  }
}

/** @param {CallTask} task @returns {CallResult | Promise<CallResult>} */
function call(task) {
  for (const f of task.fns) if (!cache.has(f.id) && f.source === undefined) return { kind: 'missing' };
  const c = new Call(task);
  return als.run(c, () => c.run(0));
}

/**
 * About how many bytes `v` takes once cloned; throws on what cannot be cloned.
 * Plain data (the usual result) is walked here, as v8.serialize costs several
 * µs per call; anything else, or anything deep (cycles), is left to v8.serialize.
 * @param {unknown} v @param {number} depth @returns {number}
 */
function cloneSize(v, depth) {
  switch (typeof v) {
    case 'string': return v.length + 4;
    case 'number': case 'boolean': case 'undefined': return 8;
    case 'bigint': return 16;
    case 'function': case 'symbol': throw new Error(`${String(v).slice(0, 40)} could not be cloned`);
  }
  if (v === null) return 1;
  if (ArrayBuffer.isView(v)) return v.byteLength + 8;
  const proto = Object.getPrototypeOf(v);
  if (depth > 32 || (proto !== Object.prototype && proto !== null && proto !== Array.prototype)) return serialize(v).length;
  let n = 8;
  const o = /** @type {Record<string, unknown>} */ (v);
  for (const k of Object.keys(o)) n += k.length + cloneSize(o[k], depth + 1);
  return n;
}

/** @param {CheckTask} task */
function check(task) {
  /** @type {string[]} */
  const problems = [];
  for (const f of task.fns) {
    try {
      if (!cache.has(f.id)) cache.set(f.id, { fn: compile(f.source, f.label), label: f.label });
    } catch (err) {
      problems.push(`${f.label} ${/** @type {Error} */ (err).message}`);
    }
  }
  return { problems };
}

/** The tinypool entry. @param {Task} task */
export default function run(task) {
  return task.kind === 'check' ? check(task) : call(task);
}
