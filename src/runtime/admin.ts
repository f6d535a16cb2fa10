/** The read-only admin listener: liveness, readiness, status and metrics. */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface AdminView {
  ready(): boolean;
  status(): Record<string, unknown>;
  metrics(): string | Promise<string>;
}

/** The admin listener's request handler. */
export function adminHandler(view: AdminView): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'application/json', '{"error":"the admin listener is read-only: change gateway.yaml"}');
    switch ((req.url ?? '/').split('?')[0]) {
      case '/healthz': return send(200, 'application/json', '{"status":"ok"}');
      case '/readyz': return view.ready() ? send(200, 'application/json', '{"status":"ready"}') : send(503, 'application/json', '{"status":"not ready"}');
      case '/status': return send(200, 'application/json', JSON.stringify(view.status(), null, 2));
      // APISIX's export_uri too, so a scrape config written for APISIX keeps working.
      case '/metrics': case '/apisix/prometheus/metrics': {
        const text = view.metrics();
        if (typeof text === 'string') return send(200, 'text/plain; version=0.0.4', text);
        text.then((t) => send(200, 'text/plain; version=0.0.4', t), (err: Error) => send(500, 'application/json', JSON.stringify({ error: `metrics could not be collected: ${err.message}` })));
        return;
      }
      default: return send(404, 'application/json', '{"error":"not found: try /healthz, /readyz, /status, /metrics"}');
    }
  };
}
