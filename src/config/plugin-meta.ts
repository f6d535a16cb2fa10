/**
 * APISIX's `_meta` on a plugin entry (apisix/plugin.lua, schema_def.lua
 * plugin_injected_schema), compiled at load:
 *
 *   plugins:
 *     key-auth:
 *       _meta:
 *         priority: 3000                  # its place in this chain, instead of the plugin's own
 *         filter: [["arg_debug", "~=", "1"]]   # runs only for requests that match (route vars' language)
 *         error_response: { message: denied }  # the body of any 4xx/5xx reply it gives
 *
 * `disable: true` drops the plugin (compat/plugins.ts). `pre_function` is Lua: refused.
 * As in APISIX, the filter is evaluated once per request, the first time the
 * plugin would run, and its answer holds for the plugin's later phases.
 */
import { compileExpr, ExprError, type Predicate } from '../expr.ts';
import type { Ctx, Handler, HandlerResult, Phase, Reply } from '../plugin.ts';
import { FILTER_VARIABLES } from '../vars.ts';
import { isMap } from './compat/notes.ts';
import { LUA_HELP } from './compat/plugins.ts';
import type { IssueList } from './issues.ts';
import type { PathSeg } from './source.ts';

/** What `_meta` changes for one plugin instance. */
export interface PluginMeta {
  priority?: number;
  /** Whether the plugin runs for a request: the filter's answer, computed once per request for all its phases. */
  filter?: Predicate;
  errorResponse?: string | Readonly<Record<string, unknown>>;
}

const FIELDS = ['disable', 'error_response', 'filter', 'pre_function', 'priority'];
/** The phases in which a plugin can answer the request (where APISIX applies error_response). */
const REPLY_PHASES: ReadonlySet<Phase> = new Set(['rewrite', 'access', 'before_proxy']);
const isThenable = (v: unknown): v is PromiseLike<HandlerResult> => v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';

/**
 * Takes `_meta` off a plugin's `conf` (the plugin's own schema does not know
 * it) and compiles it; its mistakes go to `issues` at their place.
 */
export function takeMeta(name: string, conf: unknown, at: readonly PathSeg[], issues: IssueList): PluginMeta | undefined {
  if (!isMap(conf) || !Object.hasOwn(conf, '_meta')) return undefined;
  const meta = conf._meta;
  delete conf._meta;
  const here = [...at, '_meta'];
  if (!isMap(meta)) {
    issues.add('GW_ERR_CONFIG_PLUGIN', here, `plugin ${name}: _meta must be a mapping (${FIELDS.join(', ')})`);
    return undefined;
  }
  const out: PluginMeta = {};
  for (const k of Object.keys(meta)) {
    if (!FIELDS.includes(k)) issues.add('GW_ERR_CONFIG_PLUGIN', [...here, k], `plugin ${name}: _meta has no field "${k}" (it has ${FIELDS.join(', ')})`, true);
  }
  const { priority, filter, error_response: errorResponse, pre_function: pre, disable } = meta;
  if (disable !== undefined && typeof disable !== 'boolean') issues.add('GW_ERR_CONFIG_PLUGIN', [...here, 'disable'], `plugin ${name}: _meta.disable must be true or false`);
  if (priority !== undefined) {
    if (Number.isSafeInteger(priority)) out.priority = priority as number;
    else issues.add('GW_ERR_CONFIG_PLUGIN', [...here, 'priority'], `plugin ${name}: _meta.priority must be an integer`);
  }
  if (errorResponse !== undefined) {
    if (typeof errorResponse === 'string' || isMap(errorResponse)) out.errorResponse = errorResponse;
    else issues.add('GW_ERR_CONFIG_PLUGIN', [...here, 'error_response'], `plugin ${name}: _meta.error_response must be a string or a mapping`);
  }
  if (filter !== undefined) {
    try {
      out.filter = once(compileExpr(filter, FILTER_VARIABLES));
    } catch (err) {
      if (!(err instanceof ExprError)) throw err;
      issues.add('GW_ERR_CONFIG_PLUGIN', [...here, 'filter', ...err.at], `plugin ${name}: _meta.filter: ${err.message}`);
    }
  }
  if (pre !== undefined) issues.add('GW_ERR_CONFIG_PLUGIN', [...here, 'pre_function'], `plugin ${name}: _meta.pre_function: ${LUA_HELP}; run the code in a serverless-pre-function instead`);
  return out.priority === undefined && !out.filter && out.errorResponse === undefined ? undefined : out;
}

/** A phase handler that honours `meta` (filter, error_response); `fn` itself when meta changes nothing there. */
export function withMeta<S>(fn: Handler<S>, meta: PluginMeta | undefined, phase: Phase): Handler<S> {
  const filter = meta?.filter;
  const body = meta && REPLY_PHASES.has(phase) ? meta.errorResponse : undefined;
  if (!filter && body === undefined) return fn;
  const run: Handler<S> = body === undefined ? fn : (conf, ctx) => {
    const r = fn(conf, ctx);
    return isThenable(r) ? Promise.resolve(r).then((v) => withErrorBody(v, body)) : withErrorBody(r as HandlerResult, body);
  };
  if (!filter) return run;
  return (conf, ctx) => (filter(ctx) ? run(conf, ctx) : undefined);
}

/** The filter's answer for a request, computed once (the plugin's first phase) and kept for its others. */
function once(filter: Predicate): Predicate {
  const seen = new WeakMap<Ctx, boolean>();
  return (ctx) => {
    let ok = seen.get(ctx);
    if (ok === undefined) seen.set(ctx, (ok = filter(ctx)));
    return ok;
  };
}

/**
 * A reply of status 400 or more with `body` as its body, whatever the plugin
 * said (so that a client cannot tell why it was refused); the plugin's
 * content-type goes with its body (a mapping is sent as JSON).
 */
function withErrorBody(r: HandlerResult, body: string | Readonly<Record<string, unknown>>): HandlerResult {
  if (!r || typeof r !== 'object' || typeof r.status !== 'number' || r.status < 400) return r;
  let headers: Reply['headers'];
  if (r.headers) {
    headers = {};
    for (const k of Object.keys(r.headers)) if (k.toLowerCase() !== 'content-type') headers[k] = r.headers[k];
  }
  return { status: r.status, headers, body: body as Reply['body'] };
}
