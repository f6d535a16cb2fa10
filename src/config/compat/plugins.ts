/**
 * Plugin entries as APISIX accepts them: `cors:` with no value, `disable: true`
 * (or `_meta.disable`; the rest of `_meta` is compiled in ../plugin-meta.ts), the flat `headers: {Name: value}` of the rewrite plugins,
 * and fields of APISIX's own plugin schemas that Turnpike does not implement.
 * Serverless functions written in Lua are reported here, in the first round.
 */
import type { PathSeg } from '../source.ts';
import { APISIX_FIELDS_TO_HONOUR, APISIX_PLUGIN_FIELDS, APISIX_PLUGINS } from './fields.ts';
import { didYouMean } from './suggest.ts';
import { isMap, type Notes } from './notes.ts';

/** Where the README explains how to port a Lua function. */
export const LUA_HELP = 'this is Lua; Turnpike runs JavaScript: see "Lua → JavaScript" in README.md (and MIGRATING.md)';

const FUNCTION_PLUGINS = new Set(['serverless-pre-function', 'serverless-post-function', 'pre-function', 'post-function']);

/** Lua, not JavaScript: `ngx.`, `local x =`, `then`, `end` closing a function. */
export function looksLikeLua(src: string): boolean {
  // Keywords inside string literals say nothing ("..., then ..." in a JavaScript string).
  const code = src.replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`/g, '""').replace(/--[^\n]*/g, '');
  if (/\bngx\.|\brequire\s*\(?\s*["']apisix|\bkong\.(request|response|service|log|ctx)\b/.test(src)) return true;
  if (/\blocal\s+(function\s+)?[A-Za-z_]/.test(code) || /(^|[^.\w$])then\b(?=[ \t]*($|[A-Za-z_]))(?![ \t]*(in|instanceof)\b)/m.test(code) || /~=/.test(code)) return true;
  return /^\s*return\s+function\s*\([^)]*\)/.test(code) && !code.includes('{') && /\bend\s*$/.test(code);
}

function functionSources(name: string, conf: Record<string, unknown>, at: PathSeg[]): { at: PathSeg[]; src: string }[] {
  const out: { at: PathSeg[]; src: string }[] = [];
  const lists = name.startsWith('serverless-') ? ['functions'] : Object.keys(conf);
  for (const k of lists) {
    const v = conf[k];
    if (!Array.isArray(v)) continue;
    v.forEach((s, i) => { if (typeof s === 'string') out.push({ at: [...at, k, i], src: s }); });
  }
  return out;
}

/** A header map in APISIX's older flat form becomes `{set, remove}`; an empty value removes the header. */
function flatHeaders(conf: Record<string, unknown>): void {
  const h = conf.headers;
  if (!isMap(h)) return;
  const keys = Object.keys(h);
  if (keys.length === 0 || keys.every((k) => k === 'set' || k === 'add' || k === 'remove')) return;
  const set: Record<string, unknown> = {};
  const remove: string[] = [];
  for (const k of keys) {
    if (h[k] === '' || h[k] === null) remove.push(k);
    else set[k] = h[k];
  }
  conf.headers = remove.length ? { set, remove } : { set };
}

/** The X-Forwarded-* headers forward-auth sends the authorization service itself (plugins/forward-auth.ts). */
const FORWARD_AUTH_OWN = new Set(['x-forwarded-proto', 'x-forwarded-method', 'x-forwarded-host', 'x-forwarded-uri', 'x-forwarded-for']);

/**
 * forward-auth `request_headers` naming an X-Forwarded-* header the gateway
 * sends itself (files copy oauth2-proxy's docs): APISIX would pass the
 * client's copy, which a client can forge; Turnpike sends its own, read
 * through trusted_proxies. Taken out of the list with a warning.
 */
function gatewayForwardedHeaders(conf: Record<string, unknown>, at: PathSeg[], notes: Notes): void {
  const list = conf.request_headers;
  if (!Array.isArray(list)) return;
  const own = list.filter((h) => typeof h === 'string' && FORWARD_AUTH_OWN.has(h.toLowerCase()));
  if (!own.length) return;
  conf.request_headers = list.filter((h) => !own.includes(h));
  notes.warn([...at, 'request_headers'], `plugin forward-auth: request_headers ${own.map((h) => `"${h}"`).join(', ')}: the gateway sends its own (from the connection and trusted_proxies), never the client's: taken out of the list`, true);
}

/** Normalises a `plugins:` map in place; `at` is its path in the file. */
export function normalizePluginMap(map: unknown, at: PathSeg[], notes: Notes): void {
  if (!isMap(map)) return;
  for (const name of Object.keys(map)) {
    const pat = [...at, name];
    if (map[name] === null) map[name] = {};
    const conf = map[name];
    if (!isMap(conf)) continue;
    const meta = conf._meta;
    const disabled = conf.disable === true || (isMap(meta) && meta.disable === true);
    if (disabled) {
      notes.warn(pat, `plugin ${name} is disabled (disable: true): not run`, true);
      delete map[name];
      continue;
    }
    if (conf.disable === false) delete conf.disable;
    if (name === 'proxy-rewrite' || name === 'response-rewrite') flatHeaders(conf);
    if (name === 'forward-auth') gatewayForwardedHeaders(conf, pat, notes);
    if (FUNCTION_PLUGINS.has(name)) {
      for (const f of functionSources(name, conf, pat)) if (looksLikeLua(f.src)) notes.error(f.at, LUA_HELP);
    }
  }
}

/**
 * Fields APISIX's schema defines for a plugin and Turnpike's does not: removed
 * with a warning naming them. `known` is Turnpike's field list for the plugin
 * (from its registered schema), so a field a plugin gains stops warning.
 */
export function dropApisixOnlyFields(name: string, conf: unknown, known: ReadonlySet<string>, at: PathSeg[], notes: Notes): void {
  const apisix = APISIX_PLUGIN_FIELDS[name];
  if (!apisix || !isMap(conf)) return;
  const honour = APISIX_FIELDS_TO_HONOUR[name] ?? [];
  for (const k of Object.keys(conf)) {
    if (known.has(k) || !apisix.includes(k) || honour.includes(k)) continue;
    notes.warn([...at, k], `plugin ${name}: field "${k}" is APISIX's and Turnpike does not implement it: ignored`, true);
    delete conf[k];
  }
}

/**
 * What to say of a plugin name Turnpike has no module for, once per name:
 * APISIX's plugins are "not available yet", a near miss of a Turnpike plugin
 * is a typo, anything else is a custom plugin to load through plugin_paths.
 * `places` is how many plugin maps name it (the message sits at the first).
 */
export function unknownPluginMessage(name: string, known: Iterable<string>, places: number): string {
  const more = places > 1 ? ` (used in ${places} places; said once, at the first)` : '';
  const typo = didYouMean(name, known);
  if (APISIX_PLUGINS.has(name) && !typo) return `plugin "${name}" is not available in Turnpike (yet)${more}`;
  if (typo) return `unknown plugin "${name}"${typo}${more}`;
  return `unknown plugin "${name}": neither Turnpike's nor APISIX's; a custom plugin is loaded through plugin_paths${more}`;
}
