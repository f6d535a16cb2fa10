/**
 * Every regular expression a config supplies is compiled here, on V8's
 * linear-time engine (the `l` flag): its run time grows with the input, never
 * exponentially, so no pattern such as `^/api/(a+)+$` can stall the event
 * loop. Patterns that need backtracking (backreferences, lookaround) are
 * refused at load, with the place they were written.
 */
import { setFlagsFromString } from 'node:v8';

let linearEngine = false;

/**
 * Compiles `pattern` to run in linear time; `where` names it in the error
 * (`regex_uri[0]`, say) thrown when it is invalid or needs backtracking.
 * `flags` may hold g, m, s and i (the engine has no i or u: i is done by
 * rewriting each letter `a` as `[aA]`, see foldCase).
 */
export function compileRegex(pattern: string, where: string, flags = ''): RegExp {
  if (!/^[gmsi]*$/.test(flags)) throw new Error(`compileRegex: flags "${flags}" are not supported (only g, m, s, i)`);
  if (flags.includes('i')) {
    try {
      new RegExp(pattern, flags);
    } catch (syntax) {
      throw new Error(`${where} is not a valid regular expression: ${(syntax as Error).message}`, { cause: syntax });
    }
    pattern = foldCase(pattern);
    flags = flags.replace('i', '');
  }
  if (!linearEngine) {
    // The engine is in every Node 24 V8 but behind a flag; it only adds the `l` flag.
    setFlagsFromString('--enable-experimental-regexp-engine');
    linearEngine = true;
  }
  try {
    return new RegExp(pattern, flags + 'l');
  } catch (err) {
    try {
      new RegExp(pattern, flags);
    } catch (syntax) {
      throw new Error(`${where} is not a valid regular expression: ${(syntax as Error).message}`, { cause: syntax });
    }
    throw new Error(`${where}: ${JSON.stringify(pattern)} cannot run in linear time (backreferences, lookaround and repetition counts in the hundreds are not supported: a pattern that backtracks lets one request stall the gateway)`, { cause: err });
  }
}

const swap = (c: string): string => {
  const l = c.toLowerCase(), u = c.toUpperCase();
  if (l === u) return '';
  return c === l ? (u.length === 1 ? u : '') : (l.length === 1 ? l : '');
};
const isAsciiLetter = (c: string | undefined) => c !== undefined && /^[A-Za-z]$/.test(c);

/** The length of the escape at `i` (a backslash): `\x41`, `\u00e9`, `\cJ`, `\k<name>` and back-references keep their letters and digits. */
function escapeLength(p: string, i: number): number {
  const c = p[i + 1];
  if (c === 'x') return 4;
  if (c === 'u') return 6;
  if (c === 'c') return 3;
  if (c === 'k' && p[i + 2] === '<') return p.indexOf('>', i) - i + 1;
  if (c !== undefined && /[1-9]/.test(c)) { let j = i + 2; while (/[0-9]/.test(p[j] ?? '')) j++; return j - i; }
  return 2;
}

/**
 * `pattern` matching both cases of every letter, written for an engine
 * without the i flag: `a` → `[aA]`, and inside a class `[a-f_]` → `[a-f_A-F]`.
 * Escapes (`\w`; `\x41` keeps its one case), group names and quantifiers
 * are kept as written.
 * Only called on a pattern that already compiled, so brackets are balanced.
 */
export function foldCase(p: string): string {
  let out = '';
  for (let i = 0; i < p.length;) {
    const c = p[i];
    if (c === '\\') { const n = escapeLength(p, i); out += p.slice(i, i + n); i += n; continue; }
    if (c === '(' && p.startsWith('(?<', i) && p[i + 3] !== '=' && p[i + 3] !== '!') {
      const end = p.indexOf('>', i);
      out += p.slice(i, end + 1); i = end + 1; continue;
    }
    if (c === '[') { const [cls, next] = foldClass(p, i); out += cls; i = next; continue; }
    const other = swap(c);
    out += other ? `[${c}${other}]` : c;
    i++;
  }
  return out;
}

/** The class that starts at `start`, folded, and the index after its `]`. */
function foldClass(p: string, start: number): [string, number] {
  let i = start + 1;
  let head = '[';
  if (p[i] === '^') { head += '^'; i++; }
  let body = '';
  let extra = '';
  while (i < p.length && p[i] !== ']') {
    if (p[i] === '\\') { const n = escapeLength(p, i); body += p.slice(i, i + n); i += n; continue; }
    const c = p[i];
    if (p[i + 1] === '-' && p[i + 2] !== undefined && p[i + 2] !== ']' && p[i + 2] !== '\\') {
      const d = p[i + 2];
      body += `${c}-${d}`;
      // A range of letters of one case gains the other case's range.
      if (isAsciiLetter(c) && isAsciiLetter(d) && swap(c) && swap(d) && (c < 'a') === (d < 'a')) extra += `${swap(c)}-${swap(d)}`;
      i += 3;
      continue;
    }
    // A literal '-' last in the class would join the added letters into a range.
    body += c === '-' ? '\\-' : c;
    const other = swap(c);
    if (other) extra += other;
    i++;
  }
  return [head + body + extra + ']', i + 1];
}
