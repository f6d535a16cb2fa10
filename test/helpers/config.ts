/** Config-error tables for plugins whose errors depend on where they sit (consumers, routes). */
import { loadIssues } from './load.ts';

/** Every error of `text` as `turnpike validate` prints it, one a line ('' for a valid file). */
export async function configErrors(text: string): Promise<string> {
  return (await loadIssues(text)).join('\n');
}

/** A one-route file whose route runs `plugin` with `conf` (YAML flow text): columns in errors count from this line. */
export function routeWith(plugin: string, conf: string): string {
  return `routes:\n  - { id: a, uri: /a, upstream: { nodes: { "127.0.0.1:80": 1 } }, plugins: { ${plugin}: ${conf} } }\n`;
}
