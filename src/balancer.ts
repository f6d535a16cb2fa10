/**
 * Node selection: smooth weighted round robin (nginx's), least connections,
 * and a consistent-hash ring. Pure state machines; the proxy tells them about
 * connections opened and closed.
 */
import type { UpstreamNode } from './snapshot.ts';

/** Picks the node for each request; one per compiled upstream, kept across reloads that leave it unchanged. */
export interface Balancer {
  /** A node, skipping those in `exclude` (already tried); undefined when none is left. */
  pick(hashKey: string | undefined, exclude?: ReadonlySet<UpstreamNode>): UpstreamNode | undefined;
  acquire(node: UpstreamNode): void;
  release(node: UpstreamNode): void;
}

class RoundRobin implements Balancer {
  private current: number[];
  private total: number;
  private nodes: readonly UpstreamNode[];
  constructor(nodes: readonly UpstreamNode[]) {
    this.nodes = nodes;
    this.current = nodes.map(() => 0);
    this.total = nodes.reduce((s, n) => s + n.weight, 0);
  }
  pick(_key: string | undefined, exclude?: ReadonlySet<UpstreamNode>): UpstreamNode | undefined {
    const { nodes, current } = this;
    if (nodes.length === 1) return exclude?.has(nodes[0]) || nodes[0].weight === 0 ? undefined : nodes[0];
    let best = -1;
    for (let i = 0; i < nodes.length; i++) {
      if (nodes[i].weight === 0 || exclude?.has(nodes[i])) continue;
      current[i] += nodes[i].weight;
      if (best < 0 || current[i] > current[best]) best = i;
    }
    if (best < 0) return undefined;
    current[best] -= this.total;
    return nodes[best];
  }
  acquire(): void {}
  release(): void {}
}

class LeastConn implements Balancer {
  private active = new Map<UpstreamNode, number>();
  private nodes: readonly UpstreamNode[];
  constructor(nodes: readonly UpstreamNode[]) {
    this.nodes = nodes;
  }
  pick(_key: string | undefined, exclude?: ReadonlySet<UpstreamNode>): UpstreamNode | undefined {
    let best: UpstreamNode | undefined;
    let bestScore = Infinity;
    for (const n of this.nodes) {
      if (n.weight === 0 || exclude?.has(n)) continue;
      const score = ((this.active.get(n) ?? 0) + 1) / n.weight;
      if (score < bestScore) { best = n; bestScore = score; }
    }
    return best;
  }
  acquire(n: UpstreamNode): void { this.active.set(n, (this.active.get(n) ?? 0) + 1); }
  release(n: UpstreamNode): void { this.active.set(n, Math.max(0, (this.active.get(n) ?? 1) - 1)); }
}

/** FNV-1a, then murmur3's finalizer: FNV alone clusters similar short keys (user-1, user-2…). */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193); }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

class ConsistentHash implements Balancer {
  private points: Uint32Array;
  private owners: UpstreamNode[];
  private rr: RoundRobin;
  constructor(nodes: readonly UpstreamNode[]) {
    const ring: [number, UpstreamNode][] = [];
    for (const n of nodes) for (let v = 0; v < n.weight * 40; v++) ring.push([hash32(`${n.origin}#${v}`), n]);
    ring.sort((a, b) => a[0] - b[0]);
    this.points = Uint32Array.from(ring.map((r) => r[0]));
    this.owners = ring.map((r) => r[1]);
    this.rr = new RoundRobin(nodes);
  }
  pick(key: string | undefined, exclude?: ReadonlySet<UpstreamNode>): UpstreamNode | undefined {
    if (key === undefined || this.points.length === 0) return this.rr.pick(undefined, exclude);
    const h = hash32(key);
    let lo = 0, hi = this.points.length;
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (this.points[mid] < h) lo = mid + 1; else hi = mid; }
    for (let i = 0; i < this.owners.length; i++) {
      const n = this.owners[(lo + i) % this.owners.length];
      if (!exclude?.has(n)) return n;
    }
    return undefined;
  }
  acquire(): void {}
  release(): void {}
}

/** The balancer for an upstream's `type`. */
export function createBalancer(type: string, nodes: readonly UpstreamNode[]): Balancer {
  if (type === 'least_conn') return new LeastConn(nodes);
  if (type === 'chash') return new ConsistentHash(nodes);
  return new RoundRobin(nodes);
}
