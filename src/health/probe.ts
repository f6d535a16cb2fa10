/**
 * One active health probe of one node, on a connection of its own that is
 * closed after it: http/https (a request, its status), or tcp (a connect).
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { ActiveCheck, UpstreamNode } from '../snapshot.ts';

/** A probe's outcome: a status (http/https; 200 for a tcp connect), 0 for a failed connection, -1 for a timeout. */
export type ProbeOutcome = number;
export const PROBE_FAILED = 0;
export const PROBE_TIMEOUT = -1;

/** Probes `node` as `check` says; never rejects. `signal` aborts it (probes stopped), answering PROBE_FAILED. */
export function probe(node: UpstreamNode, check: ActiveCheck, signal: AbortSignal): Promise<ProbeOutcome> {
  const port = check.port ?? node.port;
  return new Promise((resolve) => {
    let done = false;
    const finish = (v: ProbeOutcome, destroy?: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      destroy?.();
      resolve(v);
    };
    let destroy: () => void = () => {};
    const timer = setTimeout(() => finish(PROBE_TIMEOUT, destroy), check.timeoutMs);
    const onAbort = () => finish(PROBE_FAILED, destroy);
    signal.addEventListener('abort', onAbort);
    if (check.type === 'tcp') {
      const socket = net.connect({ host: node.host, port });
      destroy = () => socket.destroy();
      socket.once('connect', () => finish(200, destroy));
      socket.once('error', () => finish(PROBE_FAILED, destroy));
      return;
    }
    const host = check.host ?? node.host;
    const headers: Record<string, string> = { ...check.headers, host: check.host ?? node.hostHeader, connection: 'close' };
    if (check.body) headers['content-length'] = String(Buffer.byteLength(check.body));
    const base = { host: node.host, port, method: check.method, path: check.path, headers, agent: false as const };
    const tls = node.tls;
    const req = check.type === 'https'
      ? https.request({
        ...base,
        rejectUnauthorized: check.verify,
        // The upstream's own TLS settings when it is https: its CA, client certificate and SNI.
        ca: tls?.ca, cert: tls?.cert, key: tls?.key,
        servername: check.host ?? tls?.servername ?? (net.isIP(host) ? undefined : host),
      })
      : http.request(base);
    destroy = () => req.destroy();
    req.once('response', (res) => {
      res.resume();
      finish(res.statusCode ?? PROBE_FAILED, destroy);
    });
    req.once('error', () => finish(PROBE_FAILED, destroy));
    req.end(check.body || undefined);
  });
}
