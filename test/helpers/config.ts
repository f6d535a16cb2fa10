/** Loading a config in tests without a gateway: the formatted errors, or '' when it loads. */
import { formatIssues, loadConfigText } from '../../src/config/load.ts';
import { FunctionPools } from '../../src/serverless/pool.ts';

/** Every error of `text` as `turnpike validate` prints it ('' for a valid file). */
export async function configErrors(text: string, env: Record<string, string> = {}): Promise<string> {
  const pools = new FunctionPools();
  try {
    const r = await loadConfigText(text, 'gateway.yaml', { env, functions: (s) => pools.host(s) });
    return r.ok ? '' : formatIssues(r.issues);
  } finally {
    await pools.close();
  }
}

/** A one-route file whose route runs `plugin` with `conf` (YAML flow text): columns in errors count from this line. */
export function routeWith(plugin: string, conf: string): string {
  return `routes:\n  - { id: a, uri: /a, upstream: { nodes: { "127.0.0.1:80": 1 } }, plugins: { ${plugin}: ${conf} } }\n`;
}
