/**
 * What a Kong route matches on, as a Turnpike route's. Paths: a plain path is
 * a string prefix, as in Kong's router (`/p` takes `/p`, `/p/x` and `/pxyz`;
 * `/p/` does not take `/p`) → uri `/p*` (`/p/*`). A regex path
 * (`~/movies/(?<id>\d+)`, matched from the path's start as Kong does) → a prefix
 * uri from its literal start (`/movies/*`) and a `vars` condition on `uri` with
 * the regex, so the route takes exactly what Kong's did. `strip_path` removes
 * what the path matched and joins the rest to the service path as Kong's
 * path_handling v0 does. Headers: `vars` on `http_<name>`, values compared in
 * any case as Kong does.
 */
import { compileRegex } from '../../regex.ts';

/**
 * One path, converted: its uris; `match`, a regex (unanchored source) for what
 * Kong's path matches from the start of the request path; `filter` when the
 * uris are broader than the path (the route then checks `match` in `vars`);
 * `plain`, the path's length for a plain path (Kong orders them by it), or
 * undefined for a regex path.
 */
export type KongPath = { uris: string[]; match: string; filter: boolean; plain?: number } | { why: string };

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const META = /[\\^$.|?*+()[\]{}]/;
/** Characters Turnpike's router reads in a uri (a parameter, a wildcard) or never sees (a query, a fragment). */
const ROUTER_SPECIAL = /[:*?#]/;

/** Converts one of a Kong route's `paths`. */
export function kongPath(p: string): KongPath {
  if (!p.startsWith('~')) {
    if (!p.startsWith('/')) return { why: 'a path must start with /' };
    const match = escapeRe(p);
    if (ROUTER_SPECIAL.test(p)) return { uris: [`${p.slice(0, p.search(ROUTER_SPECIAL))}*`], match, filter: true, plain: p.length };
    return { uris: [p === '/' ? '/*' : `${p}*`], match, filter: false, plain: p.length };
  }
  // Group names are Kong's (PCRE's `(?P<name>` too) and Turnpike does not use them; unnamed, two paths cannot clash.
  const re = p.slice(1).replace(/^\^/, '').replace(/\((?:\?P?<)(?![=!])[A-Za-z_]\w*>/g, '(');
  if (!re.startsWith('/')) return { why: 'a path must start with /' };
  try {
    compileRegex(`^(?:${re})`, `path ${p}`);
  } catch (err) {
    return { why: (err as Error).message };
  }
  const literal = !META.test(re) ? re : re.endsWith('$') && !META.test(re.slice(0, -1)) ? re.slice(0, -1) : undefined;
  if (literal !== undefined && !ROUTER_SPECIAL.test(literal)) return { uris: [literal === re ? `${re}*` : literal], match: re, filter: false };
  return { uris: [`${literalStart(re)}*`], match: re, filter: true };
}

/**
 * The order in which Kong tries a route's paths, which decides what strip_path
 * removes: regexes first (as written), then plain paths, longest first
 * (Kong splits such a route by path kind and length, and orders the parts so).
 */
export function kongPathOrder<T extends { plain?: number }>(paths: readonly T[]): T[] {
  return [...paths.filter((c) => c.plain === undefined), ...paths.filter((c) => c.plain !== undefined).sort((a, b) => b.plain! - a.plain!)];
}

/**
 * proxy-rewrite `regex_uri` pairs that give the upstream path Kong's
 * path_handling v0 gives (kong/router/utils.lua get_upstream_uri_v0; the only
 * one its default router has): with strip_path, what the path matched is
 * removed, a leading `.`/`..` segment of the rest is dropped
 * (sanitize_uri_postfix), and the rest is joined to the service path with one
 * `/`, the service path alone when nothing is left (with a `/` when the
 * request ended in one); without, the service path goes before the request
 * path. Undefined when the path goes upstream as it came.
 */
export function kongUpstreamPath(paths: readonly Exclude<KongPath, { why: string }>[], strip: boolean, servicePath: string): string[] | undefined {
  const base = servicePath || '/';
  const bare = base.endsWith('/') ? base.slice(0, -1) : base;
  const tpl = (s: string) => s.replace(/\$/g, '$$$$');
  if (!strip) return base === '/' ? undefined : ['^/$', tpl(base), '^(.*)$', `${tpl(bare)}$1`];
  const ordered = paths.length ? kongPathOrder(paths) : [{ match: '/', plain: 1 }];
  // Stripping `/` from the root changes nothing a normalised path can carry.
  if (base === '/' && ordered.every((c) => c.match === '/')) return undefined;
  const out: string[] = [];
  for (const c of ordered) {
    const group = `(?:${c.match})`;
    const rest = `(?:\\.\\.?(?:/|$)|/)?(.*)`;
    const n = captureGroups(c.match) + 1;
    if (base === '/') { out.push(`^${group}${rest}`, `/$${n}`); continue; }
    // Nothing left: the service path alone, with a `/` only when the request ended in one past the root.
    const literal = c.plain !== undefined ? c.match.replace(/\\(.)/g, '$1') : undefined;
    const emptyIsBare = literal === undefined || !(literal.endsWith('/') && (literal.length > 1 || base.endsWith('/')));
    out.push(`^${group}${emptyIsBare ? '(?:\\.\\.?)?' : '\\.\\.?'}$`, tpl(bare), `^${group}${rest}`, `${tpl(bare)}/$${n}`);
  }
  return out;
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
