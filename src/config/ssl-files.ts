/**
 * Certificate and key files named by `ssls` (cert_file, key_file, files)
 * and upstream CA files (tls.ca_file):
 * which paths a document names, their contents read by whoever reads the
 * config (the host's main thread, or a single gateway), and the load's hash
 * over the text and those contents, so that a renewed certificate is a new
 * config even when gateway.yaml did not change.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';

/** Absolute path → the file's text, or why it could not be read. */
export type FileSet = ReadonlyMap<string, string | { error: string }>;

/** How the load gets the files: contents already read, or a reader for the paths it finds. */
export type FileSource = FileSet | ((paths: readonly string[]) => Promise<FileSet>);

/** The largest certificate or key file read (a PEM chain is a few KB). */
export const MAX_SSL_FILE_BYTES = 1 << 20;

export const NO_FILES: FileSet = new Map();

/** `p` as the loader reads it: relative paths are relative to gateway.yaml's directory. */
export function resolveSslPath(p: string, configFile: string): string {
  return path.resolve(path.dirname(path.resolve(configFile)), p);
}

/**
 * The files `data` (parsed, not yet checked: any shape) names: `ssls`
 * certificates and keys, and upstreams' `tls.ca_file`; resolved, sorted, once each.
 */
export function sslFilePaths(data: unknown, configFile: string): string[] {
  const doc = (data ?? {}) as { ssls?: unknown; upstreams?: unknown; services?: unknown; routes?: unknown };
  const out = new Set<string>();
  const add = (v: unknown) => { if (typeof v === 'string' && v !== '') out.add(resolveSslPath(v, configFile)); };
  const list = (v: unknown): Record<string, unknown>[] => (Array.isArray(v) ? v.filter((x) => x && typeof x === 'object') : []);
  for (const e of list(doc.ssls)) {
    add(e.cert_file);
    add(e.key_file);
    for (const f of list(e.files)) { add(f.cert_file); add(f.key_file); }
  }
  // A CA file is read, hashed and watched like a certificate: a new CA bundle applies without a restart.
  const upstreams = [...list(doc.upstreams), ...[...list(doc.services), ...list(doc.routes)].map((x) => x.upstream)];
  for (const u of upstreams) add(((u as { tls?: { ca_file?: unknown } } | undefined)?.tls)?.ca_file);
  return [...out].sort();
}

/** The hash of a config: the text's, combined with the contents of its certificate files when it names any. */
export function configHash(textHash: string, files: FileSet, paths: readonly string[]): string {
  if (paths.length === 0) return textHash;
  const h = createHash('sha256').update(textHash);
  for (const p of paths) {
    const v = files.get(p);
    h.update(`\0${p}\0`).update(v === undefined ? '\0missing' : typeof v === 'string' ? v : `\0error ${v.error}`);
  }
  return h.digest('hex');
}

/** The contents of `paths`; `read` is readConfigText (load.ts), passed in so this module stays free of the loader. */
export async function readSslFiles(paths: readonly string[], read: (file: string, max: number) => Promise<{ text: string } | { issue: { message: string } }>): Promise<FileSet> {
  const out = new Map<string, string | { error: string }>();
  await Promise.all(paths.map(async (p) => {
    const r = await read(p, MAX_SSL_FILE_BYTES);
    out.set(p, 'text' in r ? r.text : { error: r.issue.message });
  }));
  return out;
}
