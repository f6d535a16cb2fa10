/**
 * Loading a config: text in, a frozen snapshot or every problem out. The
 * `validate` command, startup and every reload run this same function, in
 * three stages: parse (parse.ts), check (check.ts), compile (compile.ts).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { formatIssue, type ConfigIssue } from '../errors.ts';
import type { FunctionHost, SharedState } from '../plugin.ts';
import type { ServerlessSettings, Snapshot } from '../snapshot.ts';
import { checkConfig } from './check.ts';
import { compileConfig } from './compile.ts';
import { IssueList } from './issues.ts';
import { parseConfig } from './parse.ts';

export { DEFAULT_THREADS } from './compile.ts';

export interface LoadOptions {
  env?: Readonly<Record<string, string | undefined>>;
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
  parse?: (text: string) => Promise<{ data: unknown } | undefined>;
  /** The snapshot in force: unchanged upstreams are taken from it, balancer state and all. */
  previous?: Snapshot;
  /** State shared by the host's workers (plugins reach it as `api.shared`); a per-load local one when absent. */
  shared?: SharedState;
}

export type LoadResult =
  | { ok: true; hash: string; snapshot: Snapshot; warnings: ConfigIssue[] }
  | { ok: false; hash: string; issues: ConfigIssue[]; warnings: ConfigIssue[] };

/** sha256 of the raw file text. */
export function hashText(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The text of a config file, or the issue that says why it cannot be read. */
export async function readConfigText(file: string): Promise<{ text: string } | { issue: ConfigIssue }> {
  try {
    return { text: await readFile(file, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${code ?? (err as Error).message})`;
    return { issue: { code: 'GW_ERR_CONFIG_READ', file, line: 0, col: 0, path: '', message: why } };
  }
}

/** Reads and loads a config file. */
export async function loadConfigFile(file: string, opts: LoadOptions): Promise<LoadResult> {
  const read = await readConfigText(file);
  if ('issue' in read) return { ok: false, hash: '', issues: [read.issue], warnings: [] };
  return loadConfigText(read.text, file, opts);
}

/** Every issue as `file:line:col: path: message`, one per line. */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map(formatIssue).join('\n');
}

/** A `pause` for a running gateway: lets the requests queued meanwhile run, then goes on. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Loads config text; `file` names it in messages and anchors relative paths. */
export async function loadConfigText(text: string, file: string, opts: LoadOptions): Promise<LoadResult> {
  const hash = hashText(text);
  const issues = new IssueList(path.relative(process.cwd(), file) || file);
  const pause = opts.pause ?? (() => undefined);
  const fail = (): LoadResult => ({ ok: false, hash, issues: issues.sorted(), warnings: issues.sortedWarnings() });

  const src = await parseConfig(text, issues, { env: opts.env ?? process.env, parse: opts.parse });
  await pause();
  if (!src) return fail();
  const checked = await checkConfig(src.data, file, issues, pause);
  if (!checked) return fail();
  await pause();
  const snapshot = await compileConfig(checked, file, hash, issues, { functions: opts.functions, pause, previous: opts.previous, shared: opts.shared });
  return snapshot ? { ok: true, hash, snapshot, warnings: issues.sortedWarnings() } : fail();
}
