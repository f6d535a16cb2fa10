/**
 * What crosses the thread boundary between the function pool and its workers.
 * The worker (worker.js) imports only these types.
 */

export interface WireFn {
  id: string;
  /** Label and source are sent only when the worker does not have the function yet. */
  label?: string;
  source?: string;
}

export interface WireRequest {
  method: string;
  path: string;
  /** Raw `?a=b`: the worker parses it into `query` for the function. */
  search: string;
  headers: Record<string, string | string[] | undefined>;
  client_ip: string;
  body?: Uint8Array;
}

export interface WireResponse {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body?: Uint8Array | string;
}

export interface WireCtx {
  request: WireRequest;
  vars: Record<string, unknown>;
  route: { id: string; uri: string };
  service?: { id: string };
  consumer?: { username: string };
  response?: WireResponse;
}

export interface CallTask {
  kind: 'call';
  fns: WireFn[];
  conf: unknown;
  phase: string;
  canReply: boolean;
  ctx: WireCtx;
  timeoutMs: number;
  maxResultBytes: number;
}

export interface CheckTask {
  kind: 'check';
  fns: Required<WireFn>[];
  timeoutMs: number;
}

export type Task = CallTask | CheckTask;

export interface LogLine { level: 'info' | 'warn' | 'error'; msg: string; fn: string }

export interface WireError { message: string; stack?: string; name?: string }

export type CallResult =
  | {
      kind: 'ok';
      reply?: { status: number; body?: unknown; headers?: Record<string, string | string[]> };
      request: { path: string; headers: Record<string, string | string[] | undefined>; query?: Record<string, string | string[]> };
      vars: Record<string, unknown>;
      response?: WireResponse;
      logs: LogLine[];
    }
  | { kind: 'missing' }
  | { kind: 'error'; reason: 'threw' | 'timeout' | 'unsendable' | 'too_large'; fn: string; error: WireError; logs: LogLine[] };

export interface CheckResult { problems: string[] }

/** Shared between pool and workers: per thread, when its current sync call began (0: idle). */
export interface WorkerShared {
  heartbeat: SharedArrayBuffer;
  slots: number;
  /** BroadcastChannel on which the pool publishes the function ids still configured. */
  channel: string;
}
