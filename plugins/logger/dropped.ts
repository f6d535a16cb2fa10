/** `turnpike_logger_dropped_total{plugin}`: log entries a logger dropped (sink down or too slow), in the gateway's registry. */
import { Counter, type Registry } from 'prom-client';

const byRegistry = new WeakMap<Registry, Counter<'plugin'>>();

/** A function that counts `n` entries `plugin` dropped; the counter is registered once per registry. */
export function dropCounter(registry: Registry, plugin: string): (n: number) => void {
  let c = byRegistry.get(registry);
  if (!c) {
    c = new Counter({ name: 'turnpike_logger_dropped_total', help: 'Log entries dropped by a logger plugin (its sink down or too slow)', labelNames: ['plugin'], registers: [registry] });
    byRegistry.set(registry, c);
  }
  const counter = c;
  counter.inc({ plugin }, 0);
  return (n) => counter.inc({ plugin }, n);
}
