/**
 * The log entry of file-logger and http-logger: APISIX's default entry
 * (request, response, server, upstream, ids, client_ip, start_time, latencies)
 * or the user's `log_format` (names → `$var` texts), compiled once at load.
 * The default entry never holds the client's Authorization or
 * Proxy-Authorization value.
 */
import { hostname } from 'node:os';
import { compileTemplate, renderTemplate, VERSION, type Ctx, type Template } from '../../src/plugin.ts';

/** The fields both loggers share, as written in gateway.yaml. */
export interface LogConf {
  log_format?: Record<string, unknown>;
  include_req_body: boolean;
  include_resp_body: boolean;
  max_req_body_bytes: number;
  max_resp_body_bytes: number;
}

/** A compiled log_format: each name with its template, or the fixed value written when not a string. */
export type LogFormat = readonly { readonly name: string; readonly template?: Template; readonly value?: unknown }[];

const HOST = hostname();

/** Compiles `log_format`; throws naming the field whose `$var` is unknown. */
export function compileLogFormat(format: Record<string, unknown> | undefined): LogFormat | undefined {
  if (!format) return undefined;
  return Object.entries(format).map(([name, v]) => {
    if (typeof v !== 'string') return { name, value: v };
    try {
      return { name, template: compileTemplate(v) };
    } catch (err) {
      throw new Error(`log_format.${name}: ${(err as Error).message}`);
    }
  });
}

/**
 * Credentials a log store must not keep: their values become "REDACTED", as
 * Kong's serializer does (APISIX logs them as sent). A `log_format` that
 * names `$http_authorization` still gets it: that is the operator's choice.
 */
const REDACTED_HEADERS = ['authorization', 'proxy-authorization'] as const;

/** The request headers for the default entry, copied only when one must be redacted. */
function loggedHeaders(h: Record<string, string | string[] | undefined>): Record<string, string | string[] | undefined> {
  if (h.authorization === undefined && h['proxy-authorization'] === undefined) return h;
  const out = { ...h };
  for (const k of REDACTED_HEADERS) if (out[k] !== undefined) out[k] = 'REDACTED';
  return out;
}

function bodyText(b: Buffer | string | undefined, max: number): string | undefined {
  if (b === undefined) return undefined;
  const buf = typeof b === 'string' ? Buffer.from(b) : b;
  return buf.subarray(0, max).toString('utf8');
}

/** One request's entry, as APISIX's get_full_log builds it, or from log_format. */
export function logEntry(conf: LogConf, format: LogFormat | undefined, ctx: Ctx): Record<string, unknown> {
  if (format) {
    const out: Record<string, unknown> = {};
    // An unset variable logs as null, as APISIX's does.
    for (const f of format) out[f.name] = f.template ? renderTemplate(f.template, ctx).text || null : f.value;
    return out;
  }
  const rec = ctx.record;
  const req = ctx.request;
  const host = String(req.headers.host ?? '');
  const entry: Record<string, unknown> = {
    request: {
      url: `http://${host}${req.path}`,
      uri: req.path,
      method: req.method,
      headers: loggedHeaders(req.headers),
      querystring: req.query,
      size: Number(req.headers['content-length'] ?? 0) || 0,
      ...(conf.include_req_body && req.body ? { body: bodyText(req.body, conf.max_req_body_bytes) } : {}),
    },
    response: {
      status: rec?.status ?? ctx.response?.status,
      headers: ctx.response?.headers ?? {},
      size: rec?.response_size ?? 0,
      ...(conf.include_resp_body && ctx.response?.body !== undefined ? { body: bodyText(ctx.response.body, conf.max_resp_body_bytes) } : {}),
    },
    server: { hostname: HOST, version: VERSION },
    upstream: rec?.upstream,
    service_id: ctx.service?.id ?? '',
    route_id: ctx.route.id,
    consumer: ctx.consumer ? { username: ctx.consumer.username } : undefined,
    client_ip: req.client_ip,
    start_time: rec ? Math.round(rec.start_time) : Date.now(),
    latency: rec?.latency,
    upstream_latency: rec?.upstream_latency,
    apisix_latency: rec ? rec.latency - (rec.upstream_latency ?? 0) : undefined,
  };
  return entry;
}
