/**
 * The worker that runs serverless functions. It imports only node built-ins,
 * the wire format (messages.ts) and its two helpers, so it starts fast under the
 * permission model (it may read nothing but its own code and the SES bundle).
 * The realm is locked down before any function is compiled: see realm.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { types } from 'node:util';
import {
  BATCH, CANCEL, CHECK, CHECKED, LIVE, MISSING, PING, PONG, READY, RESULTS, UNCHANGED,
  BODY, CLIENT_IP, CONSUMER, FULL, HEADERS, METHOD, PATH, PROGRAM, RESPONSE, ROUTE_ID, ROUTE_URI, SEARCH, SEQ, SERVICE, VARS,
  type CallResult, type FromWorker, type ToWorker, type WireCall, type WireChanges, type WireFn, type WireProgram, type WorkerInit,
} from './messages.ts';
import { Budget, TooLarge, Unsendable, body, field, headers, plain, status } from './plain.ts';
import { Scope, als, compile, lockRealm, tidyStack, warmFetch } from './realm.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
await import(pathToFileURL(init.ses).href);
lockRealm(init.allowFsRead);
// A throw in a function's stray callback must not end the thread and the calls it carries.
process.on('uncaughtException', () => {});
process.on('unhandledRejection', () => {});

const post = (m: FromWorker) => port.postMessage(m);

/** Compiled functions by id. */
const cache = new Map<string, Function>();
/** Programs by id: sent once by the pool, named by id in every call after. */
const programs = new Map<string, WireProgram>();
/** Calls that went async, by seq, until they answer or are cancelled. */
const running = new Map<number, Call>();

