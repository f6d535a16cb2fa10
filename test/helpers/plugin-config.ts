/** Loads a one-route config around one plugin's conf: the messages a user would see, for schema-error tables. */
import { after } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { FunctionPools } from '../../src/serverless/pool.ts';
import './harness.ts';

let pools: FunctionPools | undefined;
after(() => pools?.close());

/** `path: message` of every issue when `conf` (JSON) is plugin `name`'s config on a route; [] when it loads. */
export async function pluginConfigErrors(name: string, conf: unknown): Promise<string[]> {
  pools ??= new FunctionPools();
  const p = pools;
  const text = `routes:\n  - id: r\n    uri: /r\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n    plugins:\n      ${name}: ${JSON.stringify(conf)}\n`;
  const res = await loadConfigText(text, 'gateway.yaml', { env: {}, functions: (s) => p.host(s) });
  return res.ok ? [] : res.issues.map((i) => `${i.path}: ${i.message}`);
}
