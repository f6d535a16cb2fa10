/**
 * The world a function sees, in the worker. Runs after SES `lockdown()`: every
 * intrinsic (Array, Object.prototype, Promise, Date, Math…) is frozen and
 * shared, `Function.prototype.constructor` is inert, so no function can change
 * what another sees or reach the worker's own scope. Each function gets its own
 * Compartment whose globals are only what the contract grants: no `process`,
 * `require`, `import()`, file or module API, and every endowment is hardened.
 *
 * Work a call starts (timers, fetches) belongs to its Scope, found through
 * AsyncLocalStorage, and ends when the call answers or is cancelled.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { closeSync, constants, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import type { LogLine } from './messages.ts';

declare const harden: <T>(v: T) => T;
declare class Compartment {
  constructor(opts: { globals: Record<string, unknown>; __options__: true });
  evaluate(src: string): unknown;
}

/** Timers one call may hold at once. */
const MAX_TIMERS = 1000;
/** Log lines one call may write, and their length. */
const MAX_LINES = 100;
const MAX_LINE = 8192;

/** What one call holds; `end()` releases all of it. */
export class Scope {
  readonly logs: LogLine[] = [];
  /** Label of the function running now. */
  fn = '';
  ended = false;
  readonly timers = new Map<number, NodeJS.Timeout>();
  abort: AbortController | undefined;
  /** Ends the call's timers, intervals and fetches; later console lines are dropped. */
  end(): void {
    this.ended = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.abort?.abort(new Error('the call has ended'));
  }
  line(level: LogLine['level'], args: unknown[]): void {
    if (!this.ended && this.logs.length < MAX_LINES) this.logs.push({ level, msg: text(args).slice(0, MAX_LINE), fn: this.fn });
  }
}

export const als = new AsyncLocalStorage<Scope>();

function live(what: string): Scope {
  const s = als.getStore();
  if (!s || s.ended) throw new Error(`${what} is only available while a call runs`);
  return s;
}

const text = (args: unknown[]): string => args.map((a) => (typeof a === 'string' ? a : safeJson(a))).join(' ');
function safeJson(v: unknown): string {
  if (v instanceof Error) return v.stack ?? v.message;
  try { return JSON.stringify(v) ?? String(v); } catch { return String(v); }
}

let timerIds = 0;
function timer(repeat: boolean) {
  return (fn: unknown, ms?: unknown, ...args: unknown[]): number => {
    const s = live(repeat ? 'setInterval' : 'setTimeout');
    if (typeof fn !== 'function') throw new TypeError('the callback must be a function');
    if (s.timers.size >= MAX_TIMERS) throw new Error(`a call may hold at most ${MAX_TIMERS} timers`);
    const id = ++timerIds;
    const run = () => {
      if (!repeat) s.timers.delete(id);
      (fn as (...a: unknown[]) => void)(...args);
    };
    s.timers.set(id, repeat ? setInterval(run, Number(ms) || 0) : setTimeout(run, Number(ms) || 0));
    return id;
  };
}
/** Clears a timer of the current call only: a call cannot touch another's. */
function clear(id: unknown): void {
  const s = als.getStore();
  const t = s?.timers.get(id as number);
  if (t) { clearTimeout(t); s!.timers.delete(id as number); }
}

type Init = { method?: unknown; headers?: unknown; body?: unknown; redirect?: unknown };

function fetchHeaders(h: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (h === undefined || h === null) return out;
  const pairs = Array.isArray(h) ? h : Object.entries(h as object);
  for (const [k, v] of pairs as [unknown, unknown][]) out[String(k)] = String(v);
  return out;
}

function fetchBody(b: unknown): string | Uint8Array | undefined {
  if (b === undefined || b === null || typeof b === 'string') return b ?? undefined;
  if (ArrayBuffer.isView(b)) return new Uint8Array(b.buffer, b.byteOffset, b.byteLength).slice();
  if (b instanceof ArrayBuffer) return new Uint8Array(b).slice();
  throw new TypeError('fetch body must be a string, a Uint8Array or an ArrayBuffer');
}

/**
 * fetch for functions: strings and bytes in, a small hardened response out (no
 * undici object reaches a function). Aborted when the call ends.
 */
