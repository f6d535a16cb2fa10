/**
 * What crosses the thread boundary between the function pool and its workers.
 * The worker (worker.js) imports only these types.
 *
 * Calls are what the gateway pays for per request, on its main thread, so
 * they are small: what is fixed at load (functions, conf, phase, limits) goes
 * to a worker once as a program and is named by id afterwards; a call is a
 * flat array (no key strings to clone); a result carries only what the
 * functions changed. Calls gathered in one turn of the event loop travel
 * together as one batch.
 */

import type { MessagePort } from 'node:worker_threads';

export interface WireFn {
  id: string;
  label: string;
  source: string;
}

/** What one plugin instance runs in one phase; a worker keeps it by id. */
export interface WireProgram {
  id: string;
  fns: WireFn[];
  conf: unknown;
  phase: string;
  /** rewrite, access and before_proxy may end the request with a reply. */
  canReply: boolean;
  timeoutMs: number;
}

export interface WireResponse {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body?: Uint8Array | string;
}

/** One call. Positions are named in `CALL` (worker.js) and written by `wireCall` (pool.ts). */
export type WireCall = [
  seq: number,
  program: string,
  method: string,
  path: string,
  /** Raw `?a=b`: the worker parses it into `query` only if a function reads it. */
  search: string,
  headers: Record<string, string | string[] | undefined>,
  clientIp: string,
  /** Left out (undefined) when empty. */
  vars: Record<string, unknown> | undefined,
  routeId: string,
  routeUri: string,
  serviceId: string | undefined,
  consumer: string | undefined,
  response: WireResponse | undefined,
  body: Uint8Array | undefined,
  /** Sent only when the worker answered MISSING for this program. */
  full: WireProgram | undefined,
];

export interface LogLine { level: 'info' | 'warn' | 'error'; msg: string; fn: string }

export interface WireError { message: string; stack?: string; name?: string }

/** The functions ran and changed some of ctx; what they left alone is not sent. */
export interface WireChanges {
  path?: string;
  /** Request headers added or changed. */
  set?: Record<string, string | string[]>;
  /** Request headers removed. */
  del?: string[];
  query?: Record<string, string | string[]>;
  vars?: Record<string, unknown>;
  response?: WireResponse;
  reply?: { status: number; body?: unknown; headers?: Record<string, string | string[]> };
  logs?: LogLine[];
}

export interface WireFailure {
  reason: 'threw' | 'timeout' | 'unsendable' | 'too_large';
  fn: string;
  error: WireError;
  logs: LogLine[];
}

/** Ran, changed nothing, logged nothing. */
export const UNCHANGED = 0;
/** The worker does not have this program: send it again with `full`. */
export const MISSING = 1;
/** Still running (it awaited something): the result comes later on the worker's port. */
export const PENDING = 2;

export type CallResult = typeof UNCHANGED | typeof MISSING | WireChanges | WireFailure;
export type BatchSlot = CallResult | typeof PENDING;

/** A batch's answer. `port` comes once per worker, with its first PENDING slot. */
export interface BatchResult {
  thread: number;
  results: BatchSlot[];
  port?: MessagePort;
}

/** What a worker posts on its port when a PENDING call ends. */
export type LateResult = [seq: number, result: CallResult];

export interface CheckTask {
  kind: 'check';
  fns: WireFn[];
  timeoutMs: number;
}

export type Task = WireCall[] | CheckTask;

export interface CheckResult { problems: string[] }

/** Shared between pool and workers. */
export interface WorkerShared {
  /** Per thread slot: when its current sync call began (0: idle). */
  heartbeat: SharedArrayBuffer;
  slots: number;
  /** BroadcastChannel on which the pool publishes the function ids still configured. */
  channel: string;
  maxResultBytes: number;
  /** tinypool's module, whose markMovable lets a batch result carry the worker's port. */
  tinypool: string;
}
