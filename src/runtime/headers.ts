/**
 * Headers plugins and functions hand back: names lower-cased, framing and
 * hop-by-hop fields dropped (the gateway computes framing itself, so a
 * response never carries two lengths or a length and chunking), invalid names
 * or values refused, and statuses held to 200-599.
 */
import { validateHeaderName, validateHeaderValue, type OutgoingHttpHeaders } from 'node:http';
import { GatewayError } from '../errors.ts';

/** Fields that describe the connection or the message framing: the gateway's alone. */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']);

type HeaderBag = Record<string, string | string[] | number | undefined>;

/**
 * A clean copy of headers a plugin could have touched: lower-case names (a
 * later spelling of the same name wins), no framing, every name and value
 * valid. Throws GW_ERR_PLUGIN_FAILED naming the header otherwise (fail closed).
 */
export function cleanHeaders(h: HeaderBag | OutgoingHttpHeaders, side: 'request' | 'response'): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in h) {
    const v = (h as HeaderBag)[k];
    if (v === undefined || v === null) continue;
    const name = k.toLowerCase();
    if (FRAMING.has(name)) continue;
    const value = Array.isArray(v) ? v.map(String) : String(v);
    try {
      validateHeaderName(name);
      if (Array.isArray(value)) for (const x of value) validateHeaderValue(name, x);
      else validateHeaderValue(name, value);
    } catch {
      throw new GatewayError('GW_ERR_PLUGIN_FAILED', `a plugin set a ${side} header that is not valid: ${JSON.stringify(k).slice(0, 80)}`);
    }
    out[name] = value;
  }
  return out;
}

/** Throws unless `status` is an integer 200-599: 1xx would desynchronise the client's next response. */
export function checkStatus(status: unknown): number {
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) {
    throw new GatewayError('GW_ERR_PLUGIN_FAILED', `a plugin set the response status to ${JSON.stringify(status)}: only integers 200-599 are sent`);
  }
  return status;
}
