/**
 * Check, the second stage of a load: the document against the gateway schema
 * and every plugin's own, plugin modules loaded, ids unique and references
 * defined. Adds issues; compiles nothing.
 */
import path from 'node:path';
import schema from '../../schemas/gateway.schema.json' with { type: 'json' };
import type { PluginDef } from '../plugin.ts';
import type { IssueList } from './issues.ts';
import type { GatewayDoc, PluginMap, UpstreamDoc } from './model.ts';
import { loadPlugins } from './plugins.ts';
import type { PathSeg } from './source.ts';
import { hashKeyProblem, parseTrustedProxies } from './upstream.ts';
import { NO_FILES, type FileSet } from './ssl-files.ts';
import { checkUpstreamTls } from './upstream-tls.ts';
import { SchemaSet } from './validate.ts';
import { routeFilterProblems } from './route-filter.ts';
import { takeMeta, type PluginMeta } from './plugin-meta.ts';
import { normalizeApisix } from './compat/apisix.ts';
import { Notes } from './compat/notes.ts';
import { dropApisixOnlyFields, unknownPluginMessage } from './compat/plugins.ts';
import { closest } from './compat/suggest.ts';

/** The top-level field names a plugin schema defines. */
function schemaFields(schema: Record<string, unknown>): Set<string> {
  const props = schema.properties;
  return new Set(props && typeof props === 'object' ? Object.keys(props) : []);
}

/** Where a plugin map sits: a global rule, service, consumer or route. */
export interface Place { where: string; scope: string; at: PathSeg[]; map: PluginMap | undefined; consumer: boolean }

/** What compile needs from a checked document; `metadata`: each plugin's plugin_metadata, defaults applied. */
export interface Checked {
  doc: GatewayDoc; plugins: Map<string, PluginDef>; places: Place[]; metadata: Map<string, unknown>;
  /** Each place's plugins' `_meta`, compiled (by scope, then plugin name). */
  metas: Map<string, Map<string, PluginMeta>>;
}

/** The file's own schema never changes: compiled once (~15 ms a load on 2 cores), unlike plugins' schemas, which may. */
const GATEWAY_SCHEMA = new SchemaSet();

export interface CheckOptions {
  pause: () => void | Promise<void>;
  /** How long a user plugin module may take to import (PLUGIN_IMPORT_TIMEOUT_MS when absent). */
  pluginImportTimeoutMs?: number;
  /** The files the config names (ssl-files.ts), already read. */
  files?: FileSet;
}

/** Checks parsed data; undefined when `issues` says why it is not a valid gateway.yaml. */
export async function checkConfig(data: unknown, file: string, issues: IssueList, opts: CheckOptions): Promise<Checked | undefined> {
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    issues.add('GW_ERR_CONFIG_SCHEMA', [], 'the file must be a mapping with routes, services, upstreams, consumers');
    return undefined;
  }
  applyCompat(data as Record<string, unknown>, issues);
  for (const p of GATEWAY_SCHEMA.validate('gateway', schema, data, [])) issues.add('GW_ERR_CONFIG_SCHEMA', p.path, p.message, p.atKey);
  await opts.pause();
  const doc = data as GatewayDoc;
  const schemaOk = issues.size === 0;
  try {
    const { plugins, metas } = await checkPlugins(doc, file, issues, opts.pluginImportTimeoutMs);
    const metadata = checkMetadata(doc, plugins, issues);
    checkReferences(doc, issues);
    checkUpstreamTls(doc, file, issues, opts.files ?? NO_FILES);
    return issues.size ? undefined : { doc, plugins, places: placesOf(doc), metadata, metas };
  } catch (err) {
    // The checks assume a schema-valid shape; on a malformed one the schema errors already say why.
    if (schemaOk) throw err;
    return undefined;
  }
}

/** APISIX's forms to Turnpike's (compat/apisix.ts): its errors and warnings at their written positions, later paths mapped back. */
function applyCompat(data: Record<string, unknown>, issues: IssueList): void {
  const compat = normalizeApisix(data);
  for (const e of compat.errors) issues.addWritten('GW_ERR_CONFIG_UNSUPPORTED', e.path, e.message, e.atKey);
  for (const w of compat.warnings) issues.warn(w.path, w.message, w.atKey, true);
  issues.remap(compat.origin);
}

