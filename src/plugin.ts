/**
 * The plugin contract: what a plugin module exports and what it is handed.
 * Plugins import this file and nothing else of the gateway.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { BlockList, isIP } from 'node:net';
import type { Registry } from 'prom-client';

export const PHASES = ['rewrite', 'access', 'before_proxy', 'header_filter', 'body_filter', 'log'] as const;
export type Phase = (typeof PHASES)[number];

/** A reply that ends the chain; the host writes it. An object body is sent as JSON. */
export interface Reply {
  status: number;
  body?: string | Uint8Array | Record<string, unknown> | unknown[];
  headers?: Record<string, string | string[]>;
}

export interface RequestView {
  method: string;
  /** Path without the query string; rewriting it changes what the upstream receives. */
  path: string;
  /** Parsed on first read; once read, it is what the upstream receives. */
  query: Record<string, string | string[]>;
  headers: IncomingHttpHeaders;
  /** The query string as received (`?a=b`, or ''), whatever plugins do to `query`. */
  readonly search: string;
  /** The client's address: the peer, or read through `trusted_proxies`; real-ip may change it (ctx.setClientAddress). */
  readonly client_ip: string;
  /** `https` when the connection is TLS, or when a trusted proxy says so in X-Forwarded-Proto; `http` otherwise. */
  readonly scheme: 'http' | 'https';
  /**
   * Header `name` (lower case) as the client sent it, before the gateway
   * dropped forwarding headers from untrusted peers or any plugin changed
   * `headers`; repeated fields joined with ", ". For plugins that decide whom
   * to believe themselves (real-ip's trusted_addresses).
   */
  received(name: string): string | undefined;
  /** Present when a plugin on the route asked for the body. */
  body?: Buffer;
}

export interface ResponseView {
  status: number;
  headers: OutgoingHttpHeaders;
  /** Present in body_filter (buffered) or when a plugin replaced it. */
  body?: Buffer | string;
}

export interface Consumer {
  readonly username: string;
}

/** A consumer with its credentials for one auth plugin, as that plugin's `consumerInit` compiled them. */
export interface Credential<T = unknown> {
  readonly consumer: Consumer;
  readonly credential: T;
}

/** The connection and request line as the client sent them (before any rewrite). */
export interface Downstream {
  /** `http` or `https`: the client's connection to the gateway. */
  readonly scheme: string;
  /** Host header, lower-cased, without port (the listener's address when absent). */
  readonly host: string;
  /** The port the client connected to. */
  readonly port: number;
  /** Path and query as received (nginx's `$request_uri`). */
  readonly request_uri: string;
  readonly server_addr: string;
  readonly remote_addr: string;
  readonly remote_port: number;
  /** The port of the gateway's first TLS listener, when it has one (redirect's http_to_https). */
  readonly https_port?: number;
}

