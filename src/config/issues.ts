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
  private src: ParsedSource | undefined;

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

  /** An issue at a document path: the node there, or its key when `atKey`. */
  add(code: ErrorCode, at: readonly PathSeg[], message: string, atKey = false): void {
    const pos = this.src?.position(at, atKey) ?? { line: 1, col: 1 };
    this.list.push({ code, file: this.file, line: pos.line, col: pos.col, path: formatPath(at), message });
  }

  /** The issues in file order. */
  sorted(): ConfigIssue[] {
    return this.list.sort((a, b) => a.line - b.line || a.col - b.col);
  }
}
