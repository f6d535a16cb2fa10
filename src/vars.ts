/**
 * Request variables by APISIX's (nginx's) names, for every plugin that takes
 * `$var` in its config (rate-limit keys, log formats, redirect targets…):
 * one definition. A name is compiled to a reader once, at load; an unknown
 * name is a load error, never a silent empty string.
 */
import type { ExprVariables } from './expr.ts';
import type { Ctx } from './plugin.ts';

/** Reads one variable of a request; undefined when it is not set. */
export type VarReader = (ctx: Ctx) => string | undefined;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : Array.isArray(v) ? v.join(', ') : typeof v === 'number' ? String(v) : undefined);
const ms = (n: number | undefined): string | undefined => (n === undefined ? undefined : (n / 1000).toFixed(3));

const NAMED: Record<string, VarReader> = {
  remote_addr: (ctx) => ctx.request.client_ip,
  consumer_name: (ctx) => ctx.consumer?.username,
  route_id: (ctx) => ctx.route.id,
  service_id: (ctx) => ctx.service?.id,
  uri: (ctx) => ctx.request.path,
  request_method: (ctx) => ctx.request.method,
  host: (ctx) => str(ctx.request.headers.host)?.replace(/:\d+$/, '').replace(/\.$/, '').toLowerCase(),
};

/**
 * The connection and the request line as the client sent them: for headers
 * and log formats; rate-limit keys keep the set above (requestOnly).
 */
const CONNECTION: Record<string, VarReader> = {
  request_uri: (ctx) => ctx.downstream.request_uri,
  args: (ctx) => queryOf(ctx.downstream.request_uri),
  scheme: (ctx) => ctx.downstream.scheme,
  remote_port: (ctx) => String(ctx.downstream.remote_port),
  server_addr: (ctx) => ctx.downstream.server_addr,
  server_port: (ctx) => String(ctx.downstream.port),
};

function queryOf(uri: string): string {
  const q = uri.indexOf('?');
  return q < 0 ? '' : uri.slice(q + 1);
}

/** Known once the response is under way (header_filter on) or done (log): meaningless for a rate-limit key or a redirect. */
const RESPONSE: Record<string, VarReader> = {
  status: (ctx) => str(ctx.record?.status ?? ctx.response?.status),
  upstream_addr: (ctx) => ctx.record?.upstream,
  request_time: (ctx) => ms(ctx.record?.latency),
  upstream_response_time: (ctx) => ms(ctx.record?.upstream_latency),
  bytes_sent: (ctx) => str(ctx.record?.response_size),
  time_iso8601: (ctx) => new Date(ctx.record?.start_time ?? Date.now()).toISOString(),
  msec: (ctx) => ((ctx.record?.start_time ?? Date.now()) / 1000).toFixed(3),
};

function cookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

const FAMILIES = 'http_<header>, arg_<name>, cookie_<name>';
/** The names `variable` knows, for error messages. */
export const KNOWN_VARIABLES = `${[...Object.keys(NAMED), ...Object.keys(CONNECTION), ...Object.keys(RESPONSE)].join(', ')}, ${FAMILIES}`;
/** The names `variable(name, true)` knows: what a request has before it is answered. */
export const KNOWN_REQUEST_VARIABLES = `${Object.keys(NAMED).join(', ')}, ${FAMILIES}`;

/**
 * The reader of one variable (without its `$`), or undefined when Turnpike
 * does not know it; with `requestOnly`, also undefined for the variables of
 * the response (status, upstream_addr, request_time…) and of the connection
 * (request_uri, scheme, ports…), which rate-limit keys do not take.
 */