export interface PluginLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** What the log phase knows of a finished exchange (nginx's log variables). */
export interface RequestRecord {
  /** When the request arrived, ms since the epoch. */
  readonly start_time: number;
  /** ms from arrival to the last byte sent (or the client leaving). */
  readonly latency: number;
  /** ms from sending the request upstream to the upstream's response head; absent without an upstream. */
  readonly upstream_latency?: number;
  /** `host:port` of the node that answered, if any. */
  readonly upstream?: string;
  /** The status sent; 499 when the client left first. */
  readonly status: number;
  /** Bytes written to the client for this response, head included. */
  readonly response_size: number;
  /** Bytes read from the client's connection for this request (head and body; nginx's `$request_length`). */
  readonly request_size: number;
}

/** Everything a handler can see and change about one request. */
export interface Ctx {
  readonly request: RequestView;
  response?: ResponseView;
  /** Per-request data shared between plugins. */
  vars: Record<string, unknown>;
  /** `config`: the route as written in gateway.yaml, without its upstream (frozen). */
  readonly route: { readonly id: string; readonly uri: string; readonly config?: Readonly<Record<string, unknown>> };
  /** The route's uri and host patterns that matched this request, as written (host '' when the route has none). */
  readonly matched?: { readonly uri: string; readonly host: string };
  /** `config`: the service as written, without its upstream (frozen). */
  readonly service?: { readonly id: string; readonly config?: Readonly<Record<string, unknown>> };
  consumer?: Consumer;
  /** Host header sent upstream, when a plugin overrides pass_host. */
  upstreamHost?: string;
  readonly log: PluginLogger;
  /** For auth plugins: the consumer whose credentials for `plugin` equal `key`. */
  findConsumer(plugin: string, key: string): Consumer | undefined;
  /**
   * Makes `ip` the client address every later step sees (plugins, X-Real-IP,
   * the access log). False, and nothing changes, when `ip` is not an IPv4 or
   * IPv6 address.
   */
  setClientAddress(ip: string): boolean;
  /**
   * Caps this request's body at `bytes` (0: no cap of its own). A body that
   * grows past it while streaming upstream ends the request with 413; the
   * return value is that 413 reply when the declared Content-Length (or a body
   * already read) is over the cap now: return it to end the chain.
   */
  limitRequestBody(bytes: number): Reply | undefined;
  /** Set when the log phase runs. */
  readonly record?: RequestRecord;
  /** For auth plugins: like findConsumer, with the credentials `consumerInit` compiled at load. */
  findCredential<T = unknown>(plugin: string, key: string): Credential<T> | undefined;
  /** Scheme, host, ports and addresses of the client connection (computed when read). */
  readonly downstream: Downstream;
  /**
   * Told about each upstream attempt (retries make several): set by a plugin
   * before the request goes upstream (opentelemetry's client spans). Unset, it costs nothing.
   */
  upstreamAttempts?: UpstreamAttempts;
}

/** Watches one request's upstream attempts; see Ctx.upstreamAttempts. Must not throw. */
export interface UpstreamAttempts {
  /** An attempt on node `host`:`port` is about to be sent; `headers` are its request headers (add to them here). */
  start(host: string, port: number, headers: Record<string, string | string[]>): void;
  /** That attempt ended: `status` of the response head (0 when none came), `error` when it failed. */
  end(status: number, error: unknown): void;
}

export type HandlerResult = Reply | undefined | void;
export type Handler<S> = (conf: S, ctx: Ctx) => HandlerResult | Promise<HandlerResult>;

/** A serverless function as the pool knows it. */
export interface FunctionSource {
  /** Stable across reloads while route, plugin, phase, index and source are unchanged. */
  readonly id: string;
  readonly source: string;
  /** `route "x" plugin "y" rewrite[0]`: names it in errors and logs. */
  readonly label: string;
}

/** The function pool, as plugins see it. */
export interface FunctionHost {
  readonly enabled: boolean;
  readonly defaultTimeoutMs: number;
  /** Compiles each function in a worker; returns one message per function that is not valid. */
  check(fns: readonly FunctionSource[]): Promise<string[]>;
  /** Fixes, at load, what one call runs: `fns` in order, given `conf`, in `phase`. */
  prepare(fns: readonly FunctionSource[], conf: unknown, phase: Phase, opts: { timeoutMs: number; withBody: boolean }): FunctionProgram;
  /** Runs a program in a worker; carries back what its functions changed in ctx. */
  run(program: FunctionProgram, ctx: Ctx): Promise<HandlerResult>;
}

/** A prepared call, opaque to plugins. */
export interface FunctionProgram {
  readonly label: string;
}

/**
 * A named table of keyed cells that every worker of this host shares exactly
 * (rate limits, connection counts, health). Each key holds `slots` numbers;
 * `cells[0]` is the key's expiry (ms since the epoch, 0 = never): a key past
 * it reads as all zeros, and its place may be taken by another key.
 */
export interface SharedTable {
  readonly name: string;
  readonly slots: number;
  readonly capacity: number;
  /**
   * Runs `fn` on `key`'s cells while no other worker can touch them and
   * returns its result. `fn` must be short and synchronous; what it writes
   * into `cells` is the key's new state. Answers undefined, without calling
   * `fn`, when the table is full of live keys (callers decide: refuse or allow).
   */
  update<T>(key: string, fn: (cells: Float64Array, now: number) => T): T | undefined;
  /** A copy of `key`'s cells, or undefined when absent or expired. */
  read(key: string): Float64Array | undefined;
}

/** State shared by every worker of this host, reached by plugins only through `api.shared`. */
export interface SharedState {
  /**
   * The table `name` (the same name is the same table in every worker and
   * across reloads). `slots` counts cells[0] (the expiry): at least 2. A
   * second call with other sizes gets the first sizes.
   */
  table(name: string, opts?: { slots?: number; capacity?: number }): SharedTable;
}

/** What `init` is given when a config is compiled. */
export interface PluginApi {
  /** `route "orders"`, `service "s"`, `global rule "g"`, `consumer "alice"`. */
  readonly where: string;
  /** Same as `where` but as an id fragment safe for keys. */
  readonly scope: string;
  readonly functions: FunctionHost;
  /** Counters and windows every worker of the host shares. */
  readonly shared: SharedState;
  /**
   * The same object for every instance compiled in one config load, and a new
   * one for the next load: a WeakMap key for rules across instances (limit-count's
   * `group` must be configured alike everywhere it is used).
   */
  readonly load: object;
  /**
   * This worker's Prometheus registry (prom-client), the same across reloads:
   * the admin `/metrics` serves it, summed over the host's workers. Register
   * a metric once per registry (a WeakMap keyed by it), not once per load.
   */
  readonly metrics: Registry;
  /** The consumer `username` of the config being loaded (what auth plugins' anonymous_consumer names), or undefined. */
  consumer(username: string): Consumer | undefined;
  /**
   * This plugin's `plugin_metadata` entry (APISIX's plugin-wide settings, also
   * accepted as `plugin_attr`), checked against `metadataSchema` with its
   * defaults applied; the schema's defaults alone when the file has none.
   */
  readonly metadata?: unknown;
}

/** A plugin module's default export. `C` is its config as written, `S` what `init` compiles it to. */
export interface PluginDef<C = any, S = C> {
  name: string;
  version: string;
  /** Higher runs first; ties are broken by name. */
  priority: number;
  /** JSON schema of the plugin's config, with `$id` equal to the name. */
  schema: Record<string, unknown>;
  /** The schema of the plugin's `plugin_metadata` entry (without its `id`); absent: the plugin takes none. */
  metadataSchema?: Record<string, unknown>;
  /** Called once when the gateway stops, after requests in flight ended: flush and release what the plugin holds. */
  close?(): Promise<void>;
  /** For auth plugins: the schema of a consumer's credentials for this plugin. */
  consumerSchema?: Record<string, unknown>;
  /** For auth plugins: the lookup key a consumer's credentials define. */
  consumerKey?(conf: any): string;
  /**
   * For auth plugins: compiles one consumer's credentials once per load
   * (keys imported, secrets decoded); `findCredential` hands the result back.
   * Throw to reject the config (never put the secret in the message).
   */
  consumerInit?(conf: any, api: PluginApi): unknown;
  /** Rules across several fields; return a message when the config is not valid. */
  check?(conf: C): string | undefined | void;
  /**
   * A config (or with `credentials`, a consumer's credentials) that is valid,
   * as APISIX accepts it, but will not work as written: the message is printed
   * as a warning at load, and the file still loads.
   */
  advice?(conf: any, credentials: boolean): string | undefined | void;
  /** Compile once per load; the value returned is what handlers receive as `conf`. */
  init?(conf: C, api: PluginApi): S | Promise<S>;
  /** True when the plugin can answer a request itself, so a route needs no upstream. */
  canReply?: boolean;
  /** Bytes of request body the instance wants buffered into ctx.request.body (0: none). */
  requestBody?(conf: S): number;
  /**
   * The phases this instance acts in, when fewer than `phases` declares. A
   * plugin absent from body_filter keeps responses streamed, so declare it.
   */
  activePhases?(conf: S): readonly Phase[];
  phases: Partial<Record<Phase, Handler<S>>>;
}

export { VERSION } from './version.ts';
export { compileTemplate, KNOWN_REQUEST_VARIABLES, KNOWN_VARIABLES, renderTemplate, variable, type Template, type VarReader } from './vars.ts';
/** Regexes from config: compile them with this (linear time; refused at load when they cannot be). */
export { compileRegex } from './regex.ts';

/**
 * For auth plugins' `anonymous_consumer` (APISIX 3.x): the named consumer,
 * looked up once at load; throws, naming the place, when the file has none.
 */
export function anonymousConsumer(api: PluginApi, name: string | undefined): Consumer | undefined {
  if (name === undefined) return undefined;
  const c = api.consumer(name);
  if (!c) throw new Error(`anonymous_consumer "${name}" on ${api.where} is not a consumer in this file`);
  return c;
}

/**
 * An auth plugin's answer to missing or bad credentials: `reply` (its 401), or,
 * when the route names an anonymous consumer, on as that consumer, after
 * `strip` took out what hide_credentials hides (APISIX 3.x's anonymous_consumer).
 */
export function unauthenticated(ctx: Ctx, anonymous: Consumer | undefined, reply: Reply, strip?: () => void): Reply | undefined {
  if (anonymous === undefined) return reply;
  strip?.();
  ctx.consumer = anonymous;
  return undefined;
}

/** Typed identity helper: a plugin module's default export. */
export function definePlugin<C = any, S = C>(def: PluginDef<C, S>): PluginDef<C, S> {
  return def;
}

/** `headers: { set, add, remove }` as written in proxy-rewrite and response-rewrite. */
export interface HeaderChanges { set?: Record<string, string | number>; add?: Record<string, string | number>; remove?: string[] }

/** HeaderChanges compiled at load: lower-cased names, string values. */
export interface HeaderOps { readonly set: readonly [string, string][]; readonly add: readonly [string, string][]; readonly remove: readonly string[] }

/** Compiles header changes once, at load. */
export function compileHeaderOps(c: HeaderChanges | undefined): HeaderOps {
  const pairs = (m: Record<string, string | number> | undefined): [string, string][] => Object.entries(m ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]);
  return { set: pairs(c?.set), add: pairs(c?.add), remove: (c?.remove ?? []).map((h) => h.toLowerCase()) };
}