async function guardedFetch(input: unknown, init?: Init): Promise<unknown> {
  const s = live('fetch');
  const ac = (s.abort ??= new AbortController());
  const redirect = init?.redirect === 'manual' || init?.redirect === 'error' ? init.redirect : 'follow';
  const opts = { method: init?.method === undefined ? 'GET' : String(init.method), headers: fetchHeaders(init?.headers), body: fetchBody(init?.body) as BodyInit | undefined, redirect, signal: ac.signal } as const;
  let res: Response;
  try {
    res = await realFetch(String(input), opts);
  } catch (err) {
    throw new TypeError(`fetch failed: ${reason(err)}`);
  }
  const headers = new Map<string, string>();
  res.headers.forEach((v, k) => headers.set(k, v));
  let used = false;
  const body = async (): Promise<ArrayBuffer> => {
    if (used) throw new TypeError('the body was already read');
    used = true;
    try { return await res.arrayBuffer(); } catch (err) { throw new TypeError(`fetch failed reading the body: ${reason(err)}`); }
  };
  const decode = (b: ArrayBuffer) => new TextDecoder().decode(b);
  return harden({
    ok: res.ok, status: res.status, statusText: res.statusText, url: res.url, redirected: res.redirected,
    headers: {
      get: (k: unknown) => headers.get(String(k).toLowerCase()) ?? null,
      has: (k: unknown) => headers.has(String(k).toLowerCase()),
      entries: () => [...headers],
      forEach: (f: (v: string, k: string) => void) => { for (const [k, v] of headers) f(v, k); },
    },
    arrayBuffer: body,
    bytes: async () => new Uint8Array(await body()),
    text: async () => decode(await body()),
    json: async () => JSON.parse(decode(await body())),
  });
}

function reason(err: unknown): string {
  const e = err as { message?: unknown; cause?: { message?: unknown } };
  return String(e?.cause?.message ?? e?.message ?? err);
}

/** Largest file a function may read through readFileSync. */
const MAX_FUNCTION_FILE = 16 << 20;

/** `p` with its symlinks resolved, or `p` itself when it does not exist (the read then fails as ENOENT). */
function real(p: string): string {
  try { return realpathSync(p); } catch { return p; }
}

/**
 * The one file API: the paths in serverless.allow_fs_read, read whole. The
 * check is on the real path (a symlink inside an allowed directory must not
 * reach outside it); only regular files up to MAX_FUNCTION_FILE are read, and
 * the open never waits (a FIFO would block the function's thread).
 */
