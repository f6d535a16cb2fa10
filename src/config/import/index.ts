/**
 * `turnpike import`: a Kong declarative file or an apisix.yaml in, a
 * gateway.yaml out, with everything that could not be carried listed by line.
 * The result is loaded as `validate` would; what still fails (a plugin whose
 * Turnpike schema refuses the mapped config, say) is taken out and listed too,
 * so the output always validates.
 */
import path from 'node:path';
import { stringify } from 'yaml';
import type { ConfigIssue } from '../../errors.ts';
import { normalizeApisix } from '../compat/apisix.ts';
import { isMap } from '../compat/notes.ts';
import { loadConfigText, type LoadOptions } from '../load.ts';
import { builtinPlugins } from '../plugins.ts';
import { parseSource, type PathSeg } from '../source.ts';
import { convertKong, type Dropped } from './kong.ts';

/** One thing not carried over, at a line of the input. */
export interface DroppedLine { line: number; what: string; why: string }

export type ImportResult =
  | { ok: true; format: 'kong' | 'apisix'; output: string; dropped: DroppedLine[]; notes: DroppedLine[] }
  | { ok: false; message: string };

/** Rounds of "validate, take out what fails" before giving up on an item-by-item repair. */
const MAX_ROUNDS = 8;

/** Imports `text` (read from `file`); `functions` is what loading the result needs. */
export async function importText(text: string, file: string, functions: LoadOptions['functions']): Promise<ImportResult> {
  const src = parseSource(text);
  if (src.yamlErrors.length) {
    const e = src.yamlErrors[0];
    return { ok: false, message: `${file}:${e.line}:${e.col}: YAML: ${e.message}` };
  }
  const input = src.data;
  if (!isMap(input)) return { ok: false, message: `${file}: not a Kong declarative file or an apisix.yaml (expected a mapping)` };
  const known = new Set((await builtinPlugins()).keys());
  let format: 'kong' | 'apisix';
  let doc: Record<string, unknown>;
  const dropped: { path: PathSeg[]; what: string; why: string }[] = [];
  /** Carried, but made up or carried differently: said in the output, not a failure. */
  const notes: Dropped[] = [];
  /** Output object → where it was written in the input (for items taken out after validation). */
  const origins = new Map<object, PathSeg[]>();
  if (looksLikeKong(input)) {
    format = 'kong';
    const res = convertKong(input, (n) => known.has(n));
    doc = res.doc;
    dropped.push(...res.dropped);
    notes.push(...res.notes);
    for (const [k, v] of res.origins) origins.set(k, v);
  } else if (['routes', 'services', 'upstreams', 'consumers', 'global_rules', 'plugin_configs'].some((k) => k in input)) {
    format = 'apisix';
    doc = input;
    const compat = normalizeApisix(doc);
    // Its errors come back when the output is loaded, and take out the plugin or item they are in.
    for (const n of compat.warnings) dropped.push({ path: compat.origin(n.path), what: formatWhat(compat.origin(n.path)), why: n.message });
    (doc.routes as unknown[] | undefined)?.forEach((r, i) => { if (isMap(r)) origins.set(r, compat.origin(['routes', i])); });
  } else {
    return { ok: false, message: `${file}: not a Kong declarative file (no _format_version) or an apisix.yaml (no routes, services, upstreams or consumers)` };
  }
  for (const kind of ['routes', 'services', 'consumers', 'global_rules'] as const) {
    (doc[kind] as unknown[] | undefined)?.forEach((x, i) => { if (isMap(x) && !origins.has(x)) origins.set(x, [kind, i]); });
  }

  let output = stringify(doc);
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const res = await loadConfigText(output, path.join(path.dirname(file), 'imported.yaml'), { env: {}, functions });
    if (res.ok) break;
    if (!prune(doc, res.issues, dropped, origins)) {
      return { ok: false, message: `the imported config does not validate and could not be repaired:\n${res.issues.map((i) => `${i.path}: ${i.message}`).join('\n')}` };
    }
    output = stringify(doc);
  }
  const atLines = (list: Dropped[]) => list.map((d) => ({ line: src.position(d.path, true).line, what: d.what, why: d.why })).sort((a, b) => a.line - b.line);
  const lines = atLines(dropped);
  const noteLines = atLines(notes);
  const comment = (d: DroppedLine) => `#   ${path.basename(file)}:${d.line}: ${d.what}: ${d.why}`.replace(/\n/g, ' ');
  const header = [
    `# Imported by \`turnpike import\` from ${path.basename(file)} (${format === 'kong' ? 'Kong declarative format' : 'APISIX standalone'}).`,
    ...(lines.length ? [`# Not carried over (${lines.length}):`, ...lines.map(comment)] : ['# Everything was carried over.']),
    ...(noteLines.length ? [`# Notes (${noteLines.length}):`, ...noteLines.map(comment)] : []),
    '',
  ].join('\n');
  return { ok: true, format, output: `${header}\n${output}`, dropped: lines, notes: noteLines };
}

