/**
 * HTTP/2 requests made to look like HTTP/1.1 ones at the edge, so they take
 * the one request path (server.ts): the pseudo-headers leave `headers`
 * (`:authority` becomes Host, as RFC 9113 §8.3.1 tells an intermediary to do
 * towards HTTP/1.1), and a response never carries the connection-specific
 * fields HTTP/2 forbids (Connection, Keep-Alive, Transfer-Encoding, …), which
 * Node would otherwise throw on.
 */
import http2 from 'node:http2';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Fields HTTP/2 forbids in a message (RFC 9113 §8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings']);

/** An HTTP/2 request whose `headers` are what an HTTP/1.1 request would carry. */
export class EdgeH2Request extends http2.Http2ServerRequest {
  constructor(...args: ConstructorParameters<typeof http2.Http2ServerRequest>) {
    super(...args);
    // Node's url, method and authority read the stream's own header object, not this one.
    const raw = args[1] as Record<string, string | string[] | undefined>;
    const out: IncomingHttpHeaders = {};
    for (const k in raw) if (k.charCodeAt(0) !== 58 /* : */ && !CONNECTION_SPECIFIC.has(k)) out[k] = raw[k];
    const authority = raw[':authority'];
    if (typeof authority === 'string' && authority !== '') out.host = authority;
    // A body without a length is framed by DATA frames; towards HTTP/1.1 that is chunked (RFC 9113 §8.2.2), which is how the request path knows a body follows.
    if (out['content-length'] === undefined && !args[0].endAfterHeaders) out['transfer-encoding'] = 'chunked';
    Object.defineProperty(this, 'headers', { value: out, writable: true, configurable: true, enumerable: true });
  }
}

/** An HTTP/2 response that drops connection-specific fields instead of throwing on them. */
export class EdgeH2Response extends http2.Http2ServerResponse {
  override writeHead(status: number, a?: unknown, b?: unknown): this {
    const headers = (typeof a === 'string' ? b : a) as OutgoingHttpHeaders | undefined;
    if (headers) for (const k of Object.keys(headers)) if (CONNECTION_SPECIFIC.has(k.toLowerCase())) delete headers[k];
    return super.writeHead(status, headers as OutgoingHttpHeaders);
  }
}
