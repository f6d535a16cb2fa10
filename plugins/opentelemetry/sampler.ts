/**
 * Samplers per route on one provider: the SDK fixes a provider's sampler, and
 * APISIX's is per route, so the provider's sampler reads the route's from the
 * context the span starts in (compiled once per load from `sampler`).
 */
import { createContextKey, type Attributes, type Context, type Link, type SpanKind } from '@opentelemetry/api';
import { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler, type Sampler, type SamplingResult } from '@opentelemetry/sdk-trace-base';

/** The route's sampler in a span's start context. */
export const SAMPLER_KEY = createContextKey('turnpike.opentelemetry.sampler');

export interface SamplerConf {
  name: 'always_on' | 'always_off' | 'trace_id_ratio' | 'parent_base';
  options?: { fraction?: number; root?: { name?: 'always_on' | 'always_off' | 'trace_id_ratio'; options?: { fraction?: number } } };
}

const OFF = new AlwaysOffSampler();
const ON = new AlwaysOnSampler();
/** Client spans follow their server span's decision. */
export const FOLLOW_PARENT: Sampler = new ParentBasedSampler({ root: OFF });

function simple(name: string | undefined, fraction: number | undefined): Sampler {
  if (name === 'always_on') return ON;
  if (name === 'trace_id_ratio') return new TraceIdRatioBasedSampler(fraction ?? 0);
  return OFF;
}

/** APISIX's `sampler` (defaults: always_off; parent_base with an always_off root) as an SDK sampler. */
export function compileSampler(conf: SamplerConf | undefined): Sampler {
  const o = conf?.options;
  if (conf?.name === 'parent_base') {
    // An unsampled parent is honoured too: the SDK's defaults (remote parent sampled → on, not sampled → off).
    return new ParentBasedSampler({ root: simple(o?.root?.name, o?.root?.options?.fraction) });
  }
  return simple(conf?.name, o?.fraction);
}

/** The provider's sampler: delegates to the one SAMPLER_KEY holds (always_off when none). */
export class RouteSampler implements Sampler {
  shouldSample(context: Context, traceId: string, name: string, kind: SpanKind, attributes: Attributes, links: Link[]): SamplingResult {
    const s = (context.getValue(SAMPLER_KEY) as Sampler | undefined) ?? OFF;
    return s.shouldSample(context, traceId, name, kind, attributes, links);
  }
  toString(): string { return 'RouteSampler'; }
}
