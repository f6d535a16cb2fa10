/**
 * The connection pools to upstream nodes (undici, one keep-alive pool per
 * node), their admission slots and passive health, kept by origin across
 * config snapshots.
 */
import { buildConnector, Pool } from 'undici';
import { log } from '../log.ts';
import { HEALTH_TTL_MS, healthTable, isOut, P_HTTP as HTTP, P_TCP as TCP, P_UNTIL as UNTIL } from '../health/state.ts';
import type { SharedState, SharedTable } from '../plugin.ts';
import type { UpstreamEntry, UpstreamNode } from '../snapshot.ts';
import { Slots } from './pool-slots.ts';
import { withStrayContinueFilter } from './stray-continue.ts';
import { tlsConnector } from './upstream-tls.ts';

/** The pools to upstream nodes (this worker's), and their health (the host's), shared across config snapshots by origin. */
export class UpstreamPools {
  private pools = new Map<string, Pool>();
  private health: SharedTable;
  constructor(shared: SharedState) {
    // Passive health, and active probes' results, by origin: shared by every worker (src/health/state.ts).
    this.health = healthTable(shared);
  }
  private slotsByOrigin = new Map<string, Slots>();

  /** Admission to `node`'s connections (see pool-slots.ts). */
  slots(node: UpstreamNode, upstream: UpstreamEntry): Slots {
    let s = this.slotsByOrigin.get(node.origin);
    if (!s) this.slotsByOrigin.set(node.origin, (s = new Slots(node.origin, upstream.keepalive.size)));
    return s;
  }

  /** Connections in use, uploads among them, and requests waiting, by node (admin /status). */
  usage(): Record<string, ReturnType<Slots['usage']>> {
    const out: Record<string, ReturnType<Slots['usage']>> = {};
    for (const [origin, s] of this.slotsByOrigin) out[origin] = s.usage();
    return out;
  }

  /** True while passive checks or active probes keep `node` out of rotation. */
  ejected(node: UpstreamNode): boolean {
    return isOut(this.health.read(node.origin), Date.now());
  }

  /** Records the outcome of a request to `node`: a status, or a connection failure/timeout (0). */
  record(node: UpstreamNode, up: UpstreamEntry, status: number): void {
    const check = up.passive;
    if (!check) return;
    const ejected = this.health.update(node.origin, (h, now) => {
      h[0] = now + Math.max(HEALTH_TTL_MS, check.ejectionMs);
      if (status === 0) h[TCP]++;
      else if (check.httpStatuses.has(status)) h[HTTP]++;
      else { h[TCP] = 0; h[HTTP] = 0; return false; }
      if (h[TCP] < check.tcpFailures && h[HTTP] < check.httpFailures) return false;
      h[UNTIL] = now + check.ejectionMs;
      h[TCP] = 0;
      h[HTTP] = 0;
      return true;
    });
    if (ejected) {
      log('warn', 'upstream node ejected by passive health check', { upstream: up.id, node: node.origin, seconds: check.ejectionMs / 1000 });
    }
  }

  /** `node`'s pool; an https node's is kept under its origin and TLS settings (tls.poolKey). */
  get(node: UpstreamNode, upstream: UpstreamEntry): Pool {
    const key = node.tls?.poolKey ?? node.origin;
    let pool = this.pools.get(key);
    if (!pool) {
      const connect = node.tls ? tlsConnector(node.tls, upstream.timeout.connect) : buildConnector({ timeout: upstream.timeout.connect });
      pool = new Pool(node.origin, {
        connections: upstream.keepalive.size,
        keepAliveTimeout: upstream.keepalive.idleMs,
        keepAliveMaxTimeout: Math.max(upstream.keepalive.idleMs, 1000),
        connect: withStrayContinueFilter(connect, node.origin),
        pipelining: 1,
      });
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** Keeps pools and admission of `keys` (origins, and https nodes' pool keys); closes the others once their requests finish. */
  retain(keys: ReadonlySet<string>): void {
    for (const [key, pool] of this.pools) {
      if (keys.has(key)) continue;
      this.pools.delete(key);
      pool.close().catch(() => {});
    }
    for (const origin of this.slotsByOrigin.keys()) if (!keys.has(origin)) this.slotsByOrigin.delete(origin);
  }

  /** Number of pools kept (status and tests). */
  get size(): number { return this.pools.size; }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.destroy().catch(() => {})));
  }
}
