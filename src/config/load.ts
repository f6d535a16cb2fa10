/**
 * Loading a config: text in, a frozen snapshot or every problem out. The
 * `validate` command, startup and every reload run this same function, in
 * three stages: parse (parse.ts), check (check.ts), compile (compile.ts).
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { formatIssue, type ConfigIssue } from '../errors.ts';
import type { FunctionHost, SharedState } from '../plugin.ts';
import type { Registry } from 'prom-client';
import type { ServerlessSettings, Snapshot } from '../snapshot.ts';
import { checkConfig } from './check.ts';
import { compileConfig } from './compile.ts';
import { IssueList } from './issues.ts';
import { parseConfig } from './parse.ts';
import { configHash, NO_FILES, readSslFiles, sslFilePaths, type FileSet, type FileSource } from './ssl-files.ts';
import type { Env } from './yaml-read.js';

export { DEFAULT_THREADS } from './compile.ts';

export interface LoadOptions {
  env?: Env;
  /** The function pool, as configured by the file being loaded (checking functions at load needs it). */
  functions: (settings: ServerlessSettings) => FunctionHost;
  /**
   * Called between the stages of a load and every few hundred routes. A running
   * gateway passes one that yields to its event loop, so a large reload does
   * not hold requests for its whole duration.
   */
  pause?: () => Promise<void>;
  /**
   * Parses YAML elsewhere (a running gateway: on another thread); undefined
   * when the text has errors or that failed, and the load parses it here.
   */
  parse?: (text: string, env: Env) => Promise<{ data: unknown } | undefined>;
  /** The snapshot in force: unchanged upstreams are taken from it, balancer state and all. */
  previous?: Snapshot;
  /** State shared by the host's workers (plugins reach it as `api.shared`); a per-load local one when absent. */
  shared?: SharedState;
  /** The gateway's Prometheus registry (plugins reach it as `api.metrics`). */
  metrics?: Registry;
  /** How long a user plugin module may take to import, in a probe thread, and each instance's init (PLUGIN_IMPORT_TIMEOUT_MS when absent). */
  pluginImportTimeoutMs?: number;
  /** Text longer than this (UTF-8 bytes) is refused unparsed; DEFAULT_MAX_CONFIG_BYTES when absent. */
  maxBytes?: number;
  /** The certificate files `ssls` names: contents already read (a worker), or how to read them; read from disk when absent. */
  files?: FileSource;
}

/** `hash` covers the text and the certificate files it names (`files`, watched by the caller). */
export type LoadResult =
  | { ok: true; hash: string; snapshot: Snapshot; warnings: ConfigIssue[]; files?: readonly string[] }
  | { ok: false; hash: string; issues: ConfigIssue[]; warnings: ConfigIssue[]; files?: readonly string[] };

/** Reads certificate files from disk (each within MAX_SSL_FILE_BYTES), for LoadOptions.files. */
export const readSslFilesFromDisk = (paths: readonly string[]): Promise<FileSet> => readSslFiles(paths, readConfigText);