/**
 * Kong's declarative format: `_format_version`, or a decK file without it
 * (`_info`, `_workspace`, `_konnect`; services with a url, host or nested
 * routes; routes with paths), none of which an apisix.yaml has.
 */
function looksLikeKong(doc: Record<string, unknown>): boolean {
  if (['_format_version', '_info', '_workspace', '_konnect'].some((k) => k in doc)) return true;
  const items = (k: string) => (Array.isArray(doc[k]) ? (doc[k] as unknown[]).filter(isMap) : []);
  return items('services').some((s) => 'url' in s || 'host' in s || 'routes' in s || 'protocol' in s)
    || items('routes').some((r) => ('paths' in r || 'service' in r) && !('uri' in r || 'uris' in r));
}

/** `routes[0].plugins.cors` from a path. */
function formatWhat(p: readonly PathSeg[]): string {
  return p.map((s, i) => (typeof s === 'number' ? `[${s}]` : i ? `.${s}` : s)).join('');
}

/** `routes[0].plugins.cors.x` → ['routes', 0, 'plugins', 'cors', 'x']. */
function parsePath(s: string): PathSeg[] {
  const out: PathSeg[] = [];
  for (const m of s.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]);
  return out;
}

/** `route "users"`, `consumer "alice"`; an item with neither (a listener) by its place and port. */
function itemName(kind: string, index: number, item: Record<string, unknown>): string {
  const name = item.id ?? item.username;
  if (name !== undefined) return `${kind.replace(/s$/, '')} "${String(name)}"`;
  return `${kind}[${index}]${item.port !== undefined ? ` (port ${String(item.port)})` : ''}`;
}

/** Takes out what each issue points at (a plugin, else its whole item); false when nothing could be. */
function prune(doc: Record<string, unknown>, issues: ConfigIssue[], dropped: Dropped[], origins: Map<object, PathSeg[]>): boolean {
  const removals: { list: unknown[]; index: number }[] = [];
  let changed = false;
  for (const issue of issues) {
    const p = parsePath(issue.path);
    const [kind, index] = p;
    if (p.length === 1 && typeof kind === 'string' && kind in doc) {
      // A top-level key the gateway does not know (an APISIX file's own extension): taken out whole.
      delete doc[kind];
      dropped.push({ path: [kind], what: kind, why: issue.message });
      changed = true;
      continue;
    }
    const list = typeof kind === 'string' ? doc[kind] : undefined;
    if (!Array.isArray(list) || typeof index !== 'number' || !isMap(list[index])) continue;
    const item = list[index] as Record<string, unknown>;
    const from = origins.get(item) ?? [kind, index];
    if (p[2] === 'plugins' && typeof p[3] === 'string' && isMap(item.plugins) && p[3] in item.plugins) {
      delete item.plugins[p[3]];
      if (!Object.keys(item.plugins).length) delete item.plugins;
      dropped.push({ path: [...from, 'plugins', p[3]], what: `plugin ${p[3]} of ${itemName(String(kind), index, item)}`, why: issue.message });
      changed = true;
    } else if (!removals.some((r) => r.list === list && r.index === index)) {
      removals.push({ list, index });
      dropped.push({ path: from, what: itemName(String(kind), index, item), why: issue.message });
    }
  }
  for (const r of removals.sort((a, b) => b.index - a.index)) { r.list.splice(r.index, 1); changed = true; }
  for (const [k, v] of Object.entries(doc)) if (Array.isArray(v) && !v.length && removals.some((r) => r.list === v)) delete doc[k];
  // A route whose service was taken out has nothing to send to.
  const services = new Set(((doc.services as Record<string, unknown>[] | undefined) ?? []).map((s) => String(s.id)));
  if (Array.isArray(doc.routes)) {
    doc.routes = doc.routes.filter((r) => {
      if (!isMap(r) || r.service_id === undefined || services.has(String(r.service_id))) return true;
      dropped.push({ path: origins.get(r) ?? ['routes'], what: `route "${String(r.id)}"`, why: `its service "${String(r.service_id)}" was not carried over` });
      changed = true;
      return false;
    });
  }
  return changed;
}
