/**
 * Route matching: a radix tree (find-my-way) per host group. Exact hosts are
 * tried first, then wildcard hosts (`*.suffix`, `*-device.example.net`: longest first), then routes with no host,
 * so a host-specific route never hides a generic one for other hosts.
 */
import FindMyWay from 'find-my-way';
import type { RouteEntry } from './snapshot.ts';

export interface RouteSpec {
  route: RouteEntry;
  uris: readonly string[];
  /** Allowed methods; all when absent. */
  methods?: ReadonlySet<string>;
  hosts?: readonly string[];
  priority: number;
  /** Declaration order: breaks priority ties. */
  order: number;
  /** The route has `vars` or `remote_addrs`: find's `accept` must pass it. */
  filtered?: boolean;
}

/** Whether a request passes a filtered route's `vars` and `remote_addrs` (called only for those routes). */
export type Accept = (route: RouteEntry) => boolean;

export interface Match {
  route: RouteEntry;
  params: Record<string, string | undefined>;
  /** The uri and host patterns that matched (one frozen object per pattern pair, made at load). */
  matched: MatchedPattern;
}

/** A route's uri pattern and host pattern ('' for a route without hosts), as written. */
export interface MatchedPattern { readonly uri: string; readonly host: string }

type Candidates = RouteSpec[] & { matched?: MatchedPattern };
type Tree = ReturnType<typeof FindMyWay>;
/** A radix tree, and its prefix paths (`/api/*` → `/api/`) longest first: where a request goes when the routes of its most specific path all refuse it. */
interface Table { tree: Tree; prefixes: readonly (readonly [string, Candidates])[] }

function toFmwPath(uri: string): string {
  // APISIX `/api/*` is a prefix; find-my-way's `*` is the same wildcard.
  return uri;
}

/** Registrations between two yields while a large table is built. */
const STEP = 250;

/**
 * Builds a tree, yielding every STEP registrations so that an async caller can
 * let requests run (1,000 routes take ~15-25 ms on 2 cores, 10,000 ~150 ms).
 */
function* buildTree(specs: RouteSpec[], host: string): Generator<void, Table> {
  // One registration per path, not per method: find-my-way compiles code for
  // every registration, and 9 methods × 1,000 routes made a reload cost ~150 ms.
  // Methods and priority choose among the routes that share a path.
  const tree = FindMyWay({ ignoreDuplicateSlashes: false, caseSensitive: true, maxParamLength: 500 });
  const byPath = new Map<string, Candidates>();
  let n = 0;
  for (const spec of specs) {
    for (const uri of spec.uris) {
      const p = toFmwPath(uri);
      let list = byPath.get(p);
      if (!list) {
        list = Object.assign([] as RouteSpec[], { matched: Object.freeze({ uri, host }) });
        byPath.set(p, list);
        tree.on('GET', p, () => {}, list);
        if (++n % STEP === 0) yield;
      }
      if (!list.includes(spec)) list.push(spec);
    }
  }
  for (const list of byPath.values()) list.sort((a, b) => b.priority - a.priority || a.order - b.order);
  const prefixes = [...byPath].filter(([p]) => /^[^:*]*\*$/.test(p)).map(([p, list]) => [p.slice(0, -1), list] as const)
    .sort((a, b) => b[0].length - a[0].length);
  return { tree, prefixes };
}

/** A compiled routing table. */
export class Router {
  private exact = new Map<string, Table>();
  private suffixes: [string, Table][] = [];
  private any: Table | undefined;
  /** Some route has `vars` or `remote_addrs`: find needs an `accept`. */
  filtered = false;

  /** Builds the table at once; without `specs`, an empty one for `build` to fill. */
  constructor(specs?: readonly RouteSpec[]) {
    if (!specs) return;
    const steps = this.fill(specs);
    while (!steps.next().done);
  }

  /** Builds a table, awaiting `pause` now and then: a reload does not stall requests for the whole build. */
  static async build(specs: readonly RouteSpec[], pause: () => Promise<void> | void): Promise<Router> {
    const router = new Router();
    const steps = router.fill(specs);
    while (!steps.next().done) await pause();
    return router;
  }

  private *fill(specs: readonly RouteSpec[]): Generator<void, void> {
    const exact = new Map<string, RouteSpec[]>();
    const suffix = new Map<string, RouteSpec[]>();
    const any: RouteSpec[] = [];
    for (const s of specs) {
      if (s.filtered) this.filtered = true;
      if (!s.hosts?.length) { any.push(s); continue; }
      for (const h of s.hosts) {
        const host = h.toLowerCase().replace(/\.$/, '');
        const [map, key] = host.startsWith('*') ? [suffix, host.slice(1)] : [exact, host];
        let list = map.get(key);
        if (!list) map.set(key, (list = []));
        list.push(s);
      }
    }
    for (const [h, list] of exact) this.exact.set(h, yield* buildTree(list, h));
    const suffixes: [string, Table][] = [];
    for (const [h, list] of [...suffix].sort((a, b) => b[0].length - a[0].length)) suffixes.push([h, yield* buildTree(list, '*' + h)]);
    this.suffixes = suffixes;
    if (any.length) this.any = yield* buildTree(any, '');
  }

  /**
   * The route for a request, or undefined. `host` is in normal form
   * (normalizeHost: lower case, no port, no trailing dot). A route refused
   * by its methods, or by `accept` (its vars and remote_addrs), lets the
   * next one try, as in APISIX: the same path by priority, then shorter
   * prefixes, then less specific hosts.
   */
  find(method: string, path: string, host: string | undefined, accept?: Accept): Match | undefined {
    if (host && (this.exact.size || this.suffixes.length)) {
      const h = host;
      const table = this.exact.get(h);
      const m = table && lookup(table, method, path, accept);
      if (m) return m;
      for (const [suffix, t] of this.suffixes) {
        if (h.endsWith(suffix) && h.length > suffix.length) {
          const sm = lookup(t, method, path, accept);
          if (sm) return sm;
        }
      }
    }
    return this.any && lookup(this.any, method, path, accept);
  }
}

function lookup(table: Table, method: string, path: string, accept: Accept | undefined): Match | undefined {
  const found = table.tree.find('GET', path);
  if (!found) return undefined;
  const list = found.store as Candidates;
  let empty = false;
  // `/users/:id` needs a segment: find-my-way would also match `/users/`.
  for (const k in found.params) if (k !== '*' && found.params[k] === '') empty = true;
  const spec = empty ? undefined : pick(list, method, accept);
  if (spec) return { route: spec.route, params: found.params, matched: list.matched! };
  for (const [prefix, plist] of table.prefixes) {
    if (plist === list || !path.startsWith(prefix)) continue;
    const s = pick(plist, method, accept);
    if (s) return { route: s.route, params: { '*': path.slice(prefix.length) }, matched: plist.matched! };
  }
  return undefined;
}

/** The first route of one path that takes the method and passes its filters (a filtered route without `accept` never does). */
function pick(list: Candidates, method: string, accept: Accept | undefined): RouteSpec | undefined {
  for (let i = 0; i < list.length; i++) {
    const s = list[i];
    const m = s.methods;
    if (m !== undefined && !m.has(method)) continue;
    if (s.filtered && !accept?.(s.route)) continue;
    return s;
  }
  return undefined;
}
