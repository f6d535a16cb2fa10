/**
 * Active health checks (APISIX's `checks.active`, lua-resty-healthcheck's
 * rules): each node of an upstream with active checks is probed every
 * `healthy.interval` while healthy, every `unhealthy.interval` while not. A
 * healthy node goes down after `http_failures` failing statuses, `tcp_failures`
 * failed connections or `timeouts` timeouts in a row; a down node comes back
 * after `successes` successes in a row. Runs once per host (the gateway alone,
 * or the host's first worker), writing the shared health table every worker's
 * proxy reads. `sync` follows reloads: an unchanged upstream keeps its probes
 * and state, a removed one's probes stop.
 */
import { log } from '../log.ts';
import type { SharedState, SharedTable } from '../plugin.ts';
import type { Snapshot, UpstreamEntry, UpstreamNode } from '../snapshot.ts';
import { A_DOWN, A_HTTP, A_LAST, A_OK, A_PROBES, A_TCP, A_TIMEOUTS, HEALTH_TTL_MS, healthTable } from './state.ts';
import { probe, PROBE_FAILED, PROBE_TIMEOUT, type ProbeOutcome } from './probe.ts';

/** Records one probe's outcome; answers the node's new state when it changed ('down' | 'up'), else undefined. */
function record(table: SharedTable, origin: string, up: UpstreamEntry, outcome: ProbeOutcome): 'down' | 'up' | undefined {
  const check = up.active!;
  return table.update(origin, (h, now) => {
    h[0] = now + HEALTH_TTL_MS;
    h[A_PROBES]++;
    h[A_LAST] = outcome;
    const success = check.type === 'tcp' ? outcome > 0 : check.healthyStatuses.has(outcome);
    if (success) {
      h[A_HTTP] = h[A_TCP] = h[A_TIMEOUTS] = 0;
      h[A_OK]++;
      if (h[A_DOWN] === 1 && h[A_OK] >= check.successes) { h[A_DOWN] = 0; return 'up'; }
      return undefined;
    }
    let failed: boolean;
    if (outcome === PROBE_TIMEOUT) failed = ++h[A_TIMEOUTS] >= check.timeouts;
    else if (outcome === PROBE_FAILED) failed = ++h[A_TCP] >= check.tcpFailures;
    else if (check.unhealthyStatuses.has(outcome)) failed = ++h[A_HTTP] >= check.httpFailures;
    else return undefined; // a status in neither list counts for neither
    h[A_OK] = 0;
    if (failed && h[A_DOWN] !== 1) { h[A_DOWN] = 1; return 'down'; }
    return undefined;
  }) as 'down' | 'up' | undefined;
}

/** The probes of one upstream's nodes. */
class Checker {
  private timers = new Map<UpstreamNode, NodeJS.Timeout>();
  private inFlight = 0;
  private waiting: UpstreamNode[] = [];
  private readonly abort = new AbortController();
  private readonly up: UpstreamEntry;
  private readonly table: SharedTable;
  constructor(up: UpstreamEntry, table: SharedTable) {
    this.up = up;
    this.table = table;
    // The first round at once, so a node already down is known within one timeout.
    for (const n of up.nodes) this.due(n);
  }

  /** `node` is due: probe it now, or once a probe of this upstream finishes (concurrency). */
  private due(node: UpstreamNode): void {
    this.timers.delete(node);
    if (this.abort.signal.aborted) return;
    if (this.inFlight >= this.up.active!.concurrency) { this.waiting.push(node); return; }
    this.inFlight++;
    void probe(node, this.up.active!, this.abort.signal).then((outcome) => {
      this.inFlight--;
      if (this.abort.signal.aborted) return;
      const change = record(this.table, node.origin, this.up, outcome);
      if (change) log('warn', change === 'down' ? 'upstream node down by active health check' : 'upstream node back up by active health check', { upstream: this.up.id, node: node.origin, probe: outcome === PROBE_TIMEOUT ? 'timeout' : outcome === PROBE_FAILED ? 'connection failed' : outcome });
      this.schedule(node);
      const next = this.waiting.shift();
      if (next) this.due(next);
    });
  }

  private schedule(node: UpstreamNode): void {
    const down = this.table.read(node.origin)?.[A_DOWN] === 1;
    const check = this.up.active!;
    const t = setTimeout(() => this.due(node), down ? check.unhealthyIntervalMs : check.healthyIntervalMs);
    t.unref();
    this.timers.set(node, t);
  }

  /** Stops every timer and probe in flight. */
  stop(): void {
    this.abort.abort();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.waiting = [];
  }
}

/** The host's active probes, following the config in force. */
export class ActiveProbes {
  private checkers = new Map<UpstreamEntry, Checker>();
  private readonly table: SharedTable;
  constructor(shared: SharedState) {
    this.table = healthTable(shared);
  }

  /**
   * Probes the upstreams with active checks that `snap` uses: an unchanged one
   * (the same compiled entry, reused across reloads) keeps its checker; the
   * others stop, and a node no upstream probes any more is no longer held down.
   */
  sync(snap: Snapshot): void {
    const want = new Set<UpstreamEntry>();
    for (const r of snap.routes) if (r.upstream?.active) want.add(r.upstream);
    const probed = new Set<string>();
    for (const up of want) for (const n of up.nodes) probed.add(n.origin);
    for (const [up, c] of this.checkers) {
      if (want.has(up)) continue;
      c.stop();
      this.checkers.delete(up);
      for (const n of up.nodes) if (!probed.has(n.origin)) this.clear(n.origin);
    }
    for (const up of want) if (!this.checkers.has(up)) this.checkers.set(up, new Checker(up, this.table));
  }

  private clear(origin: string): void {
    if (!this.table.read(origin)) return;
    this.table.update(origin, (h) => { h[A_DOWN] = h[A_OK] = h[A_HTTP] = h[A_TCP] = h[A_TIMEOUTS] = 0; });
  }

  /** Upstreams being probed (tests and status). */
  get size(): number { return this.checkers.size; }

  /** Stops every probe (the gateway closes). */
  stop(): void {
    for (const c of this.checkers.values()) c.stop();
    this.checkers.clear();
  }
}
