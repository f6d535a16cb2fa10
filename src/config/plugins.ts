/**
 * Finds and checks plugin modules: the built-ins in plugins/ and the user's
 * from `plugin_paths`. A module that does not honour the contract is refused
 * with its file and what is wrong.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PHASES, type PluginDef } from '../plugin.ts';

const BUILTIN_DIR = fileURLToPath(new URL('../../plugins/', import.meta.url));
const NAME = /^[a-z0-9]+([-_][a-z0-9]+)*$/;
const EXT = /\.(ts|js|mjs)$/;

/** Why a module is not a plugin, or undefined when it is one. */
export function pluginModuleProblem(mod: unknown, file: string): string | undefined {
  const def = (mod as { default?: unknown })?.default;
  if (!def || typeof def !== 'object') return 'has no default export (export default definePlugin({...}))';
  const p = def as Record<string, unknown>;
  if (typeof p.name !== 'string' || !NAME.test(p.name)) return 'needs "name", a kebab-case string (underscores allowed)';
  const base = path.basename(file).replace(EXT, '');
  if (p.name !== base) return `is named "${p.name}" but its file is "${path.basename(file)}": use the same name for both`;
  if (typeof p.version !== 'string') return 'needs "version", a string';
  if (typeof p.priority !== 'number' || !Number.isFinite(p.priority)) return 'needs "priority", a number';
  if (!p.schema || typeof p.schema !== 'object') return 'needs "schema", a JSON schema object';
  if (!p.phases || typeof p.phases !== 'object') return 'needs "phases", an object of handlers';
  for (const [k, v] of Object.entries(p.phases as object)) {
    if (!(PHASES as readonly string[]).includes(k)) return `has unknown phase "${k}" (phases: ${PHASES.join(', ')})`;
    if (typeof v !== 'function') return `phase "${k}" is not a function`;
  }
  for (const k of ['check', 'advice', 'init', 'requestBody', 'consumerKey', 'consumerInit', 'activePhases', 'close'] as const) {
    if (p[k] !== undefined && typeof p[k] !== 'function') return `"${k}" must be a function`;
  }
  return undefined;
}

/** A module that loaded but does not honour the plugin contract. */
class NotAPlugin extends Error {}

/** How long a user plugin module may take to import (in a probe thread) before the load is rejected. */
export const PLUGIN_IMPORT_TIMEOUT_MS = 10_000;
const PROBE = new URL('./plugin-probe.js', import.meta.url);
/** URLs (file and version) whose probe passed: imported on the main thread since, nothing to prove again. */
const probed = new Set<string>();

/**
 * Imports `url` in a throwaway thread; resolves undefined when it loads there,
 * else why not: it threw, ended its thread, ran out of memory or took longer than `timeoutMs`.
 */
function probeImport(url: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let w: Worker;
    try {
      w = new Worker(PROBE, { workerData: { url }, resourceLimits: { maxOldGenerationSizeMb: 512 }, stdout: true, stderr: true });
    } catch (err) {
      resolve(`could not be checked: ${(err as Error).message}`);
      return;
    }
    // What a module prints while it is proven is not the gateway's output (it prints again when imported here).
    w.stdout.resume();
    w.stderr.resume();
    let settled = false;
    const done = (why: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void w.terminate();
      resolve(why);
    };
    // The clock starts once the thread runs: starting one on a loaded machine is not the module's time.
    let timer: NodeJS.Timeout | undefined;
    w.once('online', () => { timer = setTimeout(() => done(`did not finish loading within ${timeoutMs} ms (an endless loop at import?)`), timeoutMs); });
    w.on('message', (m: { ok: boolean; message?: string }) => done(m.ok ? undefined : `could not be loaded: ${m.message}`));
    w.on('error', (err) => done(`could not be loaded: ${err.message}`));
    w.on('exit', (code) => done(`ended the process while loading (exit code ${code})`));
  });
}

async function importPlugin(file: string, bust: boolean, timeoutMs = PLUGIN_IMPORT_TIMEOUT_MS): Promise<PluginDef> {
  let url = pathToFileURL(file).href;
  // ESM caches by URL: a changed user plugin must be seen by the next reload.
  if (bust) url += `?v=${(await stat(file)).mtimeMs}`;
  // User modules are proven in a probe thread first: only one that loads there is imported here.
  if (bust && !probed.has(url)) {
    const why = await probeImport(url, timeoutMs);
    if (why) throw new NotAPlugin(why.replace(/\s*\n\s*/g, ' '));
    probed.add(url);
  }
  const mod = await import(url);
  const problem = pluginModuleProblem(mod, file);
  if (problem) throw new NotAPlugin(problem);
  return mod.default as PluginDef;
}

async function listFiles(target: string): Promise<string[]> {
  const st = await stat(target);
  if (st.isFile()) return [target];
  const names = await readdir(target);
  return names.filter((n) => EXT.test(n) && !n.endsWith('.d.ts') && !/\.test\.(ts|js|mjs)$/.test(n)).sort().map((n) => path.join(target, n));
}

let builtins: Promise<Map<string, PluginDef>> | undefined;

/** The built-in plugins, loaded once per process. */
export function builtinPlugins(): Promise<Map<string, PluginDef>> {
  builtins ??= (async () => {
    const map = new Map<string, PluginDef>();
    for (const file of await listFiles(BUILTIN_DIR)) {
      const def = await importPlugin(file, false);
      map.set(def.name, def);
    }
    return map;
  })();
  return builtins;
}

export interface PluginLoadProblem { index: number; message: string }

/** Built-ins plus the user's plugins; problems name the file and the plugin_paths entry. */
export async function loadPlugins(pluginPaths: readonly string[], baseDir: string, importTimeoutMs = PLUGIN_IMPORT_TIMEOUT_MS): Promise<{ plugins: Map<string, PluginDef>; problems: PluginLoadProblem[] }> {
  const plugins = new Map(await builtinPlugins());
  const problems: PluginLoadProblem[] = [];
  for (let i = 0; i < pluginPaths.length; i++) {
    const target = path.resolve(baseDir, pluginPaths[i]);
    let files: string[];
    try {
      files = await listFiles(target);
    } catch {
      problems.push({ index: i, message: `plugin path "${pluginPaths[i]}" does not exist` });
      continue;
    }
    for (const file of files) {
      const rel = path.relative(baseDir, file) || file;
      try {
        const def = await importPlugin(file, true, importTimeoutMs);
        if (plugins.has(def.name)) {
          problems.push({ index: i, message: `plugin file ${rel}: a plugin named "${def.name}" already exists` });
          continue;
        }
        plugins.set(def.name, def);
      } catch (err) {
        const why = err instanceof NotAPlugin ? err.message : `could not be loaded: ${String((err as Error)?.message ?? err).replace(/\s*\n\s*/g, ' ')}`;
        problems.push({ index: i, message: `plugin file ${rel} ${why}` });
      }
    }
  }
  return { plugins, problems };
}
