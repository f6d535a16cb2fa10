/**
 * JSON lines on stdout. Lines are batched and written once per tick so that the
 * access log costs one string concatenation per request, not one syscall. A
 * worker thread batches for longer (`delayMs`): each batch is a message to the
 * main thread, and one per event-loop turn cost a message per request or two.
 */

type Level = 'info' | 'warn' | 'error';

let buffer = '';
let scheduled = false;
let delayMs = 0;
let sink: (chunk: string) => void = (chunk) => { process.stdout.write(chunk); };

function flush(): void {
  scheduled = false;
  if (buffer === '') return;
  const chunk = buffer;
  buffer = '';
  sink(chunk);
}

function later(): void {
  if (buffer.length > 65536) flush();
  else if (!scheduled) {
    scheduled = true;
    if (delayMs > 0) setTimeout(flush, delayMs).unref();
    else setImmediate(flush);
  }
}

function write(line: string): void {
  buffer += line + '\n';
  later();
}

/**
 * Replace where log lines go (tests capture them); returns the previous sink.
 * `delayMs`: how long lines may wait to be batched (0: until the next turn of
 * the event loop). Warnings and errors never wait.
 */
export function setLogSink(fn: (chunk: string) => void, opts: { delayMs?: number } = {}): (chunk: string) => void {
  flush();
  const prev = sink;
  sink = fn;
  delayMs = opts.delayMs ?? 0;
  return prev;
}

/** Log lines written elsewhere (a worker thread's batch), passed through this thread's sink. */
export function writeLogLines(chunk: string): void {
  buffer += chunk;
  later();
}

/** Write out whatever is buffered (before exit). */
export function flushLogs(): void { flush(); }

/** One structured log line. `fields` are merged at top level. */
export function log(level: Level, msg: string, fields?: Record<string, unknown>): void {
  const entry: Record<string, unknown> = { time: now(), level, msg };
  if (fields) for (const k in fields) entry[k] = fields[k];
  write(safeStringify(entry));
  // Out at once: a warning may be the last thing a thread says before it dies.
  if (level !== 'info') flush();
}

let lastMs = 0;
let lastSecond = -1;
let secondPrefix = '';
let lastIso = '';
/**
 * The ISO time. Date#toISOString goes through printf in V8 (about 6,000
 * instructions); this formats the second once and appends milliseconds.
 */
function now(): string {
  const ms = Date.now();
  if (ms === lastMs) return lastIso;
  lastMs = ms;
  const second = Math.floor(ms / 1000);
  if (second !== lastSecond) {
    lastSecond = second;
    secondPrefix = new Date(second * 1000).toISOString().slice(0, 20);
  }
  const frac = ms - second * 1000;
  lastIso = `${secondPrefix}${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}Z`;
  return lastIso;
}

/** Characters JSON must escape, and surrogates (JSON.stringify decides which ones are lone). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
/** `s` as a JSON string; most need no escaping, and JSON.stringify is a call into C++. */
function quote(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/** Milliseconds with three decimals, without Number#toFixed (a C++ runtime call). */
function millis(ms: number): string {
  const us = Math.round(ms * 1000);
  const whole = Math.floor(us / 1000);
  const frac = us - whole * 1000;
  return `${whole}.${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}`;
}

/**
 * The access entry, written once per request. Kept flat and cheap: built as
 * one string, no object and no JSON.stringify unless the path needs escaping.
 * `method` comes from Node's HTTP parser, which accepts only token characters.
 * `client` is the client address as the request's plugins left it (real-ip).
 */
export function accessLog(route: string, method: string, path: string, status: number, upstream: string, latencyMs: number, requestId: string | undefined, client?: string): void {
  write(`{"time":"${now()}","level":"info","msg":"access","route":${quote(route)},"method":"${method}","path":${quote(path)},"status":${status},"upstream":${quote(upstream)},"latency_ms":${millis(latencyMs)}${requestId ? `,"request_id":${quote(requestId)}` : ''}${client ? `,"client":${quote(client)}` : ''}}`);
}

function safeStringify(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, val) => {
      if (val instanceof Error) return { name: val.name, message: val.message, code: (val as { code?: unknown }).code, stack: val.stack };
      if (typeof val === 'bigint') return String(val);
      return val;
    });
  } catch {
    return JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'unloggable entry' });
  }
}
