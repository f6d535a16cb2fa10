/**
 * Plugin entries as APISIX accepts them: `cors:` with no value, `_meta`,
 * `disable: true`, the flat `headers: {Name: value}` of the rewrite plugins,
 * and fields of APISIX's own plugin schemas that Turnpike does not implement.
 * Serverless functions written in Lua are reported here, in the first round.
 */
import type { PathSeg } from '../source.ts';
import { APISIX_FIELDS_TO_HONOUR, APISIX_PLUGIN_FIELDS } from './fields.ts';
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
    if (meta !== undefined) {
      notes.warn([...pat, '_meta'], `plugin ${name}: _meta (${isMap(meta) ? Object.keys(meta).join(', ') : 'value'}) is not implemented: ignored`, true);
      delete conf._meta;
    }
    if (conf.disable === false) delete conf.disable;
    if (name === 'proxy-rewrite' || name === 'response-rewrite') flatHeaders(conf);
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
