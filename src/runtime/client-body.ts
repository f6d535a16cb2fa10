/**
 * The client's request body: read under a cap, watched for stalls
 * (client_body_timeout, between chunks), and what to do with a connection
 * whose body was not read to its end when the answer goes out.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../errors.ts';

/** How long unread body bytes are drained after an early answer before the socket is closed. */
const LINGER_MS = 2000;

/** Reads a request body up to `limit` bytes; rejects with 413 past it (the caller answers; the rest is drained, not read). */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new GatewayError('GW_ERR_BODY_TOO_LARGE', `request body is larger than ${limit} bytes`);
    const declared = Number(req.headers['content-length']);
    if (declared > limit) { reject(tooLarge()); return; }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size <= limit) { chunks.push(c); return; }
      // Past the cap: stop keeping bytes and answer 413 with a body; closeIfUnread drains and closes.
      req.off('data', onData);
      chunks.length = 0;
      reject(tooLarge());
    };
    req.on('data', onData);
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * An answer going out before the request body was read to its end: the
 * connection cannot be reused (the rest of the body would be read as the next
 * request). Mark it `Connection: close`, drain what arrives for a moment so the
 * client reads the answer instead of a reset, then close.
 */
export function closeIfUnread(res: ServerResponse): void {
  const req = res.req;
  if (!req || req.complete) return;
  res.shouldKeepAlive = false;
  const socket = res.socket;
  res.once('finish', () => {
    req.resume();
    if (socket) setTimeout(() => socket.destroy(), LINGER_MS).unref();
  });
}

/**
 * Bounds the idle time between body chunks: the socket's idle timer runs while
 * the body is unread; past it, `onStall` answers (408) and the exchange ends.
 * The timer is the socket's own (no timer object per request), cleared at the
 * body's end unless the response already finished (Node then keeps the
 * keep-alive timer it set).
 */
export function watchBody(req: IncomingMessage, res: ServerResponse, ms: number, onStall: () => void): void {
  // The request's own timer: on HTTP/1.1 it is the socket's, on HTTP/2 the stream's (the session is shared).
  req.setTimeout(ms);
  req.once('end', () => { if (!res.writableFinished) req.setTimeout(0); });
  req.once('timeout', () => { if (!req.complete) onStall(); });
}
