/** What the compatibility pass tells the loader: problems and warnings, each at a path of the file as written. */
import type { PathSeg } from '../source.ts';

export interface CompatNote { path: PathSeg[]; message: string; atKey?: boolean }

/** Collects a pass's errors and warnings. */
export class Notes {
  readonly errors: CompatNote[] = [];
  readonly warnings: CompatNote[] = [];
  error(path: PathSeg[], message: string, atKey = false): void { this.errors.push({ path, message, atKey }); }
  warn(path: PathSeg[], message: string, atKey = false): void { this.warnings.push({ path, message, atKey }); }
}

/** A plain object (a YAML mapping), as opposed to a list, a scalar or null. */
export function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
