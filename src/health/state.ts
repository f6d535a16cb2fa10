/**
 * The health of upstream nodes, by origin, in one table every worker of the
 * host shares: passive checks (pools.ts) and active probes (active.ts) write
 * it, the proxy reads it (a node out in one worker is out in all), and the
 * admin /status explains it. One layout both sides import.
 */
import type { SharedState, SharedTable } from '../plugin.ts';
import type { Snapshot } from '../snapshot.ts';

export const HEALTH_TABLE = 'turnpike:upstream-health';
/**
 * Cells: [0] expiry; passive: [1] tcp failures, [2] http failures, [3] ejected
 * until (ms); active: [4] down (1), [5] successes, [6] http failures, [7] tcp
 * failures, [8] timeouts (each in a row), [9] probes sent, [10] the last
 * probe's outcome (a status; 0 connection failed; -1 timed out).
 */
export const HEALTH_SLOTS = 11;
export const P_TCP = 1, P_HTTP = 2, P_UNTIL = 3;
export const A_DOWN = 4, A_OK = 5, A_HTTP = 6, A_TCP = 7, A_TIMEOUTS = 8, A_PROBES = 9, A_LAST = 10;
/** An entry expires this long after its last record, so origins that left the config do not fill the table. */
export const HEALTH_TTL_MS = 10 * 60_000;

/** The shared health table (the same in every worker and across reloads). */
export function healthTable(shared: SharedState): SharedTable {
  return shared.table(HEALTH_TABLE, { slots: HEALTH_SLOTS, capacity: 10_000 });
}

/** True while passive checks eject the node or active probes hold it down (cells from table.read). */
export function isOut(h: Float64Array | undefined, now: number): boolean {
  return h !== undefined && (h[P_UNTIL] > now || h[A_DOWN] === 1);
}

/** One node of the config in force, for /status: which upstream, which checks, its TLS settings (https). */
export interface HealthNode {
  upstream: string; node: string; active: boolean; passive: boolean;
  tls?: { verify: boolean; sni: string | null; ca: 'system' | 'configured'; client_cert: boolean };
}

/** The nodes of the snapshot's upstreams that have health checks or TLS. */
export function checkedNodes(snap: Snapshot): HealthNode[] {
  const out: HealthNode[] = [];
  const seen = new Set<string>();
  for (const r of snap.routes) {
    const up = r.upstream;
    if (!up) continue;
    for (const n of up.nodes) {
      const key = `${up.id}\0${n.origin}`;
      if ((!up.active && !up.passive && !n.tls) || seen.has(key)) continue;
      seen.add(key);
      const t = n.tls;
      out.push({
        upstream: up.id, node: n.origin, active: !!up.active, passive: !!up.passive,
        ...(t ? { tls: { verify: t.verify, sni: t.servername ?? null, ca: t.ca ? 'configured' : 'system', client_cert: t.cert !== undefined } } : {}),
      });
    }
  }
  return out;
}

/** The TLS settings of each https node (never a certificate or key), for /status. */
export function describeTls(nodes: readonly HealthNode[]): Record<string, unknown>[] {
  return nodes.filter((n) => n.tls).map((n) => ({ upstream: n.upstream, node: n.node, ...n.tls }));
}

const outcome = (v: number) => (v === -1 ? 'timeout' : v === 0 ? 'connection failed' : `status ${v}`);

/** Each node's health and why, for the admin /status. */
export function describeHealth(table: SharedTable, nodes: readonly HealthNode[]): Record<string, unknown>[] {
  const now = Date.now();
  return nodes.filter((n) => n.active || n.passive).map((n) => {
    const h = table.read(n.node);
    const reasons: string[] = [];
    if (h && h[A_DOWN] === 1) reasons.push(`active: probes failing (last: ${outcome(h[A_LAST])}; in a row: ${h[A_HTTP]} http, ${h[A_TCP]} tcp, ${h[A_TIMEOUTS]} timeouts)`);
    if (h && h[P_UNTIL] > now) reasons.push(`passive: ejected for ${Math.ceil((h[P_UNTIL] - now) / 1000)} s more`);
    const row: Record<string, unknown> = { upstream: n.upstream, node: n.node, healthy: reasons.length === 0, reason: reasons.join('; ') || null };
    if (n.active) row.active = h && h[A_PROBES] > 0 ? { probes: h[A_PROBES], last: outcome(h[A_LAST]), successes: h[A_OK] } : { probes: 0 };
    return row;
  });
}
