/**
 * Route matching: a radix tree (find-my-way) per host group. Exact hosts are
 * tried first, then `*.suffix` hosts (longest first), then routes with no host,
 * so a host-specific route never hides a generic one for other hosts.
 */
import FindMyWay from 'find-my-way';
import type { RouteEntry } from './snapshot.ts';

const ALL_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE'] as const;

export interface RouteSpec {
  route: RouteEntry;
  uris: readonly string[];
  methods?: readonly string[];
  hosts?: readonly string[];
  priority: number;
  /** Declaration order: breaks priority ties. */
  order: number;
}

export interface Match { route: RouteEntry; params: Record<string, string | undefined> }

type Candidates = RouteSpec[];
type Tree = ReturnType<typeof FindMyWay>;

function toFmwPath(uri: string): string {
  // APISIX `/api/*` is a prefix; find-my-way's `*` is the same wildcard.
  return uri;
}

function buildTree(specs: RouteSpec[]): Tree {
  const tree = FindMyWay({ ignoreDuplicateSlashes: false, caseSensitive: true, maxParamLength: 500 });
  const byKey = new Map<string, Candidates>();
  for (const spec of specs) {
    for (const uri of spec.uris) {
      for (const m of spec.methods ?? ALL_METHODS) {
        const key = m + ' ' + toFmwPath(uri);
        let list = byKey.get(key);
        if (!list) {
          list = [];
          byKey.set(key, list);
          tree.on(m as 'GET', toFmwPath(uri), () => {}, list);
        }
        list.push(spec);
      }
    }
  }
  for (const list of byKey.values()) list.sort((a, b) => b.priority - a.priority || a.order - b.order);
  return tree;
}

/** A compiled routing table. */
export class Router {
  private exact = new Map<string, Tree>();
  private suffixes: [string, Tree][] = [];
  private any: Tree | undefined;

  constructor(specs: readonly RouteSpec[]) {
    const exact = new Map<string, RouteSpec[]>();
    const suffix = new Map<string, RouteSpec[]>();
    const any: RouteSpec[] = [];
    for (const s of specs) {
      if (!s.hosts?.length) { any.push(s); continue; }
      for (const h of s.hosts) {
        const host = h.toLowerCase();
        const [map, key] = host.startsWith('*.') ? [suffix, host.slice(1)] : [exact, host];
        let list = map.get(key);
        if (!list) map.set(key, (list = []));
        list.push(s);
      }
    }
    for (const [h, list] of exact) this.exact.set(h, buildTree(list));
    this.suffixes = [...suffix].sort((a, b) => b[0].length - a[0].length).map(([h, list]) => [h, buildTree(list)]);
    if (any.length) this.any = buildTree(any);
  }

  /** The route for a request, or undefined. `host` may carry a port. */
  find(method: string, path: string, host: string | undefined): Match | undefined {
    if (host && (this.exact.size || this.suffixes.length)) {
      let h = host;
      const colon = h.lastIndexOf(':');
      if (colon > 0 && h.indexOf(']') < colon) h = h.slice(0, colon);
      h = h.toLowerCase();
      const tree = this.exact.get(h);
      const m = tree && lookup(tree, method, path);
      if (m) return m;
      for (const [suffix, t] of this.suffixes) {
        if (h.endsWith(suffix) && h.length > suffix.length) {
          const sm = lookup(t, method, path);
          if (sm) return sm;
        }
      }
    }
    return this.any && lookup(this.any, method, path);
  }
}

function lookup(tree: Tree, method: string, path: string): Match | undefined {
  const found = tree.find(method as 'GET', path);
  if (!found) return undefined;
  // `/users/:id` needs a segment: find-my-way would also match `/users/`.
  for (const k in found.params) if (k !== '*' && found.params[k] === '') return undefined;
  const list = found.store as Candidates;
  return { route: list[0].route, params: found.params };
}