export function variable(name: string, requestOnly = false): VarReader | undefined {
  if (Object.hasOwn(NAMED, name)) return NAMED[name];
  if (Object.hasOwn(CONNECTION, name)) return requestOnly ? undefined : CONNECTION[name];
  if (Object.hasOwn(RESPONSE, name)) return requestOnly ? undefined : RESPONSE[name];
  const raw = rawVariable(name);
  if (raw) return (ctx) => str(raw(ctx));
  const m = /^cookie_(.+)$/.exec(name);
  if (m) {
    const c = m[1];
    return (ctx) => cookie(str(ctx.request.headers.cookie), c);
  }
  return undefined;
}

/** Known before a route is chosen: what a route's `vars` may test (not the consumer, the route, nor the response). */
function matchVariable(name: string): VarReader | undefined {
  if (name === 'consumer_name' || name === 'route_id' || name === 'service_id' || Object.hasOwn(RESPONSE, name)) return undefined;
  return variable(name);
}

/** A header (`http_x`) or query argument (`arg_x`) as the request holds it: one value, or several when repeated. */
function rawVariable(name: string): ((ctx: Ctx) => unknown) | undefined {
  let m = /^http_([a-z0-9_]+)$/i.exec(name);
  if (m) {
    const header = m[1].toLowerCase().replace(/_/g, '-');
    return (ctx) => ctx.request.headers[header];
  }
  m = /^arg_(.+)$/.exec(name);
  if (m) {
    const arg = m[1];
    return (ctx) => ctx.request.query[arg];
  }
  return undefined;
}

/** Every value of a repeated header (`http_x`) or query argument (`arg_x`), in order. */
function variableValues(name: string): ((ctx: Ctx) => readonly string[]) | undefined {
  const raw = rawVariable(name);
  if (!raw) return undefined;
  return (ctx) => { const v = raw(ctx); return Array.isArray(v) ? v.map(String) : v === undefined ? [] : [String(v)]; };
}

/** The variables of a route's `vars` (src/expr.ts). */
export const ROUTE_VARIABLES: ExprVariables = {
  read: matchVariable,
  values: variableValues,
  known: `${Object.keys(NAMED).filter((n) => matchVariable(n)).join(', ')}, ${Object.keys(CONNECTION).join(', ')}, ${FAMILIES}`,
};

/**
 * The variables of a plugin's `_meta.filter` (config/plugin-meta.ts): every
 * one Turnpike knows, read when the plugin runs (the consumer after auth,
 * the response in the response phases; unset before).
 */
export const FILTER_VARIABLES: ExprVariables = {
  read: (name) => variable(name),
  values: variableValues,
  known: KNOWN_VARIABLES,
};

const EMPTY: VarReader = () => undefined;
// `\$` is not a variable: the text keeps it as written.
const TOKEN = /(?<!\\)(?:\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+))/g;

/** A text with `$var` / `${var}` parts, compiled: literal strings and readers in order. */
export type Template = readonly (string | VarReader)[];

/**
 * Compiles a text with `$var` and `${var}`; throws naming the first unknown
 * variable, or with `unknownAsEmpty` (APISIX's resolve_var) reads it as ''.
 */
export function compileTemplate(text: string, requestOnly = false, unknownAsEmpty = false): Template {
  const parts: (string | VarReader)[] = [];
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    const name = m[1] ?? m[2];
    const read = variable(name, requestOnly) ?? (unknownAsEmpty ? EMPTY : undefined);
    if (!read) throw new Error(`"$${name}" is not a variable Turnpike knows (known: ${requestOnly ? KNOWN_REQUEST_VARIABLES : KNOWN_VARIABLES})`);
    if (m.index > last) parts.push(text.slice(last, m.index));
    parts.push(read);
    last = m.index + m[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

/** A template's text for one request (unset variables read as ''); `resolved` counts the set ones. */
export function renderTemplate(t: Template, ctx: Ctx): { text: string; resolved: number } {
  let text = '';
  let resolved = 0;
  for (const p of t) {
    if (typeof p === 'string') { text += p; continue; }
    const v = p(ctx);
    if (v) { text += v; resolved++; }
  }
  return { text, resolved };
}