/** Every plugin map of the document, in file order of kind. */
function placesOf(doc: GatewayDoc): Place[] {
  const places: Place[] = [];
  doc.global_rules?.forEach((g, i) => places.push({ where: `global rule "${g.id}"`, scope: `global:${g.id}`, at: ['global_rules', i, 'plugins'], map: g.plugins, consumer: false }));
  doc.services?.forEach((s, i) => places.push({ where: `service "${s.id}"`, scope: `service:${s.id}`, at: ['services', i, 'plugins'], map: s.plugins, consumer: false }));
  doc.consumers?.forEach((c, i) => places.push({ where: `consumer "${c.username}"`, scope: `consumer:${c.username}`, at: ['consumers', i, 'plugins'], map: c.plugins, consumer: true }));
  doc.routes?.forEach((r, i) => places.push({ where: `route "${r.id}"`, scope: `route:${r.id}`, at: ['routes', i, 'plugins'], map: r.plugins, consumer: false }));
  return places;
}

/** Loads plugin modules, then checks every instance against its plugin's schema and check(). */
async function checkPlugins(doc: GatewayDoc, file: string, issues: IssueList, importTimeoutMs?: number): Promise<{ plugins: Map<string, PluginDef>; metas: Checked['metas'] }> {
  const paths = Array.isArray(doc.plugin_paths) ? doc.plugin_paths.filter((p) => typeof p === 'string') : [];
  const { plugins, problems } = await loadPlugins(paths, path.dirname(path.resolve(file)), importTimeoutMs);
  for (const p of problems) issues.add('GW_ERR_PLUGIN_MODULE', ['plugin_paths', p.index], p.message);
  const schemas = new SchemaSet();
  const unknown = new Map<string, PathSeg[][]>();
  const metas: Checked['metas'] = new Map();
  for (const place of placesOf(doc)) {
    for (const [name, conf] of Object.entries(place.map ?? {})) {
      const at = [...place.at, name];
      const meta = takeMeta(name, conf, at, issues);
      if (meta) {
        let here = metas.get(place.scope);
        if (!here) metas.set(place.scope, (here = new Map()));
        here.set(name, meta);
      }
      const def = plugins.get(name);
      if (!def) {
        unknown.set(name, [...(unknown.get(name) ?? []), at]);
        continue;
      }
      const credentials = place.consumer && def.consumerSchema;
      const notes = new Notes();
      dropApisixOnlyFields(name, conf, schemaFields(credentials || def.schema), at, notes);
      for (const w of notes.warnings) issues.warn(w.path, w.message, w.atKey);
      const found = schemas.validate((credentials ? 'consumer:' : 'plugin:') + name, credentials || def.schema, conf, at);
      for (const p of found) issues.add('GW_ERR_CONFIG_PLUGIN', p.path, `plugin ${name}: ${p.message}`, p.atKey);
      if (found.length === 0 && def.check && !credentials) {
        const msg = userHook('check', () => def.check!(conf));
        if (msg) issues.add('GW_ERR_CONFIG_PLUGIN', at, `plugin ${name}: ${msg}`, true);
      }
      const advice = found.length === 0 && def.advice ? userHook('advice', () => def.advice!(conf, Boolean(credentials))) : undefined;
      if (advice) issues.warn(at, `plugin ${name}: ${advice}`, true);
    }
  }
  for (const [name, places] of unknown) issues.add('GW_ERR_CONFIG_PLUGIN', places[0], unknownPluginMessage(name, plugins.keys(), places.length), true);
  return { plugins, metas };
}

/** A plugin's check() or advice(): what it returns, or that it threw, as that plugin's problem at its place (not the whole file's). */
function userHook(hook: string, call: () => string | undefined | void): string | undefined {
  try {
    return call() || undefined;
  } catch (err) {
    return `${hook}() threw: ${(err as Error)?.message ?? String(err)}`;
  }
}

/**
 * `plugin_metadata` entries against their plugin's metadataSchema; a plugin
 * with a metadataSchema and no entry gets the schema's defaults.
 */
function checkMetadata(doc: GatewayDoc, plugins: Map<string, PluginDef>, issues: IssueList): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const schemas = new SchemaSet();
  doc.plugin_metadata?.forEach((entry, i) => {
    const { id, ...fields } = entry;
    const def = plugins.get(id);
    const at: PathSeg[] = ['plugin_metadata', i];
    const typo = def ? undefined : closest(id, plugins.keys());
    // A typo of a Turnpike plugin is an error; another APISIX plugin's settings (error-log-logger…) are only ignored, as before.
    if (typo) issues.add('GW_ERR_CONFIG_PLUGIN', [...at, 'id'], `unknown plugin "${id}" (did you mean "${typo}"?)`);
    else if (!def) issues.warn([...at, 'id'], `plugin "${id}" is not a Turnpike plugin: its plugin_metadata is ignored`, false);
    else if (!def.metadataSchema) issues.warn([...at, 'id'], `plugin ${id} takes no plugin_metadata: ignored`, false);
    else if (out.has(id)) issues.add('GW_ERR_CONFIG_REF', [...at, 'id'], `plugin_metadata for "${id}" is given twice`);
    else {
      for (const p of schemas.validate(`metadata:${id}`, def.metadataSchema, fields, at)) issues.add('GW_ERR_CONFIG_PLUGIN', p.path, `plugin_metadata ${id}: ${p.message}`, p.atKey);
      out.set(id, fields);
    }
  });
  for (const [name, def] of plugins) {
    if (!def.metadataSchema || out.has(name)) continue;
    const fields = {};
    schemas.validate(`metadata:${name}`, def.metadataSchema, fields, []);
    out.set(name, fields);
  }
  return out;
}

