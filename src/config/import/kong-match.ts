/**
 * What a Kong route matches on, as a Turnpike route's. Paths: A plain path is a prefix: `/api` →
 * uris `/api`, `/api/*`. A regex path (`~/movies/(?<id>\d+)`, matched from the
 * path's start as Kong does) → a prefix uri from its literal start
 * (`/movies/*`) and a `vars` condition on `uri` with the regex, so the route
 * takes exactly what Kong's did. `strip_path` removes what the path matched.
 * Headers: `vars` on `http_<name>`, values compared in any case as Kong does.
 */
import { compileRegex } from '../../regex.ts';

/** One path, converted: its uris, the regex of the part strip_path removes, and the uri condition when the uris alone are broader. */
export type KongPath = { uris: string[]; strip: string; regex?: string } | { why: string };

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const META = /[\\^$.|?*+()[\]{}]/;

/** Converts one of a Kong route's `paths`. */
export function kongPath(p: string): KongPath {
  if (!p.startsWith('~')) {
    if (!p.startsWith('/')) return { why: 'a path must start with /' };
    const base = p.replace(/\/+$/, '');
    return { uris: base ? [base, `${base}/*`] : ['/*'], strip: escapeRe(base) };
  }
  // Group names are Kong's (PCRE's `(?P<name>` too) and Turnpike does not use them; unnamed, two paths cannot clash.
  const re = p.slice(1).replace(/^\^/, '').replace(/\((?:\?P?<)(?![=!])[A-Za-z_]\w*>/g, '(');
  if (!re.startsWith('/')) return { why: 'a path must start with /' };
  try {
    compileRegex(`^(?:${re})`, `path ${p}`);
  } catch (err) {
    return { why: (err as Error).message };
  }
  if (!META.test(re)) return { uris: [`${re}*`], strip: re };
  if (re.endsWith('$') && !META.test(re.slice(0, -1))) return { uris: [re.slice(0, -1)], strip: re.slice(0, -1) };
  return { uris: [`${literalStart(re)}*`], strip: re, regex: re };
}

/**
 * The longest start every match of `re` shares, cut before a character a
 * quantifier makes optional and before `:` (a parameter to the router):
 * `/movies/(\d+)` → `/movies/`, `/api/v1?` → `/api/v`. An alternation at
 * the top level shares only `/`.
 */
function literalStart(re: string): string {
  let depth = 0;
  for (let i = 0; i < re.length; i++) {
    const c = re[i];
    if (c === '\\') i++;
    else if (c === '[') { while (i < re.length && re[i] !== ']') i += re[i] === '\\' ? 2 : 1; }
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) return '/';
  }
  let end = 0;
  while (end < re.length && !META.test(re[end]) && re[end] !== ':') end++;
  if (end < re.length && /[?*{]/.test(re[end])) end--;
  return re.slice(0, Math.max(end, 1));
}

/** How many capturing groups `re` has: the replacement's index of a group after it. */
export function captureGroups(re: string): number {
  let n = 0;
  for (let i = 0; i < re.length; i++) {
    const c = re[i];
    if (c === '\\') i++;
    else if (c === '[') { while (i < re.length && re[i] !== ']') i += re[i] === '\\' ? 2 : 1; }
    else if (c === '(' && (re[i + 1] !== '?' || (re[i + 2] === '<' && re[i + 3] !== '=' && re[i + 3] !== '!'))) n++;
  }
  return n;
}

/**
 * Kong's route `headers` ({name: [values]}: any value of each header, in any
 * case; a value starting with `~*` is a regex) as `vars` expressions, or why
 * not. A header named with `_` cannot be told from `-` in `http_<name>`.
 */
export function kongHeaders(headers: Record<string, unknown>): { vars: unknown[][] } | { why: string } {
  const vars: unknown[][] = [];
  for (const [name, v] of Object.entries(headers)) {
    const values = (Array.isArray(v) ? v : [v]).map(String);
    if (!/^[A-Za-z0-9-]+$/.test(name) || name.toLowerCase() === 'host') return { why: `header "${name}" cannot be matched (a name of letters, digits and -, not Host)` };
    if (!values.length) continue;
    const alts = values.map((x) => (x.startsWith('~*') ? `(?:${x.slice(2)})` : `^${escapeRe(x)}$`));
    const re = alts.join('|');
    try { compileRegex(re, `header ${name}`, 'i'); } catch (err) { return { why: (err as Error).message }; }
    vars.push([`http_${name.toLowerCase().replace(/-/g, '_')}`, '~*', re]);
  }
  return { vars };
}
