/**
 * Running one phase of a chain. Sync handlers stay sync: a promise is awaited
 * only when a handler returned one.
 */
import { GatewayError } from '../errors.ts';
import type { HandlerResult, Reply } from '../plugin.ts';
import type { Step } from '../snapshot.ts';
import type { RequestCtx } from './context.ts';

/** A plugin failed; carries its name for the log. */
export class PluginFailure extends Error {
  constructor(readonly plugin: string, readonly error: unknown) {
    super(`plugin ${plugin} failed: ${(error as Error)?.message ?? String(error)}`);
  }
  get status(): number { return this.error instanceof GatewayError ? this.error.status : 500; }
}

function isThenable(v: unknown): v is PromiseLike<HandlerResult> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

function checkReply(step: Step, r: unknown): Reply {
  if (typeof r !== 'object' || r === null || typeof (r as Reply).status !== 'number' || (r as Reply).status < 100 || (r as Reply).status > 999) {
    throw new PluginFailure(step.name, new Error('returned something that is not a reply { status, body?, headers? }'));
  }
  return r as Reply;
}

/** Returned by runPhase when a step identified the consumer and the chain must switch. */
export const CONSUMER_SET: Reply = Object.freeze({ status: 0 });

/**
 * Runs steps from `from`; the first reply ends the phase. Returns the reply,
 * undefined, or a promise of either when a handler was async. With
 * `watchConsumer`, stops with CONSUMER_SET right after the step that set
 * ctx.consumer (ctx.plugin names it), so the caller can go on in that consumer's chain.
 */
export function runPhase(steps: readonly Step[], ctx: RequestCtx, canReply: boolean, from = 0, watchConsumer = false): Reply | undefined | Promise<Reply | undefined> {
  for (let i = from; i < steps.length; i++) {
    const step = steps[i];
    ctx.plugin = step.name;
    let r: unknown;
    try {
      r = step.fn(step.conf, ctx);
    } catch (err) {
      throw new PluginFailure(step.name, err);
    }
    if (r === undefined || r === null) {
      if (watchConsumer && ctx.consumer) return CONSUMER_SET;
      continue;
    }
    if (isThenable(r)) {
      return Promise.resolve(r).then(
        (v) => (v === undefined || v === null || !canReply
          ? (watchConsumer && ctx.consumer ? CONSUMER_SET : runPhase(steps, ctx, canReply, i + 1, watchConsumer))
          : checkReply(step, v)),
        (err) => { throw new PluginFailure(step.name, err); },
      );
    }
    if (canReply) return checkReply(step, r);
  }
  return undefined;
}
