/**
 * The order in which Kong tries routes, reproduced. Kong's default router
 * (traditional_compatible, kong/router/transform.lua get_priority) tries the
 * route that matches on more fields first, then plain hosts, more headers, a
 * regex path before a plain one (regex_priority among regexes), the longer
 * plain path first. Turnpike's router tries the most specific uri first and
 * orders the routes of one uri by `priority`. So each route gets its rank in
 * Kong's order as `priority`, and a route Kong tries first also takes the uris
 * of the later routes it overlaps that are more specific than its own: at
 * such a uri both are candidates, in Kong's order. A uri taken that way never
 * widens a route: it lies inside one of the route's own prefixes, or the route
 * checks its paths in `vars` anyway. What Turnpike's router cannot order (a
 * route with hosts before one without, whatever else they match on) is noted.
 */
import type { PathSeg } from '../source.ts';

type Obj = Record<string, unknown>;

/** What ordering needs of one imported route. */
export interface OrderedRoute {
  /** The output route: its `uris` and `priority` are set here. */
  out: Obj;
  at: PathSeg[];
  /** Kong's priority, field by field (most significant first). */
  key: number[];
  /** Kong's priorities of the parts Kong splits the route into (by path kind and length), when there are several. */
  parts: number;
  /** Lower-case hosts, or none. */
  hosts: string[];
}

/** Most uris the ordering may add in all (a file of thousands of overlapping routes would otherwise grow without bound). */
const MAX_ADDED = 20_000;
/** Most overlapping (route, uri) pairs looked at: the same bound on the time an import takes. */
const MAX_STEPS = 2_000_000;

/**
 * Kong's priority for a route (transform.lua get_priority), as a tuple:
 * fields matched on, plain hosts only, header count, regex path,
 * regex_priority (regex paths only), plain path length.
 */
export function kongPriority(r: Obj, paths: readonly { plain?: number }[]): number[] {
  const has = (k: string) => { const v = r[k]; return Array.isArray(v) ? v.length > 0 : v !== null && typeof v === 'object' && Object.keys(v).length > 0; };
  const weight = ['sources', 'destinations', 'methods', 'hosts', 'headers', 'snis', 'paths'].filter(has).length;
  const plainHosts = Array.isArray(r.hosts) && r.hosts.every((h) => !String(h).includes('*')) ? 1 : 0;
  const headers = has('headers') ? Math.min(Object.keys(r.headers as Obj).length, 255) : 0;
  const regex = paths.some((p) => p.plain === undefined) ? 1 : 0;
  const regexPriority = regex && typeof r.regex_priority === 'number' ? r.regex_priority : 0;
  const length = regex ? 0 : Math.max(0, ...paths.map((p) => p.plain ?? 0));
  return [weight, plainHosts, headers, regex, regexPriority, length];
}

/** How many parts Kong splits a route's paths into: the regexes, and the plain paths of each length. */
export function kongParts(paths: readonly { plain?: number }[]): number {
  return new Set(paths.map((p) => p.plain ?? -1)).size;
}

const compare = (a: number[], b: number[]) => { for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i]; return 0; };
const literal = (u: string) => (u.endsWith('*') ? u.slice(0, -1) : u);

/** Whether uri `u` lies inside uri `a` (a prefix `a*` that `u` starts with, or the same exact uri). */
function inside(u: string, a: string): boolean {
  return a.endsWith('*') ? literal(u).startsWith(literal(a)) : u === a;
}

/** Whether the two routes are in one of Turnpike's routing tables (the same host, or both without hosts). */
function sameTable(a: OrderedRoute, b: OrderedRoute): boolean {
  if (!a.hosts.length || !b.hosts.length) return !a.hosts.length && !b.hosts.length;
  return a.hosts.some((h) => b.hosts.includes(h));
}

