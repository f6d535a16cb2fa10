/**
 * YAML parsing that keeps where every value came from, so that every error can
 * name file:line:column.
 */
import { isMap, isSeq, isScalar, isPair, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { PARSE_OPTIONS, TO_JS_OPTIONS } from './yaml-options.js';

export type PathSeg = string | number;

export interface ParsedSource {
  data: unknown;
  yamlErrors: { line: number; col: number; message: string }[];
  /** Line/column of the node at `path`, or of its nearest existing ancestor. */
  position(path: readonly PathSeg[], key?: boolean): { line: number; col: number };
}

/** 1-based line and column of a character offset in `text`. */
export function offsetPosition(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) { line++; start = i + 1; }
  return { line, col: offset - start + 1 };
}

/** Parses YAML text; never throws. */
export function parseSource(text: string): ParsedSource {
  const lineCounter = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter, ...PARSE_OPTIONS });
  const yamlErrors = doc.errors.map((e) => {
    const pos = lineCounter.linePos(e.pos[0]);
    return { line: pos.line, col: pos.col, message: e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '') };
  });
  const data = yamlErrors.length ? undefined : doc.toJS({ ...TO_JS_OPTIONS });

  function position(path: readonly PathSeg[], key = false): { line: number; col: number } {
    let node: unknown = doc.contents;
    let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      let next: unknown;
      let keyNode: unknown;
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
        if (pair) { next = pair.value; keyNode = pair.key; }
      } else if (isSeq(node) && typeof seg === 'number') {
        next = node.items[seg];
      }
      if (next === undefined && keyNode === undefined) break;
      const last = i === path.length - 1;
      const target = (last && key && keyNode) || next || keyNode;
      const r = (target as Node | undefined)?.range;
      if (r) offset = r[0];
      node = next;
    }
    return lineCounter.linePos(offset);
  }

  return { data, yamlErrors, position };
}

/** A source whose data was parsed elsewhere (error-free); positions parse the text here, once, only if asked. */
export function sourceWithData(text: string, data: unknown): ParsedSource {
  let full: ParsedSource | undefined;
  return { data, yamlErrors: [], position: (path, key) => (full ??= parseSource(text)).position(path, key) };
}

/** `routes[0].plugins.key-auth` */
export function formatPath(path: readonly PathSeg[]): string {
  let s = '';
  for (const seg of path) s += typeof seg === 'number' ? `[${seg}]` : s ? `.${seg}` : seg;
  return s;
}
