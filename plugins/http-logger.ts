/**
 * http-logger (APISIX priority 410): entries gather in a batch processor
 * (batch_max_size, inactive_timeout, buffer_duration, retries) and are POSTed
 * to `uri` as a JSON array (`concat_method: json`) or JSON lines (`new_line`).
 * The log phase only queues, after the response is sent: a slow or dead sink
 * never slows or fails a request. What waits for the sink is bounded (10,000
 * entries or 10 batches, whichever is more): past it entries are dropped and
 * the count is logged, where APISIX would keep them all in memory.
 *
 * ```yaml
 * plugins:
 *   http-logger:
 *     uri: http://127.0.0.1:9000/logs
 *     batch_max_size: 100
 *     inactive_timeout: 2
 * ```
 */
import { Agent, request } from 'undici';
import schema from '../schemas/http-logger.json' with { type: 'json' };
import { dropCounter } from './logger/dropped.ts';
import { definePlugin, type Phase, type PluginLogger } from '../src/plugin.ts';
import { BatchProcessor, type BatchConf } from './logger/batch.ts';
import { compileLogFormat, logEntry, type LogConf, type LogFormat } from './logger/entry.ts';

interface Conf extends LogConf, BatchConf {
  uri: string;
  auth_header?: string;
  timeout: number;
  concat_method: 'json' | 'new_line';
  ssl_verify: boolean;
}
/** The processor is reached through a function: the state is frozen at load, the processor is not. */
interface State { conf: Conf; format: LogFormat | undefined; batches: () => BatchProcessor }

const agents = { verify: new Agent({ connect: { rejectUnauthorized: true } }), noVerify: new Agent({ connect: { rejectUnauthorized: false } }) };

/**
 * One processor per place (route, service…), kept across reloads that leave
 * its config unchanged (queued entries survive); a changed config flushes the
 * old one. Bounded by the number of places.
 */
const processors = new Map<string, { json: string; p: BatchProcessor }>();
/** Drops are logged through the last request's logger, at most once a minute per processor. */
const lastLog = new WeakMap<BatchProcessor, { log: PluginLogger; at: number; pending: number; why: string }>();

function body(conf: Conf, entries: readonly unknown[]): string {
  if (entries.length === 1 && conf.batch_max_size === 1) return JSON.stringify(entries[0]);
  return conf.concat_method === 'json' ? JSON.stringify(entries) : entries.map((e) => JSON.stringify(e)).join('\n');
}

function sender(conf: Conf): (entries: readonly unknown[]) => Promise<void> {
  const headers: Record<string, string> = { 'content-type': conf.concat_method === 'json' ? 'application/json' : 'text/plain' };
  if (conf.auth_header) headers.authorization = conf.auth_header;
  const dispatcher = conf.ssl_verify ? agents.verify : agents.noVerify;
  const ms = conf.timeout * 1000;
  return async (entries) => {
    const res = await request(conf.uri, { method: 'POST', headers, body: body(conf, entries), dispatcher, headersTimeout: ms, bodyTimeout: ms, signal: AbortSignal.timeout(ms) });
    await res.body.dump({ limit: 64 << 10 }).catch(() => {});
    if (res.statusCode >= 400) throw new Error(`${conf.uri} answered ${res.statusCode}`);
  };
}

function noteDrop(p: BatchProcessor, n: number, why: string): void {
  const l = lastLog.get(p);
  if (!l) return;
  l.pending += n;
  l.why = why;
  const now = Date.now();
  if (now - l.at < 60_000) return;
  l.log.error('http-logger dropped log entries', { dropped: l.pending, reason: l.why, total_dropped: p.stats.dropped });
  l.at = now;
  l.pending = 0;
}

export default definePlugin<Conf, State>({
  name: 'http-logger',
  version: '1.0.0',
  priority: 410,
  schema,
  init(conf, api) {
    const format = compileLogFormat(conf.log_format);
    const json = JSON.stringify(conf);
    const had = processors.get(api.scope);
    if (had?.json === json) return { conf, format, batches: () => had.p };
    had?.p.flush();
    const dropped = dropCounter(api.metrics, 'http-logger');
    const p: BatchProcessor = new BatchProcessor(conf, sender(conf), (n, why) => { dropped(n); noteDrop(p, n, why); });
    processors.set(api.scope, { json, p });
    return { conf, format, batches: () => p };
  },
  requestBody: (s) => (s.conf.include_req_body ? s.conf.max_req_body_bytes : 0),
  activePhases: (s): Phase[] => (s.conf.include_resp_body ? ['body_filter', 'log'] : ['log']),
  phases: {
    // Declared so that include_resp_body buffers the response for the log phase.
    body_filter() {},
    log(s, ctx) {
      const p = s.batches();
      const l = lastLog.get(p);
      if (!l) lastLog.set(p, { log: ctx.log, at: 0, pending: 0, why: '' });
      else l.log = ctx.log;
      p.push(logEntry(s.conf, s.format, ctx));
    },
  },
});
