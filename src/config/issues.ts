/**
 * The problems one load finds, each placed at a file position: the parse,
 * check and compile stages all add to the same list.
 */
import type { ConfigIssue, ErrorCode } from '../errors.ts';
import { formatPath, type ParsedSource, type PathSeg } from './source.ts';

/** Issues of one file; `add` places a document path through the parsed source. */
export class IssueList {
  readonly file: string;
  readonly list: ConfigIssue[] = [];
  readonly warnings: ConfigIssue[] = [];
  private src: ParsedSource | undefined;
  private origin: (at: readonly PathSeg[]) => readonly PathSeg[] = (at) => at;
  private seen = new Set<string>();

  constructor(file: string) {
    this.file = file;
  }

  get size(): number { return this.list.length; }

  /** Once the text is parsed, document paths can be placed. */
  placeWith(src: ParsedSource): void { this.src = src; }

  /** An issue at a line and column (1-based). */
  at(code: ErrorCode, line: number, col: number, message: string): void {
    this.list.push({ code, file: this.file, line, col, path: '', message });
  }

  /** Once the compatibility pass has reshaped the document, paths of the result are placed where they were written. */
  remap(origin: (at: readonly PathSeg[]) => readonly PathSeg[]): void { this.origin = origin; }

  /** An issue at a document path: the node there, or its key when `atKey`. */
  add(code: ErrorCode, at: readonly PathSeg[], message: string, atKey = false): void {
    this.push(this.list, code, this.origin(at), message, atKey);
  }

  /** An issue at a path as written in the file (the compatibility pass's own findings). */
  addWritten(code: ErrorCode, at: readonly PathSeg[], message: string, atKey = false): void {
    this.push(this.list, code, at, message, atKey);
  }

  /** A warning: the file still loads. `written` when `at` is a path as written rather than of the reshaped document. */
  warn(at: readonly PathSeg[], message: string, atKey = false, written = false): void {
    this.push(this.warnings, 'GW_ERR_CONFIG_UNSUPPORTED', written ? at : this.origin(at), message, atKey, true);
  }

  private push(into: ConfigIssue[], code: ErrorCode, at: readonly PathSeg[], message: string, atKey: boolean, warning = false): void {
    const pos = this.src?.position(at, atKey) ?? { line: 1, col: 1 };
    // A plugin_config merged into several routes is checked once per route: say it once.
    const key = `${warning}|${pos.line}|${pos.col}|${message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    into.push({ code, file: this.file, line: pos.line, col: pos.col, path: formatPath(at), message, ...(warning ? { warning: true as const } : {}) });
  }

  /** The issues in file order. */
  sorted(): ConfigIssue[] {
    return this.list.sort(byPosition);
  }

  /** The warnings in file order. */
  sortedWarnings(): ConfigIssue[] {
    return this.warnings.sort(byPosition);
  }
}

function byPosition(a: ConfigIssue, b: ConfigIssue): number {
  return a.line - b.line || a.col - b.col;
}
