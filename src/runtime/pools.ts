/**
 * The connection pools to upstream nodes (undici, one keep-alive pool per
 * node), their admission slots and passive health, kept by origin across
 * config snapshots.
 */
import { Pool } from 'undici';
import { log } from '../log.ts';
import type { UpstreamEntry, UpstreamNode } from '../snapshot.ts';
import { Slots } from './pool-slots.ts';

/** What passive checks know of one node; kept by origin, so it survives reloads. */
interface NodeHealth { tcpFails: number; httpFails: number; ejectedUntil: number }

/** The pools to upstream nodes, and their health, shared across config snapshots by origin. */
export class UpstreamPools {
  private pools = new Map<string, Pool>();
  private health = new Map<string, NodeHealth>();
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

  /** True while passive checks keep `node` out of rotation. */
  ejected(node: UpstreamNode): boolean {
    const h = this.health.get(node.origin);
    return h !== undefined && h.ejectedUntil > Date.now();
  }

  /** Records the outcome of a request to `node`: a status, or a connection failure/timeout (0). */
  record(node: UpstreamNode, up: UpstreamEntry, status: number): void {
    const check = up.passive;
    if (!check) return;
    let h = this.health.get(node.origin);
    if (!h) this.health.set(node.origin, (h = { tcpFails: 0, httpFails: 0, ejectedUntil: 0 }));
    if (status === 0) h.tcpFails++;
    else if (check.httpStatuses.has(status)) h.httpFails++;
    else { h.tcpFails = 0; h.httpFails = 0; return; }
    if (h.tcpFails >= check.tcpFailures || h.httpFails >= check.httpFailures) {
      h.ejectedUntil = Date.now() + check.ejectionMs;
      h.tcpFails = 0;
      h.httpFails = 0;
      log('warn', 'upstream node ejected by passive health check', { upstream: up.id, node: node.origin, seconds: check.ejectionMs / 1000 });
    }
  }

  get(node: UpstreamNode, upstream: UpstreamEntry): Pool {
    let pool = this.pools.get(node.origin);
    if (!pool) {
      pool = new Pool(node.origin, {
        connections: upstream.keepalive.size,
        keepAliveTimeout: upstream.keepalive.idleMs,
        keepAliveMaxTimeout: Math.max(upstream.keepalive.idleMs, 1000),
        connect: { timeout: upstream.timeout.connect },
        pipelining: 1,
      });
      this.pools.set(node.origin, pool);
    }
    return pool;
  }

  /** Keeps pools of `origins`; closes the others once their requests finish. */
  retain(origins: ReadonlySet<string>): void {
    for (const [origin, pool] of this.pools) {
      if (origins.has(origin)) continue;
      this.pools.delete(origin);
      this.health.delete(origin);
      this.slotsByOrigin.delete(origin);
      pool.close().catch(() => {});
    }
  }

  /** Number of pools kept (status and tests). */
  get size(): number { return this.pools.size; }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.destroy().catch(() => {})));
  }
}
