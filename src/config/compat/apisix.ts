/**
 * An APISIX standalone `apisix.yaml`, as it is, turned into Turnpike's shape
 * before the schema sees it: ids for id-less items, `plugin_configs` merged
 * into routes, sections APISIX ignores dropped with a warning each. Pure: the
 * parsed document in (changed in place), notes out, and `origin` to map a path
 * of the result back to where it was written, so messages point at the file.
 *
 * ```yaml
 * plugin_configs:
 *   - id: 1
 *     plugins: { cors: }
 * routes:
 *   - uri: /hello          # id "arr_1", as APISIX numbers it
 *     plugin_config_id: 1
 *     upstream: { nodes: { "127.0.0.1:1980": 1 }, type: roundrobin }
 * #END
 * ```
 */
import type { PathSeg } from '../source.ts';
import { isMap, Notes, type CompatNote } from './notes.ts';
import { normalizePluginMap } from './plugins.ts';
import { normalizeUpstream } from './upstream.ts';

export interface CompatResult {
  errors: CompatNote[];
  warnings: CompatNote[];
  /** Where a path of the normalised document was written in the file. */
  origin(path: readonly PathSeg[]): PathSeg[];
}

/** Sections of APISIX's config.yaml that people paste into apisix.yaml; APISIX ignores them there. */
const IGNORED_SECTIONS = ['deployment', 'apisix', 'nginx_config', 'etcd', 'plugin_attr', 'discovery', 'graphql', 'ext-plugin', 'wasm', 'stream_plugins'];
/** APISIX resources Turnpike does not have yet. */
const UNSUPPORTED_SECTIONS: Record<string, string> = {
  stream_routes: 'stream_routes (TCP/UDP proxying) are not supported yet',
  protos: 'protos (gRPC transcoding) are not supported yet',
  secrets: 'secrets (secret managers) are not supported yet: use ${{ENV}} variables',
};
const META = ['desc', 'labels', 'create_time', 'update_time'];
/** Item lists APISIX numbers itself when an item has no id. */
const NUMBERED = ['routes', 'services', 'upstreams', 'plugin_configs', 'global_rules', 'ssls'] as const;
const APISIX_METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE']);

/** The id APISIX gives the item at `index` (0-based) of a list when it has none. */
export function positionalId(index: number): string {
  return `arr_${index + 1}`;
}

/** Normalises an APISIX-shaped document in place. */
export function normalizeApisix(doc: Record<string, unknown>): CompatResult {
  const notes = new Notes();
  const fromAttr = attrToMetadata(doc, notes);
  topLevel(doc, notes);
  for (const kind of NUMBERED) {
    const list = doc[kind];
    if (!Array.isArray(list)) continue;
    list.forEach((item, i) => {
      if (!isMap(item)) return;
      if (item.id === undefined || item.id === null) item.id = positionalId(i);
      for (const k of META) delete item[k];
      normalizePluginMap(item.plugins, [kind, i, 'plugins'], notes);
      if (kind === 'upstreams') normalizeUpstream(item, [kind, i], notes);
      else if (item.upstream !== undefined) normalizeUpstream(item.upstream, [kind, i, 'upstream'], notes);
      if (kind === 'plugin_configs' || kind === 'global_rules') delete item.name;
    });
  }
  if (Array.isArray(doc.consumers)) {
    doc.consumers.forEach((c, i) => {
      if (!isMap(c)) return;
      for (const k of META) delete c[k];
      if (c.group_id !== undefined) notes.error(['consumers', i, 'group_id'], 'consumer groups are not supported yet: put the group\'s plugins on the consumer', true);
      normalizePluginMap(c.plugins, ['consumers', i, 'plugins'], notes);
    });
  }
  if (Array.isArray(doc.services)) doc.services.forEach((s, i) => { if (isMap(s)) service(s, i, notes); });
  const merged = mergePluginConfigs(doc, notes);
  const kept = Array.isArray(doc.routes) ? routes(doc, notes) : [];
  return {
    errors: notes.errors,
    warnings: notes.warnings,
    origin(path) {
      const attr = path[0] === 'plugin_metadata' && typeof path[1] === 'number' ? fromAttr.get(path[1]) : undefined;
      if (attr !== undefined) return ['plugin_attr', attr, ...path.slice(2)];
      if (path[0] !== 'routes' || typeof path[1] !== 'number') return [...path];
      const i = kept[path[1]] ?? path[1];
      const from = path[2] === 'plugins' && typeof path[3] === 'string' ? merged.get(i)?.get(path[3]) : undefined;
      return from !== undefined ? ['plugin_configs', from, ...path.slice(2)] : ['routes', i, ...path.slice(2)];
    },
  };
}

/** plugin_attr entries (APISIX's config.yaml) Turnpike reads as the plugin's plugin_metadata. */
const ATTR_AS_METADATA = ['opentelemetry'];

/**
 * APISIX before 3.12 read opentelemetry's collector settings from config.yaml's
 * plugin_attr; later versions from plugin_metadata. Both spellings work here:
 * plugin_attr.opentelemetry becomes a plugin_metadata entry (one written there wins).
 */