/** Whether some Host is taken by both routes' hosts, where Turnpike tries `b`'s table before `a`'s. */
function hostTriesFirst(b: OrderedRoute, a: OrderedRoute): boolean {
  if (!b.hosts.length) return false;
  if (!a.hosts.length) return true;
  // Turnpike: exact hosts, then wildcards longest first. A host both take, where b's entry is the more specific.
  const rank = (h: string) => (h.startsWith('*') ? h.length : Infinity);
  const takes = (w: string, h: string) => (w.startsWith('*') ? (h.startsWith('*') ? h.endsWith(w.slice(1)) : h.endsWith(w.slice(1)) && h.length > w.length - 1) : w === h);
  return b.hosts.some((hb) => a.hosts.some((ha) => (takes(ha, hb) || takes(hb, ha)) && rank(hb) > rank(ha)));
}

/**
 * Sets `priority` (the rank in Kong's order, where it matters) and adds the
 * uris that make Turnpike try overlapping routes in Kong's order; notes where
 * it cannot.
 */
export function orderLikeKong(routes: OrderedRoute[], note: (path: PathSeg[], what: string, why: string) => void): void {
  const uris = (r: OrderedRoute) => r.out.uris as string[];
  // Every uri by its literal start, sorted: the uris inside a prefix `x*` are one run of it.
  const all = routes.flatMap((r) => uris(r).map((u) => ({ lit: literal(u), u, r }))).sort((p, q) => (p.lit < q.lit ? -1 : p.lit > q.lit ? 1 : 0));
  const own = new Map(routes.map((r) => [r, [...uris(r)]]));
  let added = 0, steps = 0;
  const mixed = new Set<OrderedRoute>();
  const shared = new Set<OrderedRoute>();
  const noted = new Set<OrderedRoute>();
  /** `b`'s uri `u` lies inside `a`'s uri `x`: the two routes overlap. */
  const pair = (a: OrderedRoute, x: string, b: OrderedRoute, u: string) => {
    for (const r of [a, b]) if (r.parts > 1) mixed.add(r);
    const aFirst = compare(a.key, b.key) > 0;
    if (!sameTable(a, b)) {
      const [first, later] = aFirst ? [a, b] : [b, a];
      if (compare(first.key, later.key) > 0 && hostTriesFirst(later, first) && !noted.has(first)) {
        noted.add(first);
        note(first.at, `route "${String(first.out.id)}"`, `Kong tries it before route "${String(later.out.id)}" (it matches on more, or more exactly), where both match; Turnpike tries a route with hosts (the more exact host) first`);
      }
      return;
    }
    shared.add(a).add(b);
    // A more specific uri of a later route inside a prefix of `a`'s: there `a` is a candidate too, first by priority.
    if (aFirst && u !== x && added < MAX_ADDED && !uris(a).includes(u)) { uris(a).push(u); added++; }
  };
  for (const a of routes) {
    for (const x of own.get(a)!) {
      const lit = literal(x);
      let lo = 0, hi = all.length;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (all[mid].lit < lit) lo = mid + 1; else hi = mid; }
      for (let i = lo; i < all.length && all[i].lit.startsWith(lit) && steps < MAX_STEPS; i++, steps++) {
        const { u, r: b } = all[i];
        if (b !== a && inside(u, x)) pair(a, x, b, u);
      }
    }
  }
  if (added >= MAX_ADDED || steps >= MAX_STEPS) note(routes[0].at, 'routes', 'too many overlapping routes to follow: past them, routes are tried in Turnpike\'s order (the most specific path first), not Kong\'s');
  for (const r of mixed) note([...r.at, 'paths'], `route "${String(r.out.id)}"`, 'Kong orders its regex paths and its plain paths of each length apart; here the route has one place in the order, its first part\'s');
  const keys = [...new Set(routes.map((r) => r.key.join(',')))].map((k) => k.split(',').map(Number)).sort(compare).map((k) => k.join(','));
  for (const r of shared) {
    const rank = keys.indexOf(r.key.join(','));
    if (rank) r.out.priority = rank;
  }
}
