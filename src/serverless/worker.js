// The worker that runs serverless functions. Plain JavaScript, importing only
// node built-ins, so it starts fast under the permission model (it may read
// nothing but its own code).
// @ts-check
import vm from 'node:vm';
import { AsyncLocalStorage } from 'node:async_hooks';
import { serialize } from 'node:v8';
import { pathToFileURL } from 'node:url';
import { MessageChannel, threadId, workerData } from 'node:worker_threads';

/** @typedef {import('./messages.ts').Task} Task */
/** @typedef {import('./messages.ts').WireCall} WireCall */
/** @typedef {import('./messages.ts').WireProgram} WireProgram */
/** @typedef {import('./messages.ts').WireChanges} WireChanges */
/** @typedef {import('./messages.ts').CheckTask} CheckTask */
/** @typedef {import('./messages.ts').CallResult} CallResult */
/** @typedef {import('./messages.ts').BatchResult} BatchResult */
/** @typedef {import('./messages.ts').LogLine} LogLine */
/** @typedef {import('./messages.ts').WorkerShared} WorkerShared */

// Values of messages.ts, which this file cannot import (it loads no TypeScript).
const UNCHANGED = 0;
const MISSING = 1;
const PENDING = 2;
// Positions in a WireCall.
const SEQ = 0, PROGRAM = 1, METHOD = 2, PATH = 3, SEARCH = 4, HEADERS = 5, CLIENT_IP = 6, VARS = 7;
const ROUTE_ID = 8, ROUTE_URI = 9, SERVICE = 10, CONSUMER = 11, RESPONSE = 12, BODY = 13, FULL = 14;

// The process itself is locked down by preload.js, which runs first.

