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

/** @type {Map<string, Function>} */
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

/** @param {CallTask} task @returns {Promise<CallResult>} */
async function call(task) {
  for (const f of task.fns) if (!cache.has(f.id) && f.source === undefined) return { kind: 'missing' };
  const started = Date.now();
  const wctx = task.ctx;
  const req = wctx.request;
  const search = req.search;
  /** @type {Record<string, string | string[]> | undefined} */
  let query;
  /** @type {any} */
  const request = {
    method: req.method, path: req.path, headers: req.headers, client_ip: req.client_ip,
    // Parsed only when read; once read, it is what the gateway sends upstream.
    get query() { return (query ??= parseQuery(search)); },
    set query(q) { query = q; },
  };
  if (req.body) request.body = Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength);
  /** @type {any} */
  const response = wctx.response;
  if (response && response.body instanceof Uint8Array) response.body = Buffer.from(response.body.buffer, response.body.byteOffset, response.body.byteLength);
  /** @type {LogLine[]} */
  const logs = [];
  const store = { logs, fn: '' };
  const log = {
    info: (/** @type {unknown[]} */ ...a) => { logs.length < 100 && logs.push({ level: 'info', msg: text(a), fn: store.fn }); },
    warn: (/** @type {unknown[]} */ ...a) => { logs.length < 100 && logs.push({ level: 'warn', msg: text(a), fn: store.fn }); },
    error: (/** @type {unknown[]} */ ...a) => { logs.length < 100 && logs.push({ level: 'error', msg: text(a), fn: store.fn }); },
  };
  const ctx = { request, vars: wctx.vars, route: wctx.route, service: wctx.service, consumer: wctx.consumer, response, log };
  /** @type {any} */
  let reply;
  return als.run(store, async () => {
    for (const f of task.fns) {
      store.fn = f.label;
      try {
        /** @type {Function} */
        let fn;
        const cached = cache.get(f.id);
        if (cached) fn = cached;
        else { fn = compile(/** @type {string} */ (f.source), f.label); cache.set(f.id, fn); }
        busy();
        let r;
        try { r = fn(task.conf, ctx); } finally { idle(); }
        if (isThenable(r)) r = await withDeadline(/** @type {PromiseLike<unknown>} */ (r), task.timeoutMs - (Date.now() - started));
        if (task.canReply && r !== undefined && r !== null) {
          if (typeof r !== 'object' || typeof /** @type {any} */ (r).status !== 'number') {
            throw new Error('returned something that is not a reply: return { status, body?, headers? } or nothing');
          }
          reply = r;
          break;
        }
      } catch (err) {
        if (err instanceof DeadlineError) return { kind: 'error', reason: 'timeout', fn: f.label, error: { message: `did not finish within ${task.timeoutMs} ms` }, logs };
        return { kind: 'error', reason: 'threw', fn: f.label, error: wireError(err), logs };
      }
    }

    if (reply && reply.body instanceof Uint8Array === false && reply.body !== undefined && typeof reply.body !== 'string' && typeof reply.body !== 'object') reply.body = String(reply.body);
    /** @type {CallResult} */
    const result = {
      kind: 'ok',
      reply: reply && { status: reply.status, body: reply.body, headers: reply.headers },
      request: { path: request.path, headers: request.headers, query },
      vars: ctx.vars,
      response: ctx.response,
      logs,
    };
    let size;
    try { size = cloneSize(result, 0); } catch (err) {
      return { kind: 'error', reason: 'unsendable', fn: store.fn, error: { message: `left a value in ctx or its reply that cannot be sent back (${/** @type {Error} */ (err).message})` }, logs };
    }
    if (size > task.maxResultBytes) {
      return { kind: 'error', reason: 'too_large', fn: store.fn, error: { message: `result is ${size} bytes, over the ${task.maxResultBytes}-byte limit` }, logs };
    }
    return result;
  });
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
      if (!cache.has(f.id)) cache.set(f.id, compile(f.source, f.label));
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
