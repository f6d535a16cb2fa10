/**
 * Keep-alive pools for plugins that call an HTTP service on the request path
 * (forward-auth, opa). A pool is made when a config is loaded, one per
 * service origin and connection settings, and reused by later loads with the
 * same settings, so a reload neither leaks pools nor drops warm connections.
 */
import { Pool } from 'undici';

export interface PoolOptions {
  /** Idle connections are closed after this many ms. */
  keepaliveTimeout: number;
  /** Bounds connect and each read; the call as a whole is bounded by its caller. */
  timeout: number;
  sslVerify: boolean;
}

/** Concurrent connections to one service, at most; beyond that a call waits (within its own deadline). */
const MAX_CONNECTIONS = 1024;
const pools = new Map<string, Pool>();

/** The pool for `url`'s origin with these settings; made on first use at load. Throws on a URL that is not http(s). */
export function poolFor(url: string, o: PoolOptions): Pool {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`"${url}" is not an http or https URL`);
  const key = `${u.origin} ${o.keepaliveTimeout} ${o.timeout} ${o.sslVerify}`;
  let pool = pools.get(key);
  if (!pool) {
    pool = new Pool(u.origin, {
      connections: MAX_CONNECTIONS,
      keepAliveTimeout: o.keepaliveTimeout,
      keepAliveMaxTimeout: o.keepaliveTimeout,
      connectTimeout: o.timeout,
      headersTimeout: o.timeout,
      bodyTimeout: o.timeout,
      connect: { rejectUnauthorized: o.sslVerify },
    });
    pools.set(key, pool);
  }
  return pool;
}

/** Reads a response body up to `limit` bytes; undefined past it (the rest is discarded). */
export async function readCapped(body: AsyncIterable<Buffer> & { destroy?(): unknown }, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    size += c.length;
    if (size > limit) {
      body.destroy?.();
      return undefined;
    }
    chunks.push(c);
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}

/** A short, credential-free description of why a call failed (for the log). */
export function callError(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