/** Ids unique per kind; every upstream_id and service_id defined; no field given two ways. */
function checkReferences(doc: GatewayDoc, issues: IssueList): void {
  const ids = (kind: string, list: { id?: unknown; username?: unknown }[] | undefined, field: 'id' | 'username') => {
    const seen = new Map<string, number>();
    list?.forEach((item, i) => {
      const id = String(item[field]);
      if (item[field] === undefined) return;
      if (seen.has(id)) issues.add('GW_ERR_CONFIG_REF', [kind, i, field], `duplicate ${field} "${id}" (first used at ${kind}[${seen.get(id)}])`);
      else seen.set(id, i);
    });
    return seen;
  };
  for (const p of parseTrustedProxies(doc.trusted_proxies ?? []).problems) issues.add('GW_ERR_CONFIG_SCHEMA', ['trusted_proxies', p.index], p.message);
  const upstreamIds = ids('upstreams', doc.upstreams, 'id');
  const serviceIds = ids('services', doc.services, 'id');
  ids('routes', doc.routes, 'id');
  ids('consumers', doc.consumers, 'username');
  ids('global_rules', doc.global_rules, 'id');
  doc.upstreams?.forEach((u, i) => { if (u.id === undefined) issues.add('GW_ERR_CONFIG_SCHEMA', ['upstreams', i], 'missing required field "id"'); });
  const upstreams: [PathSeg[], UpstreamDoc | undefined][] = [
    ...(doc.upstreams ?? []).map((u, i): [PathSeg[], UpstreamDoc] => [['upstreams', i], u]),
    ...(doc.services ?? []).map((s, i): [PathSeg[], UpstreamDoc | undefined] => [['services', i, 'upstream'], s?.upstream]),
    ...(doc.routes ?? []).map((r, i): [PathSeg[], UpstreamDoc | undefined] => [['routes', i, 'upstream'], r?.upstream]),
  ];
  for (const [at, u] of upstreams) {
    const why = u && hashKeyProblem(u);
    if (why) issues.add('GW_ERR_CONFIG_SCHEMA', [...at, 'key'], why);
  }
  doc.services?.forEach((s, i) => {
    if (s.upstream_id !== undefined && !upstreamIds.has(String(s.upstream_id))) issues.add('GW_ERR_CONFIG_REF', ['services', i, 'upstream_id'], `upstream "${s.upstream_id}" is not defined in upstreams`);
    if (s.upstream_id !== undefined && s.upstream) issues.add('GW_ERR_CONFIG_REF', ['services', i, 'upstream'], 'give either upstream_id or upstream, not both');
  });
  doc.routes?.forEach((r, i) => {
    if (!r || typeof r !== 'object') return;
    if (r.uri === undefined && r.uris === undefined) issues.add('GW_ERR_CONFIG_SCHEMA', ['routes', i], 'route needs "uri" or "uris"');
    if (r.uri !== undefined && r.uris !== undefined) issues.add('GW_ERR_CONFIG_SCHEMA', ['routes', i, 'uris'], 'give either uri or uris, not both', true);
    if (r.host !== undefined && r.hosts !== undefined) issues.add('GW_ERR_CONFIG_SCHEMA', ['routes', i, 'hosts'], 'give either host or hosts, not both', true);
    if (r.remote_addr !== undefined && r.remote_addrs !== undefined) issues.add('GW_ERR_CONFIG_SCHEMA', ['routes', i, 'remote_addrs'], 'give either remote_addr or remote_addrs, not both', true);
    for (const p of routeFilterProblems(r)) issues.add('GW_ERR_CONFIG_SCHEMA', ['routes', i, ...p.at], p.message);
    if (r.service_id !== undefined && !serviceIds.has(String(r.service_id))) issues.add('GW_ERR_CONFIG_REF', ['routes', i, 'service_id'], `service "${r.service_id}" is not defined in services`);
    if (r.upstream_id !== undefined && !upstreamIds.has(String(r.upstream_id))) issues.add('GW_ERR_CONFIG_REF', ['routes', i, 'upstream_id'], `upstream "${r.upstream_id}" is not defined in upstreams`);
    if (r.upstream_id !== undefined && r.upstream) issues.add('GW_ERR_CONFIG_REF', ['routes', i, 'upstream'], 'give either upstream_id or upstream, not both');
  });
}