/** sha256 of the raw file text. */
export function hashText(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * The largest config file read, in bytes: TURNPIKE_MAX_CONFIG_BYTES, else 8 MiB
 * (16 times a 10,000-route file). The file cannot set its own limit: it is
 * checked before the file is parsed.
 */
export const DEFAULT_MAX_CONFIG_BYTES = 8 << 20;

/** The byte limit `env` sets, or the reason its value is not one. */
export function maxConfigBytes(env: Env): number | string {
  const raw = env.TURNPIKE_MAX_CONFIG_BYTES;
  if (raw === undefined || raw === '') return DEFAULT_MAX_CONFIG_BYTES;
  const n = Number(raw);
  return /^[0-9]+$/.test(raw.trim()) && n > 0 ? n : `TURNPIKE_MAX_CONFIG_BYTES is "${raw}": it must be a whole number of bytes above 0`;
}

const tooLarge = (size: number, max: number) => `file is ${size.toLocaleString('en')} bytes, over the limit of ${max.toLocaleString('en')} (set TURNPIKE_MAX_CONFIG_BYTES to change it)`;

/**
 * The text of a config file, or the issue that says why it cannot be read.
 * The size is checked before reading, and the read is bounded too (the file may grow meanwhile).
 */
export async function readConfigText(file: string, maxBytes = DEFAULT_MAX_CONFIG_BYTES): Promise<{ text: string } | { issue: ConfigIssue }> {
  const issue = (message: string, line = 0): { issue: ConfigIssue } => ({ issue: { code: 'GW_ERR_CONFIG_READ', file, line, col: line, path: '', message } });
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    // O_NONBLOCK: opening a FIFO nobody writes to would wait for ever (and hold a libuv thread); the stat below refuses it.
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = await fh.stat();
    if (st.isDirectory()) return issue('is a directory');
    // A FIFO or device would block the read or never end.
    if (!st.isFile()) return issue('is not a regular file');
    if (st.size > maxBytes) return issue(tooLarge(st.size, maxBytes), 1);
    const buf = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
    let len = 0;
    for (let n = -1; n !== 0 && len < buf.length;) len += n = (await fh.read(buf, len, buf.length - len, len)).bytesRead;
    if (len > maxBytes) return issue(tooLarge(len, maxBytes), 1);
    return { text: buf.toString('utf8', 0, len) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return issue(code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${code ?? (err as Error).message})`);
  } finally {
    await fh?.close().catch(() => {});
  }
}

/** Reads and loads a config file, within the byte limit of the options or the environment. */
export async function loadConfigFile(file: string, opts: LoadOptions): Promise<LoadResult> {
  const max = opts.maxBytes ?? maxConfigBytes(opts.env ?? process.env);
  if (typeof max === 'string') return { ok: false, hash: '', issues: [{ code: 'GW_ERR_CONFIG_READ', file, line: 0, col: 0, path: '', message: max }], warnings: [] };
  const read = await readConfigText(file, max);
  if ('issue' in read) return { ok: false, hash: '', issues: [read.issue], warnings: [] };
  return loadConfigText(read.text, file, { ...opts, maxBytes: max });
}

/** Every issue as `file:line:col: path: message`, one per line. */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map(formatIssue).join('\n');
}

/** A `pause` for a running gateway: lets the requests queued meanwhile run, then goes on. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Loads config text; `file` names it in messages and anchors relative paths.
 * Never throws: whatever the text, a snapshot or positioned issues.
 */
export async function loadConfigText(text: string, file: string, opts: LoadOptions): Promise<LoadResult> {
  const issues = new IssueList(path.relative(process.cwd(), file) || file);
  const at: Hashed = { hash: hashText(text), files: [] };
  try {
    const snapshot = await runStages(text, file, at, issues, opts);
    if (snapshot) return { ok: true, hash: at.hash, snapshot, warnings: issues.sortedWarnings(), files: at.files };
  } catch (err) {
    // A last resort: a bug or a plugin's surprise is this file's error, never a crash of the gateway.
    issues.at('GW_ERR_CONFIG_SCHEMA', 1, 1, `the file could not be loaded: ${String((err as Error)?.message ?? err).split('\n')[0]}`);
  }
  return { ok: false, hash: at.hash, issues: issues.sorted(), warnings: issues.sortedWarnings(), files: at.files };
}

/** The load's hash, which grows to cover the certificate files once the text is parsed. */
interface Hashed { hash: string; files: readonly string[] }

async function runStages(text: string, file: string, at: Hashed, issues: IssueList, opts: LoadOptions): Promise<Snapshot | undefined> {
  const max = opts.maxBytes ?? DEFAULT_MAX_CONFIG_BYTES;
  const bytes = Buffer.byteLength(text);
  if (bytes > max) {
    issues.at('GW_ERR_CONFIG_READ', 1, 1, tooLarge(bytes, max));
    return undefined;
  }
  const pause = opts.pause ?? (() => undefined);
  const src = await parseConfig(text, issues, { env: opts.env ?? process.env, parse: opts.parse });
  await pause();
  if (!src) return undefined;
  // Before the check: the compat pass and defaults reshape the document, the files are named as written.
  const paths = sslFilePaths(src.data, file);
  const source = opts.files ?? readSslFilesFromDisk;
  const files = paths.length === 0 ? NO_FILES : typeof source === 'function' ? await source(paths) : source;
  at.hash = configHash(at.hash, files, paths);
  at.files = paths;
  const checked = await checkConfig(src.data, file, issues, { pause, pluginImportTimeoutMs: opts.pluginImportTimeoutMs, files });
  if (!checked) return undefined;
  await pause();
  return compileConfig(checked, file, at.hash, issues, { functions: opts.functions, pause, previous: opts.previous, shared: opts.shared, metrics: opts.metrics, files, sslFiles: paths, initTimeoutMs: opts.pluginImportTimeoutMs });
}
