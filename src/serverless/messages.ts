/**
 * What crosses the thread boundary between the function pool and its workers:
 * the one definition both sides import (pool.ts and worker.ts).
 *
 * Calls are what the gateway pays for per request, on its main thread, so
 * they are small: what is fixed at load (functions, conf, phase, limits) goes
 * to a worker once as a program and is named by id afterwards; a call is a
 * flat array (no key strings to clone); a result carries only what the
 * functions changed, as plain data. Calls gathered in one turn of the event
 * loop travel together as one batch.
 */

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

/** Positions in a WireCall. */
export const SEQ = 0, PROGRAM = 1, METHOD = 2, PATH = 3, SEARCH = 4, HEADERS = 5, CLIENT_IP = 6, VARS = 7;
export const ROUTE_ID = 8, ROUTE_URI = 9, SERVICE = 10, CONSUMER = 11, RESPONSE = 12, BODY = 13, FULL = 14;

/** One call, a flat array: positions above. */
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

export interface WireError { message: string; stack?: string }

/** The functions ran and changed some of ctx; what they left alone is not sent. */
export interface WireChanges {
  path?: string;
  /** Request headers added or changed (names lower-case and valid). */
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
  reason: 'threw' | 'unsendable' | 'too_large';
  fn: string;
  error: WireError;
  logs: LogLine[];
}

/** Ran, changed nothing, logged nothing. */
export const UNCHANGED = 0;
/** The worker does not have this program: send it again with `full`. */
export const MISSING = 1;

export type CallResult = typeof UNCHANGED | typeof MISSING | WireChanges | WireFailure;

/** Message kinds, main thread to worker. */
export const BATCH = 0, CHECK = 1, PING = 2, CANCEL = 3, LIVE = 4;
/** Message kinds, worker to main thread. */
export const RESULTS = 10, CHECKED = 11, PONG = 12, READY = 13;

export type ToWorker =
  | [kind: typeof BATCH, calls: WireCall[]]
  | [kind: typeof CHECK, id: number, fns: WireFn[]]
  | [kind: typeof PING, n: number]
  /** The call's time is up on the main thread: end its timers and fetches; its answer is no longer read. */
  | [kind: typeof CANCEL, seq: number]
  /** The function ids still configured: the worker drops the others. */
  | [kind: typeof LIVE, ids: string[]];

export type FromWorker =
  /** Answers as pairs: seq, result, seq, result… (a batch's synchronous calls together; an async call alone). */
  | [kind: typeof RESULTS, answers: (number | CallResult)[]]
  | [kind: typeof CHECKED, id: number, problems: string[]]
  | [kind: typeof PONG, n: number]
  | [kind: typeof READY];

/** What a worker starts with. */
export interface WorkerInit {
  /** The SES bundle (lockdown, harden, Compartment), evaluated before anything else. */
  ses: string;
  maxResultBytes: number;
  /** Absolute paths functions may read through `fs.readFileSync` (a directory: everything under it). */
  allowFsRead: string[];
}
