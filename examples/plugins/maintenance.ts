/**
 * An example user plugin: answers 503 with Retry-After while `enabled`, except
 * for listed client addresses. Load it with `plugin_paths: [./examples/plugins]`.
 *
 * ```yaml
 * plugin_paths: [./examples/plugins]
 * routes:
 *   - id: shop
 *     uri: /shop/*
 *     plugins:
 *       maintenance: { enabled: true, retry_after: 120, allow: ["10.0.0.5"] }
 * ```
 *
 * A plugin is a default export honouring the contract; definePlugin only adds types,
 * so a plain JavaScript object works as well.
 */
import { definePlugin, type Reply } from '../../src/plugin.ts';

interface Conf { enabled: boolean; retry_after: number; message: string; allow: string[] }
interface State { enabled: boolean; allow: Set<string>; reply: Reply }

export default definePlugin<Conf, State>({
  name: 'maintenance',
  version: '1.0.0',
  priority: 3000,
  schema: {
    $id: 'maintenance',
    type: 'object',
    additionalProperties: false,
    properties: {
      enabled: { type: 'boolean', default: true, description: 'Answer 503 to everyone not allowed.' },
      retry_after: { type: 'integer', minimum: 0, default: 60, description: 'Seconds sent in Retry-After.' },
      message: { type: 'string', default: 'down for maintenance', description: 'Body of the 503.' },
      allow: { type: 'array', items: { type: 'string' }, default: [], description: 'Client addresses let through.' },
    },
  },
  check(conf) {
    if (!conf.enabled && conf.allow.length > 0) return 'allow has no effect while enabled is false';
    return undefined;
  },
  init: (conf) => ({
    enabled: conf.enabled,
    allow: new Set(conf.allow),
    reply: { status: 503, headers: { 'retry-after': String(conf.retry_after) }, body: { error: conf.message } },
  }),
  phases: {
    access(s, ctx) {
      if (s.enabled && !s.allow.has(ctx.request.client_ip.replace(/^::ffff:/, ''))) return s.reply;
      return undefined;
    },
  },
});
