/**
 * Calls to the OpenID Provider (discovery, JWKS, token, introspection,
 * userinfo): each bounded by the plugin's `timeout` and a body cap, so a slow
 * or hostile provider costs a bounded wait and bounded memory. Anything that
 * is not an answer (refused, timed out, not JSON) is a ProviderUnavailable:
 * the plugin fails closed with 503 on it.
 */
import { Agent, request } from 'undici';
import { readCapped } from '../http/pools.ts';

/** A provider's documents are small; anything past this is not one. */
const MAX_BODY = 1 << 20;
const agents = { verify: new Agent({ connect: { rejectUnauthorized: true } }), noVerify: new Agent({ connect: { rejectUnauthorized: false } }) };

/** The provider could not be asked (down, slow, garbage): not the client's fault. */
export class ProviderUnavailable extends Error {}

export interface CallOptions {
  timeoutMs: number;
  sslVerify: boolean;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  /** A form body (application/x-www-form-urlencoded). */
  form?: Record<string, string>;
}

/** Status and parsed JSON body of one call; throws ProviderUnavailable when there is no usable answer. */
export async function callJson(url: string, o: CallOptions): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers: Record<string, string> = { accept: 'application/json', ...o.headers };
  let body: string | undefined;
  if (o.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(o.form).toString();
  }
  let status: number;
  let raw: Buffer | undefined;
  try {
    const res = await request(url, {
      method: o.method ?? (body === undefined ? 'GET' : 'POST'), headers, body,
      dispatcher: o.sslVerify ? agents.verify : agents.noVerify,
      headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs, signal: AbortSignal.timeout(o.timeoutMs),
    });
    status = res.statusCode;
    raw = await readCapped(res.body, MAX_BODY);
  } catch (err) {
    throw new ProviderUnavailable(`${url}: ${(err as Error).message}`);
  }
  if (raw === undefined) throw new ProviderUnavailable(`${url}: answer larger than ${MAX_BODY} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new ProviderUnavailable(`${url}: answered ${status} with a body that is not JSON`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new ProviderUnavailable(`${url}: answered ${status} with JSON that is not an object`);
  return { status, json: json as Record<string, unknown> };
}

/** A fetch for jose's createRemoteJWKSet that goes through callJson (same timeout, cap and TLS setting). */
export function jwksFetch(timeoutMs: number, sslVerify: boolean): (url: string) => Promise<Response> {
  return async (url) => {
    const { status, json } = await callJson(url, { timeoutMs, sslVerify });
    if (status !== 200) throw new ProviderUnavailable(`${url}: answered ${status}`);
    return new Response(JSON.stringify(json), { status: 200, headers: { 'content-type': 'application/json' } });
  };
}
