/**
 * `upstream.tls` at load: files read, PEMs parsed, a client key matched to its
 * certificate, `client_cert_id` resolved against `ssls`, so that a bad
 * certificate rejects the load with its position instead of failing handshakes
 * later; then the settings each https node's connection pool is built from.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { UpstreamTls } from '../snapshot.ts';
import type { IssueList } from './issues.ts';
import type { GatewayDoc, UpstreamDoc, UpstreamTlsDoc } from './model.ts';
import type { PathSeg } from './source.ts';
import { resolveSslPath, type FileSet } from './ssl-files.ts';

/** Every upstream of the document with its path: top-level, and inline on services and routes. */
function upstreamsOf(doc: GatewayDoc): [UpstreamDoc, PathSeg[]][] {
  const out: [UpstreamDoc, PathSeg[]][] = [];
  doc.upstreams?.forEach((u, i) => out.push([u, ['upstreams', i]]));
  doc.services?.forEach((s, i) => { if (s.upstream) out.push([s.upstream, ['services', i, 'upstream']]); });
  doc.routes?.forEach((r, i) => { if (r.upstream) out.push([r.upstream, ['routes', i, 'upstream']]); });
  return out;
}

/** The certificates in a PEM bundle; throws on the first one that does not parse. */
function parseCerts(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (!blocks) throw new Error('no PEM certificate (-----BEGIN CERTIFICATE-----) found');
  return blocks.map((b) => new X509Certificate(b));
}

/**
 * Checks each upstream's `tls` and puts what it names in place: `ca_file`'s
 * text in `ca`, the ssls entry of `client_cert_id` in client_cert/client_key.
 * The document changes, so a changed CA file compiles a new pool.
 */
export function checkUpstreamTls(doc: GatewayDoc, file: string, issues: IssueList, files: FileSet): void {
  for (const [u, at] of upstreamsOf(doc)) {
    const t = u.tls;
    if (!t) continue;
    const here = [...at, 'tls'];
    if (u.scheme !== 'https') {
      issues.warn(here, `tls applies to scheme https; this upstream's scheme is ${u.scheme}: ignored`, true);
      continue;
    }
    if (t.ca_file !== undefined && t.ca !== undefined) issues.add('GW_ERR_CONFIG_SCHEMA', [...here, 'ca_file'], 'give either ca or ca_file, not both', true);
    else if (t.ca_file !== undefined) {
      // Read with the config by whoever reads it (the main thread), like ssls files: hashed and watched.
      const text = files.get(resolveSslPath(t.ca_file, file));
      if (typeof text !== 'string') {
        issues.add('GW_ERR_CONFIG_READ', [...here, 'ca_file'], `cannot read ${t.ca_file}: ${text?.error ?? 'not read'}`);
        continue;
      }
      t.ca = text;
    }
    if (t.client_cert_id !== undefined) resolveClientCert(doc, t, here, issues);
    checkPems(t, here, issues);
  }
}

function resolveClientCert(doc: GatewayDoc, t: UpstreamTlsDoc, here: PathSeg[], issues: IssueList): void {
  if (t.client_cert !== undefined) {
    issues.add('GW_ERR_CONFIG_SCHEMA', [...here, 'client_cert_id'], 'give either client_cert_id or client_cert/client_key, not both', true);
    return;
  }
  const ssls = (doc as { ssls?: unknown }).ssls;
  const entry = Array.isArray(ssls) ? ssls.find((s) => s && String((s as { id?: unknown }).id) === String(t.client_cert_id)) as { cert?: unknown; key?: unknown } | undefined : undefined;
  if (typeof entry?.cert !== 'string' || typeof entry.key !== 'string') {
    issues.add('GW_ERR_CONFIG_REF', [...here, 'client_cert_id'], `client_cert_id "${t.client_cert_id}" names no ssls entry with a cert and key: give client_cert and client_key here instead`);
    return;
  }
  t.client_cert = entry.cert;
  t.client_key = entry.key;
}

/** Each PEM parses, and the client key is the certificate's. */
function checkPems(t: UpstreamTlsDoc, here: PathSeg[], issues: IssueList): void {
  if (t.ca !== undefined) {
    try { parseCerts(t.ca); } catch (err) { issues.add('GW_ERR_CONFIG_SCHEMA', [...here, t.ca_file !== undefined ? 'ca_file' : 'ca'], `CA certificate does not parse: ${(err as Error).message}`); }
  }
  if (t.client_cert === undefined || t.client_key === undefined) return;
  let cert: X509Certificate;
  try { cert = parseCerts(t.client_cert)[0]; } catch (err) {
    issues.add('GW_ERR_CONFIG_SCHEMA', [...here, 'client_cert'], `client certificate does not parse: ${(err as Error).message}`);
    return;
  }
  try {
    if (!cert.checkPrivateKey(createPrivateKey(t.client_key))) issues.add('GW_ERR_CONFIG_SCHEMA', [...here, 'client_key'], 'client_key is not the key of client_cert');
  } catch (err) {
    issues.add('GW_ERR_CONFIG_SCHEMA', [...here, 'client_key'], `client key does not parse: ${(err as Error).message}`);
  }
}

/** The host part of a Host header value (`name`, `name:port`, `[v6]:port`). */
function hostOnly(h: string): string {
  const m = /^\[([^\]]+)\]/.exec(h);
  if (m) return m[1];
  const i = h.lastIndexOf(':');
  return i > 0 && /^\d+$/.test(h.slice(i + 1)) ? h.slice(0, i) : h;
}

/**
 * The TLS settings of one https node: SNI (tls.sni, else upstream_host with
 * pass_host rewrite, else the node's host; none for an IP), and the key its
 * pool is kept under (two upstreams may reach one node with other settings).
 */
export function compileNodeTls(doc: UpstreamDoc, host: string, origin: string): UpstreamTls {
  const t = doc.tls ?? {};
  const named = t.sni ?? (doc.pass_host === 'rewrite' && doc.upstream_host ? hostOnly(doc.upstream_host) : host);
  const tls = {
    verify: t.verify !== false,
    servername: isIP(named) ? undefined : named,
    ca: t.ca,
    cert: t.client_cert,
    key: t.client_key,
  };
  const digest = createHash('sha256').update(JSON.stringify(tls)).digest('hex').slice(0, 16);
  return Object.freeze({ ...tls, poolKey: `${origin}#${digest}` });
}