function fileReader(allowedPaths: readonly string[]) {
  const allowed = allowedPaths.map(real);
  const denied = (p: string) => Object.assign(new Error(`access to ${p} is not allowed (serverless.allow_fs_read)`), { code: 'ERR_ACCESS_DENIED' });
  return (file: unknown, encoding?: unknown): string | Buffer => {
    const asked = path.resolve(String(file));
    const p = real(asked);
    if (!allowed.some((a) => p === a || p.startsWith(a.endsWith('/') ? a : a + '/'))) throw denied(asked);
    let fd: number | undefined;
    try {
      fd = openSync(p, constants.O_RDONLY | constants.O_NONBLOCK);
      const st = fstatSync(fd);
      if (!st.isFile()) throw Object.assign(new Error(`${asked} is not a regular file`), { code: 'EINVAL' });
      if (st.size > MAX_FUNCTION_FILE) throw Object.assign(new Error(`${asked} is larger than ${MAX_FUNCTION_FILE} bytes`), { code: 'EFBIG' });
      const buf = Buffer.alloc(st.size);
      let len = 0;
      for (let n = -1; n !== 0 && len < buf.length;) len += n = readSync(fd, buf, len, buf.length - len, len);
      const out = buf.subarray(0, len);
      return encoding === undefined ? out : out.toString(String(encoding) as BufferEncoding);
    } catch (err) {
      const e = err as { code?: unknown; message?: unknown };
      throw Object.assign(new Error(String(e.message)), { code: String(e.code) });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  };
}

let endowments: Record<string, unknown> | undefined;
let realFetch: typeof fetch;

/** Freezes the realm (SES lockdown) and prepares the globals every function gets. */
export function lockRealm(allowFsRead: readonly string[]): void {
  (globalThis as unknown as { lockdown(o: object): void }).lockdown({
    errorTaming: 'unsafe', stackFiltering: 'verbose', consoleTaming: 'unsafe', overrideTaming: 'moderate', domainTaming: 'unsafe', reporting: 'none',
  });
  const sink = (level: LogLine['level']) => (...args: unknown[]) => { als.getStore()?.line(level, args); };
  const cryptoApi = globalThis.crypto;
  // Loads undici now, at the worker's start, rather than in the first call that fetches.
  realFetch = globalThis.fetch;
  endowments = harden({
    console: { log: sink('info'), info: sink('info'), debug: sink('info'), trace: sink('info'), warn: sink('warn'), error: sink('error'), dir: sink('info'), table: sink('info') },
    fetch: guardedFetch,
    setTimeout: timer(false), setInterval: timer(true), clearTimeout: clear, clearInterval: clear,
    queueMicrotask: (f: unknown) => { if (typeof f !== 'function') throw new TypeError('the callback must be a function'); void Promise.resolve().then(f as () => void); },
    crypto: { getRandomValues: <T extends ArrayBufferView>(a: T) => cryptoApi.getRandomValues(a as never) as T, randomUUID: () => cryptoApi.randomUUID() },
    fs: { readFileSync: fileReader(allowFsRead.map((p) => path.resolve(p))) },
    URL, URLSearchParams, TextEncoder, TextDecoder, Buffer, atob, btoa, structuredClone,
    Date, Math,
  });
}

/** Labels of compiled functions by the name their code carries in stacks (a sourceURL cannot hold spaces). */
const labels = new Map<string, string>();
const FRAME = /turnpike-fn\/([\w-]+):(\d+)/g;

/** A stack with each function's frames named by its label, lines counted in its own source. */
export function tidyStack(stack: string): string {
  return stack.replace(FRAME, (all, id: string, line: string) => {
    const label = labels.get(id);
    return label === undefined ? all : `${label}:${Number(line) - 1}`;
  });
}

/** Runs fetch once (a data: URL, no network), so that the first call that fetches does not load undici. */
export async function warmFetch(): Promise<void> {
  try { await (await realFetch('data:,')).arrayBuffer(); } catch { /* a call will report it */ }
}

/** The line of the first frame of `id` in a stack, counted in the function's own source. */
function lineIn(err: unknown, id: string): number | undefined {
  const m = new RegExp(`turnpike-fn/${id}:(\\d+)`).exec(String((err as Error)?.stack ?? ''));
  return m ? Number(m[1]) - 1 : undefined;
}

const WRAPS = [(s: string) => `(function () { return (\n${s}\n); })`, (s: string) => `(function () {\n${s}\n})`];

/** The wrapper that compiles the source; throws `does not compile (line N): …` if none does. */
function wrapped(source: string, label: string): string {
  let first: unknown;
  for (const wrap of WRAPS) {
    const text = wrap(source);
    try { new vm.Script(text, { filename: label, lineOffset: -1 }); return text; } catch (err) { first ??= err; }
  }
  const looksLikeExpression = /^\s*(async\b|function\b|\()/.test(source) && !/\breturn\b/.test(source.split('\n')[0]);
  let bodyErr: unknown;
  try { new vm.Script(WRAPS[1](source), { filename: label, lineOffset: -1 }); } catch (e) { bodyErr = e; }
  const shown = ((looksLikeExpression ? first : undefined) ?? bodyErr ?? first) as Error;
  // An unclosed construct is reported on the wrapper's closing line: show the source's last.
  const lines = source.replace(/\n+$/, '').split('\n').length;
  const m = /:(\d+)(?::\d+)?\n/.exec(String(shown?.stack ?? ''));
  const line = m ? Math.min(Math.max(Number(m[1]), 1), lines) : undefined;
  throw new Error(`does not compile${line ? ` (line ${line})` : ''}: ${shown.message}`);
}

/**
 * Compiles a source into its function, in a compartment of its own: a body
 * that returns a function, or a function expression. Runs the code before the
 * `return` (closure state).
 */
export function compile(id: string, source: string, label: string): Function {
  const text = wrapped(source, label);
  const c = new Compartment({ globals: { ...endowments }, __options__: true });
  let wrapper: unknown;
  try {
    labels.set(id, label);
    wrapper = c.evaluate(`${text}\n//# sourceURL=turnpike-fn/${id}\n`);
  } catch (err) {
    throw new Error(`is refused by the sandbox: ${tidyStack(String((err as Error).message))}`);
  }
  let value: unknown;
  try {
    value = (wrapper as () => unknown)();
  } catch (err) {
    const line = lineIn(err, id);
    throw new Error(`threw while loading${line ? ` (line ${line})` : ''}: ${(err as Error)?.message ?? String(err)}`);
  }
  if (typeof value !== 'function') {
    throw new Error(`must return a function (\`return function (conf, ctx) { ... }\`), but it returned ${value === null ? 'null' : typeof value}`);
  }
  return value;
}
