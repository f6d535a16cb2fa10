/**
 * YAML parsing that keeps where every value came from, so that every error can
 * name file:line:column.
 */
import { isMap, isSeq, isScalar, isPair, type Node } from 'yaml';
import { readYaml, type Env } from './yaml-read.js';

export type PathSeg = string | number;

export interface ParsedSource {
  data: unknown;
  /** YAML problems, and `${{VAR}}`s with no value (`env: true`). */
  yamlErrors: { line: number; col: number; message: string; env?: boolean }[];
  /** Line/column of the node at `path`, or of its nearest existing ancestor. */
  position(path: readonly PathSeg[], key?: boolean): { line: number; col: number };
}

function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return starts;
}

/** Parses YAML text, `${{VAR}}` taken from `env`; never throws. */
export function parseSource(text: string, env: Env = {}): ParsedSource {
  const { doc, problems, data, original } = readYaml(text, env);
  const lines = lineStarts(text);
  const linePos = (offset: number) => {
    let lo = 0, hi = lines.length - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (lines[mid] <= offset) lo = mid; else hi = mid - 1; }
    return { line: lo + 1, col: offset - lines[lo] + 1 };
  };
  const yamlErrors = problems.map((p) => ({ ...linePos(p.offset), message: p.message, env: p.env }));

  function position(path: readonly PathSeg[], key = false): { line: number; col: number } {
    let node: unknown = doc?.contents;
    let offset = (doc?.contents as Node | null | undefined)?.range?.[0] ?? 0;
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
    return linePos(original(offset));
  }

  return { data, yamlErrors, position };
}

/** A source whose data was parsed elsewhere (error-free); positions parse the text here, once, only if asked. */
export function sourceWithData(text: string, data: unknown, env: Env): ParsedSource {
  let full: ParsedSource | undefined;
  return { data, yamlErrors: [], position: (path, key) => (full ??= parseSource(text, env)).position(path, key) };
}

/** `routes[0].plugins.key-auth` */
export function formatPath(path: readonly PathSeg[]): string {
  let s = '';
  for (const seg of path) s += typeof seg === 'number' ? `[${seg}]` : s ? `.${seg}` : seg;
  return s;
}
