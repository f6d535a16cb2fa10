/**
 * What the main thread and the workers say to each other, and the layout of
 * the stats buffer they share: one definition both sides import.
 */
import type { ConfigIssue } from '../errors.ts';
import type { HealthNode } from '../health/state.ts';
import type { ConfigSource } from './gateway.ts';
import type { Registry } from 'prom-client';

/** A registry's series as prom-client's getMetricsAsJSON gives them (what AggregatorRegistry sums). */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;
import type { CertStatus } from '../tls/status.ts';

/** Float64 cells per worker in the stats buffer: [0] open connections, [1..5] responses by status class, [6] YAML parses, [7] V8 heap bytes. */
export const STATS_ROW = 8;
export const STAT_CONNECTIONS = 0;
export const STAT_PARSES = 6;
/** The worker's V8 heap (total_heap_size), refreshed with its heartbeat. */
export const STAT_HEAP = 7;
/** How often a worker's event loop bumps its heartbeat, in ms. */
export const BEAT_MS = 100;
/** How long a worker's log lines wait to go to the main thread in one message, in ms. */
export const LOG_BATCH_MS = 20;

/** A worker's start-up data. */
export interface WorkerInit {
  index: number;
  workers: number;
  config: string;
  env?: Readonly<Record<string, string | undefined>>;
  /** Undefined for the first worker (the file's ports); every other worker gets the ports the first one took, in listener order. */
  ports?: number[];
  /** TLS session ticket keys, made once by the main thread: a session resumes on any worker. */
  ticketKeys: Uint8Array;
  source: ConfigSource;
  shared: SharedArrayBuffer;
  /** Float64 rows of STATS_ROW cells, one per worker index. */
  stats: SharedArrayBuffer;
  /** Int32 per worker index: its event loop's heartbeat. */
  beats: SharedArrayBuffer;
  /** Accept the `hook` message (tests only). */
  testHooks: boolean;
}

/** What the main thread needs of a worker's certificates: /status rows, and the default entry for an admin TLS listener. */
export interface WorkerTls {
  certs: CertStatus[];
  /** The default entry's certificates and keys (the admin listener's TLS), if one is marked. */
  adminCert?: { cert: unknown; key: unknown; ca?: unknown };
  /** The port of the first TLS listener. */
  httpsPort?: number;
}

/** Test hooks: crash the worker, block its event loop, or make it reject the next config. */
export type Hook = 'crash' | 'block' | 'reject';

export type ToWorker =
  | { type: 'prepare'; seq: number; source: ConfigSource }
  | { type: 'commit'; seq: number }
  | { type: 'abort'; seq: number }
  | { type: 'drain'; graceMs: number }
  | { type: 'hook'; hook: Hook }
  | { type: 'metrics'; seq: number };

export type FromWorker =
  | { type: 'started'; port: number; ports: number[]; hash: string; tls: WorkerTls }
  | { type: 'failed'; issues: ConfigIssue[]; message?: string }
  | { type: 'prepared'; seq: number; ok: boolean; hash: string; issues: ConfigIssue[] }
  | { type: 'committed'; seq: number; hash: string; tls: WorkerTls }
  | { type: 'drained' }
  /** From the worker that probes: the checked nodes of the config in force (for the host's /status). */
  | { type: 'health-nodes'; nodes: HealthNode[] }
  | { type: 'log'; chunk: string }
  | { type: 'metrics'; seq: number; data: MetricsJson };
