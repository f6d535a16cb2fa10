/** Merging plugin instances into a sorted, per-phase chain. */
import { PHASES, type PluginDef } from '../plugin.ts';
import type { Chain, Step } from '../snapshot.ts';
import { withMeta, type PluginMeta } from './plugin-meta.ts';

/** One configured plugin at one place (global rule, service, consumer, route), initialised. */
export interface Instance { def: PluginDef; state: unknown; meta?: PluginMeta }

const NONE: readonly Step[] = Object.freeze([]);
/** Shared by every route without plugins (10,000 such routes need one, not 10,000). */
const EMPTY_CHAIN: Chain = Object.freeze({
  rewrite: NONE, access: NONE, before_proxy: NONE, header_filter: NONE, body_filter: NONE, log: NONE, requestBody: 0, bufferResponse: false,
});

/** Later layers win: pass them from least to most specific. */
export function buildChain(layers: readonly (ReadonlyMap<string, Instance> | undefined)[]): Chain {
  const merged = new Map<string, Instance>();
  for (const layer of layers) if (layer) for (const [name, inst] of layer) merged.set(name, inst);
  if (merged.size === 0) return EMPTY_CHAIN;
  // `_meta.priority` replaces the plugin's own, as in APISIX.
  const rank = (i: Instance) => i.meta?.priority ?? i.def.priority;
  const sorted = [...merged.values()].sort((a, b) => rank(b) - rank(a) || (a.def.name < b.def.name ? -1 : a.def.name > b.def.name ? 1 : 0));
  const chain: Record<string, unknown> = {};
  const active = sorted.map((inst) => inst.def.activePhases?.(inst.state));
  for (const phase of PHASES) {
    const steps: Step[] = [];
    for (let i = 0; i < sorted.length; i++) {
      const inst = sorted[i];
      const fn = inst.def.phases[phase];
      if (fn && (active[i] === undefined || active[i]!.includes(phase))) steps.push(Object.freeze({ name: inst.def.name, fn: withMeta(fn, inst.meta, phase), conf: inst.state }));
    }
    chain[phase] = steps.length ? Object.freeze(steps) : NONE;
  }
  chain.requestBody = Math.max(0, ...sorted.map((i) => i.def.requestBody?.(i.state) ?? 0));
  chain.bufferResponse = (chain.body_filter as Step[]).length > 0;
  return Object.freeze(chain) as unknown as Chain;
}

/** True when some plugin in the layers can answer a request without an upstream. */
export function canReply(layers: readonly (ReadonlyMap<string, Instance> | undefined)[]): boolean {
  return layers.some((l) => l && [...l.values()].some((i) => i.def.canReply));
}
