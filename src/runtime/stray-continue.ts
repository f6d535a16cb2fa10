/**
 * Drops an upstream's unrequested `100 Continue`.
 *
 * The gateway never sends `Expect: 100-continue` upstream (undici refuses the
 * header), so any 100 an upstream sends is stray; RFC 9110 §15.2 says a client
 * must be able to parse and ignore it, but undici closes the connection on one
 * and the request fails with a 502. This sits under undici: it wraps each upstream
 * socket's `read()` (undici's HTTP/1.1 parser pulls with `socket.read()`) and, only
 * while undici's parser stands between two responses, removes a leading
 * `HTTP/1.x 100 …\r\n\r\n` head before the parser sees it. Bodies are never
 * inspected: the check is one comparison per chunk once a response has started.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { buildConnector } from 'undici';
import { log } from '../log.ts';

// The parser undici hangs on each socket: the symbol is the very object undici uses (one module cache).
const kParser = (createRequire(import.meta.url)('undici/lib/core/symbols.js') as { kParser: symbol }).kParser;
/** A stray head longer than this is not a plain `100 Continue`: let undici refuse it. */
const MAX_HEAD = 8192;
const PREFIX = Buffer.from('HTTP/1.');
const SEP = Buffer.from('\r\n\r\n');

interface ParserState { statusCode: number; headersSize: number }

/** How much of `chunk` a leading 100 head takes: its length, 0 if none, -1 if it may be one not yet complete. */
export function continueHeadLength(chunk: Buffer): number {
  // Nearly every response is 2xx-5xx: the status's first digit settles it (Buffer#compare is a call into C++, per response).
  if (chunk.length > 9 && chunk[9] !== 0x31) return 0;
  const n = Math.min(chunk.length, PREFIX.length);
  for (let i = 0; i < n; i++) if (chunk[i] !== PREFIX[i]) return 0;
  if (chunk.length < 13) return -1;
  // "HTTP/1.x 100" then SP or CR: the status code is what matters, the reason phrase is free.
  if (chunk[9] !== 0x31 || chunk[10] !== 0x30 || chunk[11] !== 0x30 || (chunk[12] !== 0x20 && chunk[12] !== 0x0d)) return 0;
  const end = chunk.indexOf(SEP);
  if (end === -1) return chunk.length < MAX_HEAD ? -1 : 0;
  return end + SEP.length;
}

/** Makes `socket` drop unrequested 100 heads that arrive where a response starts; `origin` names it in the log. */
export function dropStrayContinue(socket: Socket, origin: string): void {
  const read = socket.read;
  let held: Buffer | null = null;
  let logged = false;
  socket.read = function readFiltered(this: Socket, size?: number) {
    let chunk = read.call(this, size) as Buffer | null;
    const parser = (this as unknown as Record<symbol, ParserState | undefined>)[kParser];
    if (held !== null) {
      if (chunk === null) return null;
      chunk = Buffer.concat([held, chunk]);
      held = null;
    }
    // Mid-response (or no parser yet): these bytes are not where a response starts.
    if (chunk === null || parser === undefined || parser.statusCode !== 0 || parser.headersSize !== 0) return chunk;
    for (;;) {
      const len = continueHeadLength(chunk);
      if (len === 0) return chunk;
      if (len > 0) {
        if (!logged) {
          logged = true;
          log('warn', 'upstream sent an unrequested 100 Continue: dropped', { upstream: origin });
        }
        if (len < chunk.length) { chunk = chunk.subarray(len); continue; }
      }
      // Nothing left, or part of what may be a 100 head: read on. Returning null only once the
      // socket's buffer is empty keeps 'readable' coming when the rest arrives.
      const next = read.call(this, size) as Buffer | null;
      if (next === null) {
        if (len === -1) held = chunk;
        return null;
      }
      chunk = len === -1 ? Buffer.concat([chunk, next]) : next;
    }
  } as Socket['read'];
  socket.once('close', () => { held = null; });
}

type Connector = ReturnType<typeof buildConnector>;

/** Wraps undici's `connector` so each new socket to `origin` drops stray 100 heads. */
export function withStrayContinueFilter(connector: Connector, origin: string): Connector {
  return (opts, callback) => connector(opts, (err, socket) => {
    if (err === null) dropStrayContinue(socket as Socket, origin);
    callback(err, socket as never);
  });
}