/** Applies compiled header changes: remove, then set (replacing), then add (appending). */
export function applyHeaderOps(ops: HeaderOps, headers: Record<string, string | string[] | number | undefined>): void {
  for (const name of ops.remove) delete headers[name];
  for (const [k, v] of ops.set) headers[k] = v;
  for (const [k, v] of ops.add) {
    const prev = headers[k];
    headers[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [String(prev), v];
  }
}

/** A list of addresses and CIDRs (IPv4 and IPv6), compiled once into a node:net BlockList. */
export interface IpMatcher {
  /** Whether `ip` is in the list; undefined when `ip` is not an address at all (callers fail closed). */
  match(ip: string): boolean | undefined;
}

/**
 * Compiles addresses and CIDRs at load; throws naming the first entry that is
 * neither. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, how a dual-stack
 * listener reports IPv4 peers) match as their IPv4 form.
 */
export function compileIpMatcher(list: readonly string[]): IpMatcher {
  const blocks = new BlockList();
  for (const entry of list) {
    const slash = entry.indexOf('/');
    const addr = slash < 0 ? entry : entry.slice(0, slash);
    const family = isIP(addr);
    const bits = slash < 0 ? '' : entry.slice(slash + 1);
    if (family === 0 || (slash >= 0 && (!/^\d{1,3}$/.test(bits) || Number(bits) > (family === 6 ? 128 : 32)))) throw new Error(`invalid ip address: ${entry}`);
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (slash < 0) blocks.addAddress(addr, type);
    else blocks.addSubnet(addr, Number(bits), type);
  }
  return {
    match(ip) {
      const plain = ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
      const family = isIP(plain);
      return family === 0 ? undefined : blocks.check(plain, family === 6 ? 'ipv6' : 'ipv4');
    },
  };
}

/**
 * Header names and values a plugin's config may set, checked at load: a
 * schema says `"format": "header-name"` (or `propertyNames: { format:
 * "header-name" }` for a map of headers) and `"format": "header-value"`.
 * A name is an RFC 9110 token; a value holds tab, visible ASCII or obs-text
 * (what Node sends), never CR, LF or another control character.
 */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
export const HEADER_FORMATS = Object.freeze({
  'header-name': { test: (s: string) => HEADER_NAME.test(s), text: 'is not a valid header name (letters, digits and !#$%&\'*+-.^_`|~ only; no spaces)' },
  'header-value': { test: (s: string) => HEADER_VALUE.test(s), text: 'is not a valid header value (no CR, LF or other control characters)' },
});
