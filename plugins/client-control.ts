/**
 * Caps the request body. A Content-Length over `max_body_size` is answered
 * 413 at once, before the upstream is contacted; a chunked (or any streamed)
 * body is counted as it flows to the upstream, and the moment it passes the
 * cap the upstream request is aborted and the client gets 413. Nothing is
 * buffered for this. Kong's request-size-limiting maps here.
 *
 * ```yaml
 * plugins:
 *   client-control:
 *     max_body_size: 1048576   # 1 MiB
 * ```
 *
 * The 413 body is the gateway's error form:
 * `{"error":"request body is larger than 1048576 bytes","code":"GW_ERR_BODY_TOO_LARGE"}`.
 * The cap adds to the gateway's own body limits (the tighter one wins);
 * `max_body_size: 0` sets no cap of its own, where APISIX would lift nginx's.
 */
import schema from '../schemas/client-control.json' with { type: 'json' };
import { definePlugin } from '../src/plugin.ts';

interface Conf { max_body_size?: number }

export default definePlugin<Conf>({
  name: 'client-control',
  version: '1.0.0',
  priority: 22000,
  schema,
  phases: {
    rewrite(conf, ctx) {
      return conf.max_body_size ? ctx.limitRequestBody(conf.max_body_size) : undefined;
    },
  },
});
