/**
 * limit-count's `group`: instances that share one counter. As APISIX, every
 * instance of a group must be configured alike (a group is one limit); a
 * mismatch rejects the load, naming where the group was first configured.
 */
import { canonicalJson } from '../limit/key.ts';

const seen = new WeakMap<object, Map<string, { json: string; where: string }>>();

/** Records `conf` for its group in this load; a message when it differs from the group's first instance. */
export function groupProblem(load: object, group: string, conf: unknown, where: string): string | undefined {
  let groups = seen.get(load);
  if (!groups) seen.set(load, (groups = new Map()));
  const json = canonicalJson(conf);
  const first = groups.get(group);
  if (!first) { groups.set(group, { json, where }); return undefined; }
  if (first.json === json) return undefined;
  return `group "${group}" is configured differently at ${first.where}: every instance of a group must have the same config`;
}
