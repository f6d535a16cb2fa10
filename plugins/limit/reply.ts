/**
 * What limit-count, limit-req and limit-conn answer: the rejection a client
 * over its limit gets, and what happens when the counter store fails
 * (APISIX's rule: 500 unless `allow_degradation`, which lets the request through).
 */
import type { Ctx, Reply } from '../../src/plugin.ts';

/** The fields every rate-limit plugin shares. */
export interface RejectConf {
  rejected_code: number;
  rejected_msg?: string;
  allow_degradation: boolean;
}

/** The rejection, compiled once: `{"error_msg": rejected_msg}` as APISIX, or no body. */
export function rejection(conf: RejectConf): Readonly<Reply> {
  return Object.freeze(conf.rejected_msg === undefined
    ? { status: conf.rejected_code }
    : { status: conf.rejected_code, body: Object.freeze({ error_msg: conf.rejected_msg }) });
}

const lastLogged = new Map<string, number>();
const LOG_EVERY_MS = 5000;

/** An error log line at most every 5 s per tag: a cause clients or an outage repeat under load must not flood the log. */
export function logThrottled(ctx: Ctx, tag: string, msg: string, fields: Record<string, unknown>): void {
  const now = Date.now();
  if ((lastLogged.get(tag) ?? 0) + LOG_EVERY_MS > now) return;
  if (lastLogged.size > 1000) lastLogged.clear();
  lastLogged.set(tag, now);
  ctx.log.error(msg, fields);
}

/**
 * The store failed for this request: logged (throttled per plugin and reason),
 * then let through with `allow_degradation`, else 500 `{"error_msg": "failed to limit <what>"}`.
 */
export function storeFailed(conf: RejectConf, ctx: Ctx, what: string, err: unknown): Reply | undefined {
  const reason = (err as Error)?.message ?? String(err);
  logThrottled(ctx, `${what}:${reason}`, `failed to limit ${what}`, { error: reason, allow_degradation: conf.allow_degradation });
  if (conf.allow_degradation) return undefined;
  return { status: 500, body: { error_msg: `failed to limit ${what}` } };
}

/** The error for a shared table that is full of live keys. */
export const TABLE_FULL = new Error('the shared counter table is full');

/** True for a promise: sync counters stay sync. */
export function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown })?.then === 'function';
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
