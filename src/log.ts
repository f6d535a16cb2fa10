/**
 * JSON lines on stdout. Lines are batched and written once per tick so that the
 * access log costs one string concatenation per request, not one syscall.
 */

type Level = 'info' | 'warn' | 'error';

let buffer = '';
let scheduled = false;
let sink: (chunk: string) => void = (chunk) => { process.stdout.write(chunk); };

function flush(): void {
  scheduled = false;
  if (buffer === '') return;
  const chunk = buffer;
  buffer = '';
  sink(chunk);
}

function write(line: string): void {
  buffer += line + '\n';
  if (buffer.length > 65536) flush();
  else if (!scheduled) { scheduled = true; setImmediate(flush); }
}

/** Replace where log lines go (tests capture them); returns the previous sink. */
export function setLogSink(fn: (chunk: string) => void): (chunk: string) => void {
  flush();
  const prev = sink;
  sink = fn;
  return prev;
}

/** Write out whatever is buffered (before exit). */
export function flushLogs(): void { flush(); }

/** One structured log line. `fields` are merged at top level. */
export function log(level: Level, msg: string, fields?: Record<string, unknown>): void {
  const entry: Record<string, unknown> = { time: now(), level, msg };
  if (fields) for (const k in fields) entry[k] = fields[k];
  write(safeStringify(entry));
}

let lastMs = 0;
let lastIso = '';
/** The ISO time, formatted at most once per millisecond. */
function now(): string {
  const ms = Date.now();
  if (ms !== lastMs) { lastMs = ms; lastIso = new Date(ms).toISOString(); }
  return lastIso;
}

/** The access entry, written once per request. Kept flat and cheap. */
export function accessLog(route: string, method: string, path: string, status: number, upstream: string, latencyMs: number, requestId: string | undefined): void {
  write(`{"time":"${now()}","level":"info","msg":"access","route":${JSON.stringify(route)},"method":"${method}","path":${JSON.stringify(path)},"status":${status},"upstream":${JSON.stringify(upstream)},"latency_ms":${latencyMs.toFixed(3)}${requestId ? `,"request_id":${JSON.stringify(requestId)}` : ''}}`);
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
