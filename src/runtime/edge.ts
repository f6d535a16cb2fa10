/**
 * What a request is, read once at the edge: its target (origin or absolute
 * form), its one Host, the client's address, and the forwarding headers the
 * upstream gets. See DESIGN.md "The edge".
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { hasEscapedSlash, normalizeHost, normalizePath } from './normalize.ts';

/** A request's target in normal form. */
export interface Target {
  /** Normalised path, as routed and as sent upstream. */
  readonly path: string;
  /** `?…` as received, or ''. */
  readonly search: string;
  /** Normalised host (no port, lower case), or undefined when none was sent. */
  readonly host: string | undefined;
  /** The path carries an encoded `/` or `\\` (refused unless the route allows it). */
  readonly escapedSlash: boolean;
}

/** Counts Host fields as sent: Node keeps only the first of several. */
function hostFields(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i];
    if (k.length === 4 && (k === 'Host' || k === 'host' || k.toLowerCase() === 'host')) n++;
  }
  return n;
}

/**
 * The request's target, or the reason it is a 400. An absolute-form target
 * (`GET http://a.example/x`) is routed and forwarded by its authority, which
 * replaces Host (RFC 9112 §3.2.2); the upstream gets origin form.
 */
export function readTarget(req: IncomingMessage): Target | string {
  let url = req.url ?? '/';
  if (hostFields(req.rawHeaders) > 1) return 'more than one Host header';
  if (url.charCodeAt(0) !== 47) {
    const m = /^https?:\/\/([^/?#]*)/i.exec(url);
    if (!m) return 'request target is not a path';
    const authority = m[1];
    if (authority === '' || authority.includes('@')) return 'request target has no valid authority';
    req.headers.host = authority;
    url = url.slice(m[0].length);
    if (url.charCodeAt(0) !== 47) url = '/' + url;
  }
  const q = url.indexOf('?');
  const raw = q < 0 ? url : url.slice(0, q);
  const path = normalizePath(raw);
  if (path === undefined) return 'request path is not valid';
  const h = req.headers.host;
  let host: string | undefined;
  if (h !== undefined && h !== '') {
    host = normalizeHost(h);
    if (host === undefined) return 'Host header is not valid';
  }
  return { path, search: q < 0 ? '' : url.slice(q), host, escapedSlash: raw.indexOf('%') >= 0 && hasEscapedSlash(path) };
}

/** Forwarding headers a client may not set for itself: not passed on unless the peer is a trusted proxy. */
const FORWARDING = ['forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-prefix', 'x-real-ip'] as const;

/** Forwarding headers as an untrusted client sent them: name and value. */
export type ClientForwarding = [name: string, value: string | string[]][];

/**
 * The client address. From a trusted peer, read right to left through
 * X-Forwarded-For: the first address (from the right) that is not a trusted
 * proxy is the client. Otherwise the peer is the client.
 */
export function clientAddress(req: IncomingMessage, trusted: (ip: string) => boolean, peerTrusted: boolean): string {
  const peer = req.socket.remoteAddress ?? '';
  if (!peerTrusted) return peer;
  const xff = req.headers['x-forwarded-for'];
  if (typeof xff !== 'string' || xff === '') return peer;
  let ip = peer;
  const hops = xff.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const a = hops[i].trim();
    // Garbage ends the walk: the last address that a trusted hop vouched for stands.
    if (isIP(a) === 0) break;
    ip = a;
    if (!trusted(a)) break;
  }
  return ip;
}

/**
 * The forwarding headers an untrusted client sent, to be kept from the
 * upstream (plugins still see them: real-ip has its own list of whom to
 * believe). Undefined when it sent none.
 */
export function clientForwarding(req: IncomingMessage): ClientForwarding | undefined {
  let out: ClientForwarding | undefined;
  const h = req.headers;
  for (const k of FORWARDING) {
    const v = h[k];
    if (v !== undefined) (out ??= []).push([k, v]);
  }
  return out;
}

/**
 * Sets X-Forwarded-For/-Proto/-Host/-Port and X-Real-IP on what goes
 * upstream. `sent` (from an untrusted client) is removed first, unless a
 * plugin replaced the value; what remains came from a trusted proxy or a plugin.
 */
export function forwardedHeaders(headers: Record<string, string | string[]>, req: IncomingMessage, clientIp: string, sent: ClientForwarding | undefined): void {
  if (sent) for (const [k, v] of sent) if (headers[k] === v) delete headers[k];
  const peer = req.socket.remoteAddress ?? '';
  const xff = headers['x-forwarded-for'];
  headers['x-forwarded-for'] = xff ? `${Array.isArray(xff) ? xff.join(', ') : xff}, ${peer}` : peer;
  headers['x-real-ip'] = clientIp;
  if (typeof headers['x-forwarded-proto'] !== 'string') headers['x-forwarded-proto'] = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
  if (typeof headers['x-forwarded-port'] !== 'string') headers['x-forwarded-port'] = String(req.socket.localPort ?? '');
  if (typeof headers['x-forwarded-host'] !== 'string') {
    const host = (req.headers as IncomingHttpHeaders).host;
    if (host) headers['x-forwarded-host'] = host;
  }
}
