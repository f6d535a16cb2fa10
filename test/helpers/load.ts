/** Loading a config text without starting a gateway: the messages a rejected file gets. */
import { after } from 'node:test';
import { formatIssue } from '../../src/errors.ts';
import { loadConfigText } from '../../src/config/load.ts';
import { FunctionPools } from '../../src/serverless/pool.ts';

// Threads start only if a config has functions; closed when the importing file ends.
const pools = new FunctionPools();
after(() => pools.close());

/** Loads `yaml` as gateway.yaml; [] when it is valid, else each issue as `gateway.yaml:L:C: path: message`. */
export async function loadIssues(yaml: string, env: Record<string, string> = {}): Promise<string[]> {
  const res = await loadConfigText(yaml, 'gateway.yaml', { env, functions: (s) => pools.host(s) });
  return res.ok ? [] : res.issues.map(formatIssue);
}

/** Loads `yaml` as gateway.yaml: its warnings as `gateway.yaml:L:C: path: warning: message`, or its errors when it does not load. */
export async function loadWarnings(yaml: string): Promise<string[]> {
  const res = await loadConfigText(yaml, 'gateway.yaml', { env: {}, functions: (s) => pools.host(s) });
  return (res.ok ? res.warnings : res.issues).map(formatIssue);
}

/** `path: message` of every issue when `conf` (JSON) is plugin `name`'s config on a route; [] when it loads. */
export async function pluginConfigErrors(name: string, conf: unknown): Promise<string[]> {
  const issues = await loadIssues(`routes:\n  - id: r\n    uri: /r\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n    plugins:\n      ${name}: ${JSON.stringify(conf)}\n`);
  return issues.map((i) => i.replace(/^gateway\.yaml:\d+:\d+: /, ''));
}
