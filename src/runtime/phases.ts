/**
 * Running one phase of a chain. Sync handlers stay sync: a promise is awaited
 * only when a handler returned one.
 */
import { GatewayError } from '../errors.ts';
import type { HandlerResult, Reply } from '../plugin.ts';
import type { Step } from '../snapshot.ts';
import type { RequestCtx } from './context.ts';
import { log } from '../log.ts';

/** A plugin failed; carries its name for the log. */
export class PluginFailure extends Error {
  readonly plugin: string;
  readonly error: unknown;
  constructor(plugin: string, error: unknown) {
    super(`plugin ${plugin} failed: ${(error as Error)?.message ?? String(error)}`);
    this.plugin = plugin;
    this.error = error;
  }
  get status(): number { return this.error instanceof GatewayError ? this.error.status : 500; }
}

/** True for a promise (or any thenable): sync results are never wrapped in one. */
export function isThenable<T = HandlerResult>(v: unknown): v is PromiseLike<T> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

function checkReply(step: Step, r: unknown): Reply {
  if (typeof r !== 'object' || r === null || typeof (r as Reply).status !== 'number') {
    throw new PluginFailure(step.name, new Error('returned something that is not a reply { status, body?, headers? }'));
  }
  const st = (r as Reply).status;
  // 1xx would desynchronise the client's next response; 250.5 is no status.
  if (!Number.isInteger(st) || st < 200 || st > 599) throw new PluginFailure(step.name, new Error(`replied with status ${st}: a reply's status is an integer 200-599`));
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

/**
 * rewrite, access, then before_proxy, until a reply. When an auth plugin names
 * the consumer during rewrite, ctx.chain switches to that consumer's chain and
 * the rest runs there. Stays synchronous while the handlers are.
 */
export function runRequestPhases(ctx: RequestCtx): Reply | undefined | Promise<Reply | undefined> {
  const r = runPhase(ctx.chain.rewrite, ctx, true, 0, ctx.entry.consumerChains !== undefined);
  return isThenable<Reply | undefined>(r) ? Promise.resolve(r).then((v) => afterRewrite(ctx, v)) : afterRewrite(ctx, r);
}

function afterRewrite(ctx: RequestCtx, reply: Reply | undefined): Reply | undefined | Promise<Reply | undefined> {
  if (reply !== CONSUMER_SET) return reply ?? fromAccess(ctx);
  const chain = ctx.entry.consumerChains!.get(ctx.consumer!.username) ?? ctx.chain;
  ctx.chain = chain;
  const r = runPhase(chain.rewrite, ctx, true, chain.rewrite.findIndex((s) => s.name === ctx.plugin) + 1);
  return isThenable<Reply | undefined>(r) ? Promise.resolve(r).then((v) => v ?? fromAccess(ctx)) : r ?? fromAccess(ctx);
}

function fromAccess(ctx: RequestCtx): Reply | undefined | Promise<Reply | undefined> {
  const r = runPhase(ctx.chain.access, ctx, true);
  return isThenable<Reply | undefined>(r) ? Promise.resolve(r).then((v) => v ?? runPhase(ctx.chain.before_proxy, ctx, true)) : r ?? runPhase(ctx.chain.before_proxy, ctx, true);
}

/** Runs the log phase after the response; failures are logged, never thrown. */
export function runLogPhase(ctx: RequestCtx): void {
  if (ctx.chain.log.length === 0) return;
  const failed = (err: unknown) => log('error', 'log phase failed', { route: ctx.route.id, plugin: (err as PluginFailure).plugin, error: (err as PluginFailure).error ?? err });
  try {
    const r = runPhase(ctx.chain.log, ctx, false);
    if (isThenable(r)) Promise.resolve(r).catch(failed);
  } catch (err) {
    failed(err);
  }
}