/** @type {WorkerShared} */
const shared = Array.isArray(workerData) ? workerData[1] : workerData;
const beat = new Float64Array(shared.heartbeat, 0, shared.slots);
const owner = new Int32Array(shared.heartbeat, shared.slots * 8, shared.slots);
const slot = threadId % shared.slots;
/** @type {{ markMovable(v: object): void, kTransferable: symbol, kValue: symbol }} */
const tinypool = await import(pathToFileURL(shared.tinypool).href);
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
/** Programs by id: sent once by the pool, named by id in every call after. @type {Map<string, WireProgram>} */
const programs = new Map();
const live = new BroadcastChannel(shared.channel);
live.onmessage = (/** @type {MessageEvent} */ ev) => {
  const keep = new Set(/** @type {string[]} */ (ev.data));
  for (const id of cache.keys()) if (!keep.has(id)) cache.delete(id);
  for (const [id, p] of programs) if (p.fns.some((f) => !keep.has(f.id))) programs.delete(id);
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

/** ctx.request in the worker: the query is parsed only when read. */
class WorkerRequest {
  /** @param {WireCall} w */
  constructor(w) {
    this.method = w[METHOD];
    this.path = w[PATH];
    this.headers = w[HEADERS];
    this.client_ip = w[CLIENT_IP];
    this.search = w[SEARCH];
    /** @type {Record<string, string | string[]> | undefined} */
    this.parsed = undefined;
    /** The parsed query as JSON when it was parsed, to tell whether a function changed it; '' once replaced. */
    this.parsedJson = '';
    const body = w[BODY];
    if (body) this.body = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  }
  get query() {
    if (this.parsed === undefined) {
      this.parsed = parseQuery(this.search);
      this.parsedJson = JSON.stringify(this.parsed);
    }
    return this.parsed;
  }
  set query(q) { this.parsed = q; this.parsedJson = ''; }
  /** The query, if a function changed it. */
  changedQuery() {
    const q = this.parsed;
    if (q === undefined) return undefined;
    if (this.parsedJson === '') return q;
    try { return JSON.stringify(q) === this.parsedJson ? undefined : q; } catch { return q; }
  }
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

/** @param {object} o */
function hasKeys(o) {
  for (const _ in o) return true;
  return false;
}

/**
 * JSON of a value made only of plain objects, arrays and primitives; undefined
 * for anything else (a Map, a Date, a cycle), whose changes cannot be seen this way.
 * @param {unknown} v
 */
function plainJson(v) {
  try {
    return JSON.stringify(v, function (k, x) {
      const raw = k === '' ? x : this[k];
      if (raw !== null && typeof raw === 'object') {
        const proto = Object.getPrototypeOf(raw);
        if (proto !== Object.prototype && proto !== null && proto !== Array.prototype) throw NOT_PLAIN;
      } else if (typeof raw === 'bigint') throw NOT_PLAIN;
      return x;
    });
  } catch {
    return undefined;
  }
}
const NOT_PLAIN = new Error('not plain');

/** A header value as it was, so that a change made in place shows. @param {string | string[] | undefined} v */
const copyValue = (v) => (Array.isArray(v) ? v.slice() : v);
/** @param {unknown} a @param {unknown} b */
function sameValue(a, b) {
  if (a === b) return true;
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * One call: the functions of one program, in order. Sync functions run
 * without a promise; the call goes async only when a function returns a thenable.
 */
class Call {
  /** @param {WireCall} w @param {WireProgram} prog */
  constructor(w, prog) {
    this.prog = prog;
    this.started = Date.now();
    /** @type {LogLine[]} */
    this.logs = [];
    /** Label of the function running now (the console's AsyncLocalStorage store is this Call). */
    this.fn = '';
    /** @type {any} */
    this.reply = undefined;
    this.request = new WorkerRequest(w);
    this.pathIn = w[PATH];
    /** @type {Record<string, string | string[] | undefined>} */
    const headersIn = {};
    const h = w[HEADERS];
    for (const k in h) headersIn[k] = copyValue(h[k]);
    this.headersIn = headersIn;
    const vars = w[VARS] ?? {};
    this.varsIn = vars;
    /** '' for vars that came empty; undefined when they hold what JSON cannot compare. */
    this.varsJson = w[VARS] === undefined ? '' : plainJson(vars);
    /** @type {any} */
    const response = w[RESPONSE];
    if (response && response.body instanceof Uint8Array) response.body = Buffer.from(response.body.buffer, response.body.byteOffset, response.body.byteLength);
    const service = w[SERVICE] === undefined ? undefined : { id: w[SERVICE] };
    const consumer = w[CONSUMER] === undefined ? undefined : { username: w[CONSUMER] };
    this.ctx = { request: this.request, vars, route: { id: w[ROUTE_ID], uri: w[ROUTE_URI] }, service, consumer, response, log: new FnLog(this) };
  }

  /** @param {'info'|'warn'|'error'} level @param {unknown[]} args */
  line(level, args) {
    if (this.logs.length < 100) this.logs.push({ level, msg: text(args).slice(0, 8192), fn: this.fn });
  }

  /** @param {number} i @returns {CallResult | Promise<CallResult>} */
  run(i) {
    const fns = this.prog.fns;
    for (; i < fns.length; i++) {
      const f = fns[i];
      this.fn = f.label;
      let r;
      try {
        let entry = cache.get(f.id);
        if (!entry) {
          entry = { fn: compile(f.source, f.label), label: f.label };
          cache.set(f.id, entry);
        }
        busy();
        try { r = entry.fn(this.prog.conf, this.ctx); } finally { idle(); }
      } catch (err) {
        return this.failed(err);
      }
      if (isThenable(r)) {
        const next = i + 1;
        const label = this.fn;
        return withDeadline(/** @type {PromiseLike<unknown>} */ (r), this.prog.timeoutMs - (Date.now() - this.started))
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
    if (!this.prog.canReply || r === undefined || r === null) return false;
    if (typeof r !== 'object' || typeof /** @type {any} */ (r).status !== 'number') {
      throw new Error('returned something that is not a reply: return { status, body?, headers? } or nothing');
    }
    this.reply = r;
    return true;
  }

  /** @param {unknown} err @returns {CallResult} */
  failed(err) {
    if (err instanceof DeadlineError) return { reason: 'timeout', fn: this.fn, error: { message: `did not finish within ${this.prog.timeoutMs} ms` }, logs: this.logs };
    return { reason: 'threw', fn: this.fn, error: wireError(err), logs: this.logs };
  }

  /** What the functions changed; UNCHANGED when nothing. @returns {CallResult} */
  finish() {
    /** @type {WireChanges} */
    const out = {};
    let changed = false;
    if (this.logs.length) { out.logs = this.logs; changed = true; }
    if (this.prog.phase !== 'log' && this.changes(out)) changed = true;
    if (!changed) return UNCHANGED;
    let size;
    try { size = cloneSize(out, 0); } catch (err) {
      return { reason: 'unsendable', fn: this.fn, error: { message: `left a value in ctx or its reply that cannot be sent back (${/** @type {Error} */ (err).message})` }, logs: this.logs };
    }
    if (size > shared.maxResultBytes) {
      return { reason: 'too_large', fn: this.fn, error: { message: `result is ${size} bytes, over the ${shared.maxResultBytes}-byte limit` }, logs: this.logs };
    }
    return out;
  }

  /** Fills `out` with what changed in ctx; true if anything did. @param {WireChanges} out */
  changes(out) {
    let changed = false;
    const req = this.request;
    if (req.path !== this.pathIn) { out.path = req.path; changed = true; }
    const now = req.headers ?? {};
    const before = this.headersIn;
    for (const k in now) {
      const v = now[k];
      if (v === undefined || sameValue(v, before[k])) continue;
      (out.set ??= {})[k] = v;
      changed = true;
    }
    for (const k in before) {
      if (now[k] === undefined) { (out.del ??= []).push(k); changed = true; }
    }
    const q = req.changedQuery();
    if (q !== undefined) { out.query = q; changed = true; }
    const vars = this.ctx.vars;
    if (vars !== this.varsIn || this.varsJson === undefined || (this.varsJson === '' ? hasKeys(vars) : plainJson(vars) !== this.varsJson)) {
      out.vars = vars;
      changed = true;
    }
    if (this.ctx.response) { out.response = this.ctx.response; changed = true; }
    const reply = this.reply;
    if (reply) {
      if (reply.body !== undefined && !(reply.body instanceof Uint8Array) && typeof reply.body !== 'string' && typeof reply.body !== 'object') reply.body = String(reply.body);
      out.reply = { status: reply.status, body: reply.body, headers: reply.headers };
      changed = true;
    }
    return changed;
  }
}

/** @param {WireCall} w @returns {CallResult | Promise<CallResult>} */
function call(w) {
  let prog = programs.get(w[PROGRAM]);
  if (prog === undefined) {
    const full = w[FULL];
    if (full === undefined) return MISSING;
    prog = full;
    programs.set(full.id, full);
  }
  const c = new Call(w, prog);
  return als.run(c, () => c.run(0));
}

/** Calls that outlive their batch answer on this port; the pool gets its other end once. */
const late = new MessageChannel();
let portSent = false;

/** @param {WireCall[]} calls */
function batch(calls) {
  /** @type {BatchResult['results']} */
  const results = new Array(calls.length);
  let pending = false;
  for (let i = 0; i < calls.length; i++) {
    const r = call(calls[i]);
    if (!isThenable(r)) { results[i] = /** @type {CallResult} */ (r); continue; }
    results[i] = PENDING;
    pending = true;
    const seq = calls[i][SEQ];
    /** @type {Promise<CallResult>} */ (r).then(
      (res) => late.port1.postMessage([seq, res]),
      (err) => late.port1.postMessage([seq, { reason: 'threw', fn: '', error: wireError(err), logs: [] }]),
    );
  }
  /** @type {BatchResult} */
  const out = { thread: threadId, results };
  if (!pending || portSent) return out;
  portSent = true;
  out.port = /** @type {any} */ (late.port2);
  // tinypool transfers what a result marks movable; a MessagePort must be transferred.
  const moved = { [tinypool.kTransferable]: [late.port2], [tinypool.kValue]: out };
  tinypool.markMovable(moved);
  return moved;
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

/** The tinypool entry: a batch of calls, or a check of new functions. @param {Task} task */
export default function run(task) {
  return Array.isArray(task) ? batch(task) : check(task);
}