function parseQuery(search: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(search)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

/** ctx.request in the worker: the query is parsed only when read. Hardened: a function cannot change it for others. */
class WorkerRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  client_ip: string;
  body?: Buffer;
  #search: string;
  #parsed: Record<string, string | string[]> | undefined;
  /** The parsed query as JSON when it was parsed, to tell whether a function changed it; '' once replaced. */
  #parsedJson = '';
  constructor(w: WireCall) {
    this.method = w[METHOD];
    this.path = w[PATH];
    this.headers = w[HEADERS];
    this.client_ip = w[CLIENT_IP];
    this.#search = w[SEARCH];
    const b = w[BODY];
    if (b) this.body = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  }
  get query(): Record<string, string | string[]> {
    if (this.#parsed === undefined) {
      this.#parsed = parseQuery(this.#search);
      this.#parsedJson = JSON.stringify(this.#parsed);
    }
    return this.#parsed;
  }
  set query(q) { this.#parsed = q; this.#parsedJson = ''; }
  /** The query as plain data, if a function changed it. */
  static changedQuery(r: WorkerRequest, budget: Budget): Record<string, string | string[]> | undefined {
    const q = r.#parsed;
    if (q === undefined) return undefined;
    const copy = plain(q, budget, 'ctx.request.query') as Record<string, string | string[]>;
    return r.#parsedJson !== '' && JSON.stringify(copy) === r.#parsedJson ? undefined : copy;
  }
}

/** ctx.log: lines go back with the result, tagged with the function that wrote them. */
class FnLog {
  #scope: Scope;
  constructor(scope: Scope) { this.#scope = scope; }
  info(...a: unknown[]): void { this.#scope.line('info', a); }
  warn(...a: unknown[]): void { this.#scope.line('warn', a); }
  error(...a: unknown[]): void { this.#scope.line('error', a); }
}
harden(WorkerRequest);
harden(FnLog);
declare const harden: <T>(v: T) => T;

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

/** JSON of plain data made here (no function's code runs); undefined for what JSON cannot compare (a Map, a cycle). */
function plainJson(v: unknown): string | undefined {
  try {
    return JSON.stringify(v, function (this: Record<string, unknown>, k, x) {
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

/** A header value as it was, so that a change made in place shows. */
const copyValue = (v: string | string[] | undefined) => (Array.isArray(v) ? v.slice() : v);
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const wireError = (err: unknown) => {
  try {
    return err instanceof Error ? { message: String(err.message), stack: tidyStack(String(err.stack)) } : { message: String(err) };
  } catch {
    return { message: 'threw a value that cannot be read' };
  }
};

/**
 * One call: the functions of one program, in order. Sync functions run
 * without a promise; the call goes async only when a function returns a promise.
 */
class Call {
  readonly prog: WireProgram;
  readonly scope = new Scope();
  readonly request: WorkerRequest;
  readonly ctx: Record<string, unknown>;
  readonly seq: number;
  private reply: unknown;
  private readonly pathIn: string;
  private readonly headersIn: Record<string, string | string[] | undefined> = {};
  private readonly varsIn: Record<string, unknown>;
  /** '' for vars that came empty; undefined when they hold what JSON cannot compare. */
  private readonly varsJson: string | undefined;
  constructor(w: WireCall, prog: WireProgram) {
    this.prog = prog;
    this.seq = w[SEQ];
    this.request = new WorkerRequest(w);
    this.pathIn = w[PATH];
    const h = w[HEADERS];
    for (const k in h) this.headersIn[k] = copyValue(h[k]);
    const vars = w[VARS] ?? {};
    this.varsIn = vars;
    this.varsJson = w[VARS] === undefined ? '' : plainJson(vars);
    const response = w[RESPONSE] as { body?: unknown } | undefined;
    if (response && response.body instanceof Uint8Array) response.body = Buffer.from(response.body.buffer, response.body.byteOffset, response.body.byteLength);
    const service = w[SERVICE] === undefined ? undefined : { id: w[SERVICE] };
    const consumer = w[CONSUMER] === undefined ? undefined : { username: w[CONSUMER] };
    this.ctx = { request: this.request, vars, route: { id: w[ROUTE_ID], uri: w[ROUTE_URI] }, service, consumer, response, log: new FnLog(this.scope) };
  }

  run(i: number): CallResult | Promise<CallResult> {
    const fns = this.prog.fns;
    for (; i < fns.length; i++) {
      const f = fns[i];
      this.scope.fn = f.label;
      let r: unknown;
      try {
        let fn = cache.get(f.id);
        if (!fn) { fn = compile(f.id, f.source, f.label); cache.set(f.id, fn); }
        r = fn(this.prog.conf, this.ctx);
      } catch (err) {
        return this.failed(err);
      }
      // Only a real promise is awaited; any other value is data, read without running its code.
      if (types.isPromise(r)) {
        const next = i + 1;
        const label = f.label;
        return (r as Promise<unknown>).then(
          (v) => { this.scope.fn = label; return this.settled(v) ? this.finish() : this.run(next); },
          (err) => { this.scope.fn = label; return this.failed(err); },
        ).catch((err) => this.failed(err));
      }
      try {
        if (this.settled(r)) break;
      } catch (err) {
        return this.failed(err);
      }
    }
    return this.finish();
  }

  /** True when `r` is a reply that ends the call. */
  private settled(r: unknown): boolean {
    if (!this.prog.canReply || r === undefined || r === null) return false;
    if (typeof r !== 'object' || typeof field(r, 'status', 'the reply') !== 'number') {
      throw new Error('returned something that is not a reply: return { status, body?, headers? } or nothing');
    }
    this.reply = r;
    return true;
  }

  private failed(err: unknown): CallResult {
    const logs = this.scope.logs;
    if (err instanceof TooLarge) return { reason: 'too_large', fn: this.scope.fn, error: { message: err.message }, logs };
    if (err instanceof Unsendable) return { reason: 'unsendable', fn: this.scope.fn, error: { message: `left a value in ctx or its reply that cannot be sent back (${err.message})` }, logs };
    return { reason: 'threw', fn: this.scope.fn, error: wireError(err), logs };
  }

  /** What the functions changed, as plain data; UNCHANGED when nothing. */
  private finish(): CallResult {
    const out: WireChanges = {};
    let changed = false;
    try {
      if (this.prog.phase !== 'log' && this.changes(out, new Budget(init.maxResultBytes))) changed = true;
    } catch (err) {
      return this.failed(err);
    }
    if (this.scope.logs.length) { out.logs = this.scope.logs; changed = true; }
    return changed ? out : UNCHANGED;
  }

  /** Fills `out` with what changed in ctx; true if anything did. */
  private changes(out: WireChanges, budget: Budget): boolean {
    let changed = false;
    const req = this.request;
    const path = field(req, 'path', 'ctx.request');
    if (path !== this.pathIn) {
      if (typeof path !== 'string' || !path.startsWith('/')) throw new Unsendable('ctx.request.path must be a string starting with /');
      out.path = path;
      budget.take(path.length);
      changed = true;
    }
    const now = headers(field(req, 'headers', 'ctx.request'), budget, 'ctx.request.headers');
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
    const q = WorkerRequest.changedQuery(req, budget);
    if (q !== undefined) { out.query = q; changed = true; }
    const vars = field(this.ctx, 'vars', 'ctx');
    if (vars === null || typeof vars !== 'object') throw new Unsendable('ctx.vars must be an object');
    const varsCopy = plain(vars, budget, 'ctx.vars') as Record<string, unknown>;
    if (vars !== this.varsIn || this.varsJson === undefined || (this.varsJson === '' ? hasKeys(varsCopy) : plainJson(varsCopy) !== this.varsJson)) {
      out.vars = varsCopy;
      changed = true;
    }
    const response = field(this.ctx, 'response', 'ctx');
    if (response) {
      out.response = {
        status: status(field(response, 'status', 'ctx.response'), 'ctx.response.status'),
        headers: headers(field(response, 'headers', 'ctx.response'), budget, 'ctx.response.headers'),
        body: body(field(response, 'body', 'ctx.response'), budget, 'ctx.response.body') as string | Uint8Array | undefined,
      };
      changed = true;
    }
    const reply = this.reply;
    if (reply) {
      const h = field(reply, 'headers', 'the reply');
      out.reply = {
        status: status(field(reply, 'status', 'the reply'), 'the reply status'),
        body: body(field(reply, 'body', 'the reply'), budget, 'the reply body'),
        headers: h === undefined ? undefined : headers(h, budget, 'the reply headers') as Record<string, string | string[]>,
      };
      changed = true;
    }
    return changed;
  }
}

/** Runs one call; its timers and fetches end as it answers. */
function call(w: WireCall): CallResult | Promise<CallResult> {
  let prog = programs.get(w[PROGRAM]);
  if (prog === undefined) {
    const full = w[FULL];
    if (full === undefined) return MISSING;
    prog = harden(full);
    programs.set(full.id, prog);
  }
  const c = new Call(w, prog);
  const r = als.run(c.scope, () => c.run(0));
  if (!types.isPromise(r)) { c.scope.end(); return r as CallResult; }
  running.set(c.seq, c);
  return (r as Promise<CallResult>).then((res) => {
    // A call the pool cancelled is no longer read: undefined.
    const wanted = running.delete(c.seq);
    c.scope.end();
    return wanted ? res : undefined;
  }) as Promise<CallResult>;
}

function batch(calls: WireCall[]): void {
  const answers: (number | CallResult)[] = [];
  for (const w of calls) {
    const seq = w[SEQ];
    const r = call(w);
    if (!types.isPromise(r)) { answers.push(seq, r as CallResult); continue; }
    (r as Promise<CallResult | undefined>).then((res) => { if (res !== undefined) post([RESULTS, [seq, res]]); });
  }
  if (answers.length) post([RESULTS, answers]);
}

function check(id: number, fns: WireFn[]): void {
  const problems: string[] = [];
  for (const f of fns) {
    try {
      if (!cache.has(f.id)) cache.set(f.id, compile(f.id, f.source, f.label));
    } catch (err) {
      problems.push(`${f.label} ${(err as Error).message}`);
    }
  }
  post([CHECKED, id, problems]);
}

port.on('message', (m: ToWorker) => {
  switch (m[0]) {
    case BATCH: batch(m[1]); break;
    case PING: post([PONG, m[1]]); break;
    case CANCEL: {
      const c = running.get(m[1]);
      if (c) { running.delete(m[1]); c.scope.end(); }
      break;
    }
    case CHECK: check(m[1], m[2]); break;
    case LIVE: {
      const keep = new Set(m[1]);
      for (const id of cache.keys()) if (!keep.has(id)) cache.delete(id);
      for (const [id, p] of programs) if (p.fns.some((f) => !keep.has(f.id))) programs.delete(id);
      break;
    }
  }
});
// Before READY: loading undici blocks the thread for a while, which a call sent at READY would wait out.
await warmFetch();
post([READY]);