function attrToMetadata(doc: Record<string, unknown>, notes: Notes): Map<number, string> {
  const moved = new Map<number, string>();
  const attr = doc.plugin_attr;
  if (!isMap(attr)) return moved;
  for (const name of ATTR_AS_METADATA) {
    if (!isMap(attr[name])) continue;
    const list = Array.isArray(doc.plugin_metadata) ? doc.plugin_metadata : (doc.plugin_metadata = []);
    if (list.some((m) => isMap(m) && m.id === name)) notes.warn(['plugin_attr', name], `plugin_attr.${name} is ignored: plugin_metadata has an entry for ${name}`, true);
    else moved.set(list.push({ ...attr[name], id: name }) - 1, name);
    delete attr[name];
  }
  // Emptied by the move: nothing left to warn about.
  if (moved.size && Object.keys(attr).length === 0) delete doc.plugin_attr;
  return moved;
}

function topLevel(doc: Record<string, unknown>, notes: Notes): void {
  for (const k of Object.keys(doc)) {
    if (IGNORED_SECTIONS.includes(k)) notes.warn([k], `"${k}" belongs in APISIX's config.yaml; Turnpike ignores it here`, true);
    else if (k.startsWith('x-')) notes.warn([k], `"${k}" is an extension key (YAML anchors): ignored`, true);
    else if (k === 'plugins' && Array.isArray(doc[k])) notes.warn([k], 'the top-level plugins list is not needed: Turnpike enables every plugin it has; ignored', true);
    else if (UNSUPPORTED_SECTIONS[k]) notes.warn([k], `${UNSUPPORTED_SECTIONS[k]}; ignored`, true);
    else continue;
    delete doc[k];
  }
}

function service(s: Record<string, unknown>, i: number, notes: Notes): void {
  if (s.hosts !== undefined) notes.error(['services', i, 'hosts'], 'hosts on a service are not supported yet: put them on its routes', true);
  if (s.enable_websocket !== undefined) {
    notes.warn(['services', i, 'enable_websocket'], 'enable_websocket on a service is not implemented: set it on its routes; ignored', true);
    delete s.enable_websocket;
  }
}

/** Route i (0-based, as written) → plugin name → index of the plugin_config it came from. */
type Merged = Map<number, Map<string, number>>;

/** APISIX's merge: a plugin the route sets itself wins over the plugin_config's. */
function mergePluginConfigs(doc: Record<string, unknown>, notes: Notes): Merged {
  const merged: Merged = new Map();
  const configs = Array.isArray(doc.plugin_configs) ? doc.plugin_configs : [];
  const byId = new Map<string, number>();
  configs.forEach((c, j) => { if (isMap(c)) byId.set(String(c.id), j); });
  if (Array.isArray(doc.routes)) {
    doc.routes.forEach((r, i) => {
      if (!isMap(r) || r.plugin_config_id === undefined) return;
      const j = byId.get(String(r.plugin_config_id));
      if (j === undefined) {
        notes.error(['routes', i, 'plugin_config_id'], `plugin_config "${r.plugin_config_id}" is not defined in plugin_configs`);
      } else {
        const from = (configs[j] as Record<string, unknown>).plugins;
        if (isMap(from)) {
          const own = isMap(r.plugins) ? r.plugins : (r.plugins = {});
          const names = new Map<string, number>();
          for (const [name, conf] of Object.entries(from)) {
            if (name in own) continue;
            own[name] = structuredClone(conf);
            names.set(name, j);
          }
          merged.set(i, names);
        }
      }
      delete r.plugin_config_id;
    });
  }
  delete doc.plugin_configs;
  return merged;
}

/** Route fixes; returns, for each route kept, its index as written (disabled routes are left out). */
function routes(doc: Record<string, unknown>, notes: Notes): number[] {
  const list = doc.routes as unknown[];
  const kept: number[] = [];
  const out: unknown[] = [];
  list.forEach((r, i) => {
    if (isMap(r)) route(r, i, notes);
    if (isMap(r) && r.status === 0) {
      notes.warn(['routes', i, 'status'], `route "${r.id}" is disabled (status: 0): not served`, true);
      return;
    }
    if (isMap(r)) delete r.status;
    kept.push(i);
    out.push(r);
  });
  doc.routes = out;
  return kept;
}

function route(r: Record<string, unknown>, i: number, notes: Notes): void {
  const at: PathSeg[] = ['routes', i];
  if (r.uri === '*') r.uri = '/*';
  if (Array.isArray(r.uris)) r.uris = r.uris.map((u) => (u === '*' ? '/*' : u));
  if (Array.isArray(r.methods)) {
    r.methods.forEach((m, k) => {
      if (typeof m === 'string' && !APISIX_METHODS.has(m) && APISIX_METHODS.has(m.toUpperCase())) notes.error([...at, 'methods', k], `method "${m}" must be upper case: "${m.toUpperCase()}"`);
    });
  }
  // Lua that decides matching: ignoring it would let through requests the route was meant to refuse.
  for (const k of ['filter_func', 'script', 'script_id']) {
    if (r[k] === undefined) continue;
    notes.error([...at, k], `route field "${k}" cannot be honoured: it is Lua, which Turnpike does not run`, true);
    delete r[k]; // said once, not again as an unknown field
  }
  if (r.timeout !== undefined) {
    notes.warn([...at, 'timeout'], 'timeout on a route is not implemented: set it on the upstream; ignored', true);
    delete r.timeout;
  }
  for (const k of ['service_protocol', 'upstream_id_from_ctx']) delete r[k];
}
