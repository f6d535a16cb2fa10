/**
 * Answers with a fixed response, without an upstream: for stubs, demos and
 * routes that are not built yet.
 *
 * ```yaml
 * plugins:
 *   mocking:
 *     response_status: 200
 *     content_type: application/json
 *     response_example: '{"hello":"world"}'
 * ```
 */
import schema from '../schemas/mocking.json' with { type: 'json' };
import { definePlugin, type Reply } from '../src/plugin.ts';

interface Conf { response_status: number; response_example: string; content_type: string; with_mock_header: boolean; response_headers?: Record<string, string> }

export default definePlugin<Conf, Reply>({
  name: 'mocking',
  version: '1.0.0',
  priority: 10900,
  schema,
  canReply: true,
  init(conf) {
    const headers: Record<string, string> = { 'content-type': conf.content_type };
    if (conf.with_mock_header) headers['x-mock-by'] = 'Turnpike';
    for (const [k, v] of Object.entries(conf.response_headers ?? {})) headers[k.toLowerCase()] = v;
    return { status: conf.response_status, body: conf.response_example, headers };
  },
  phases: {
    // The reply object is built once at load; the host copies headers before changing them.
    access: (reply) => reply,
  },
});
