/**
 * Compiles `ssls` (APISIX's ssl resource, plus Turnpike's files and
 * `default`) and the `listen` list into what the TLS listeners read: one
 * SecureContext per entry (and per pair kind when it holds RSA and ECDSA), made once per load. A certificate that does not
 * parse, a key that does not match its certificate, or a certificate past its
 * end rejects the load at the entry's position; the certificates in force keep
 * serving.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { ListenerSpec } from '../snapshot.ts';
import { normalizeSni, SniTable, tlsKey, type CertInfo, type SslEntry } from '../tls/sni.ts';
import type { IssueList } from './issues.ts';
import type { GatewayDoc, ListenerDoc, SslDoc } from './model.ts';
import { resolveSslPath, type FileSet } from './ssl-files.ts';
import type { PathSeg } from './source.ts';
import { parseListen } from './upstream.ts';

/**
 * TLSv1.2 suites when a listener names none: forward secrecy (ECDHE) and AEAD
 * only, ECDSA first (Mozilla's "intermediate" without DHE). TLSv1.3 suites
 * are OpenSSL's defaults, all modern.
 */
export const DEFAULT_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

type TlsSettings = Pick<ListenerSpec, 'minVersion' | 'maxVersion' | 'ciphers'>;

/** The admin listener's TLS settings (TLSv1.2 and 1.3, the default ciphers). */
export const ADMIN_TLS: TlsSettings = Object.freeze({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ciphers: DEFAULT_CIPHERS });

/** A certificate and its key, as text, and where the entry says them. */
interface Pair { cert: string; key: string; at: PathSeg[] }

/** `listen` as a list of listeners (the single address form is one plain listener). */
export function compileListeners(doc: GatewayDoc, issues: IssueList): ListenerSpec[] {
  const list: ListenerDoc[] = Array.isArray(doc.listen) ? doc.listen : [{ ...parseListen(doc.listen, '0.0.0.0'), tls: false, http2: false }];
  return list.map((l, i) => {
    const protocols = l.ssl_protocols ?? ['TLSv1.2', 'TLSv1.3'];
    let ciphers = l.ciphers ?? DEFAULT_CIPHERS;
    if (l.ciphers !== undefined) {
      try { tls.createSecureContext({ ciphers: l.ciphers }); } catch (err) {
        issues.add('GW_ERR_CONFIG_TLS', ['listen', i, 'ciphers'], `ciphers: ${(err as Error).message}`);
        ciphers = DEFAULT_CIPHERS; // the load fails; the certificates are still checked
      }
    }
    const spec: ListenerSpec = Object.freeze({
      host: l.host ?? '0.0.0.0', port: l.port, tls: l.tls === true, http2: l.http2 === true,
      minVersion: protocols.includes('TLSv1.2') ? 'TLSv1.2' : 'TLSv1.3', maxVersion: protocols.includes('TLSv1.3') ? 'TLSv1.3' : 'TLSv1.2',
      ciphers,
    });
    if (spec.http2 && !spec.tls) issues.add('GW_ERR_CONFIG_TLS', ['listen', i, 'http2'], 'http2 needs tls: true on this listener (cleartext h2c is not served)', true);
    return spec;
  });
}

/** The served entries by SNI; problems added to `issues` at each entry's position. */
export function compileSsls(doc: GatewayDoc, listeners: readonly ListenerSpec[], files: FileSet, configFile: string, issues: IssueList, now = Date.now()): SniTable {
  // The admin listener's TLS uses the defaults.
  const settings = new Map([[tlsKey(ADMIN_TLS), ADMIN_TLS]]);
  for (const l of listeners) if (l.tls) settings.set(tlsKey(l), l);
  const entries: SslEntry[] = [];
  const seen = new Map<string, number>();
  let defaultAt: number | undefined;
  (doc.ssls ?? []).forEach((s, i) => {
    if (s.type === 'client' || s.status === 0) return;
    const at: PathSeg[] = ['ssls', i];
    const snis = [...(s.snis ?? []), ...(s.sni !== undefined ? [s.sni] : [])].map(normalizeSni);
    if (snis.length === 0 && !s.default) { issues.add('GW_ERR_CONFIG_TLS', at, 'an ssls entry needs sni or snis (or default: true)'); return; }
    for (const sni of snis) {
      const first = seen.get(sni);
      if (first !== undefined) issues.add('GW_ERR_CONFIG_TLS', [...at, 'snis'], `SNI "${sni}" is already served by ssls[${first}]`);
      else seen.set(sni, i);
    }
    if (s.default) {
      if (defaultAt !== undefined) issues.add('GW_ERR_CONFIG_TLS', [...at, 'default'], `only one ssls entry may be the default (ssls[${defaultAt}] is)`, true);
      defaultAt = i;
    }
    if (s.client?.skip_mtls_uri_regex) issues.warn([...at, 'client', 'skip_mtls_uri_regex'], 'skip_mtls_uri_regex is not supported: every path requires the client certificate', true);
    const pairs = pairsOf(s, at, files, configFile, issues);
    if (!pairs) return;
    const entry = compileEntry(s, snis, pairs, settings, at, issues, now);
    if (entry) entries.push(entry);
  });
  return new SniTable(entries);
}

/** The entry's certificate/key pairs as text (inline, then files), or undefined with the reasons added. */
function pairsOf(s: SslDoc, at: PathSeg[], files: FileSet, configFile: string, issues: IssueList): Pair[] | undefined {
  const before = issues.size;
  const pairs: Pair[] = [];
  const file = (p: string, where: PathSeg[]): string | undefined => {
    const v = files.get(resolveSslPath(p, configFile));
    if (typeof v === 'string') return v;
    issues.add('GW_ERR_CONFIG_TLS', where, `${p}: ${v?.error ?? 'was not read'}`);
    return undefined;
  };
  if ((s.cert === undefined) !== (s.key === undefined)) issues.add('GW_ERR_CONFIG_TLS', at, 'give cert and key together');
  if ((s.cert_file === undefined) !== (s.key_file === undefined)) issues.add('GW_ERR_CONFIG_TLS', at, 'give cert_file and key_file together');
  if ((s.certs?.length ?? 0) !== (s.keys?.length ?? 0)) issues.add('GW_ERR_CONFIG_TLS', [...at, 'keys'], 'certs and keys must have the same length (one key per certificate)', true);
  if (s.cert !== undefined && s.key !== undefined) pairs.push({ cert: s.cert, key: s.key, at: [...at, 'cert'] });
  if (s.cert_file !== undefined && s.key_file !== undefined) {
    const cert = file(s.cert_file, [...at, 'cert_file']);
    const key = file(s.key_file, [...at, 'key_file']);
    if (cert !== undefined && key !== undefined) pairs.push({ cert, key, at: [...at, 'cert_file'] });
  }
  s.certs?.forEach((cert, j) => { if (s.keys?.[j] !== undefined) pairs.push({ cert, key: s.keys[j], at: [...at, 'certs', j] }); });
  s.files?.forEach((f, j) => {
    const cert = file(f.cert_file, [...at, 'files', j, 'cert_file']);
    const key = file(f.key_file, [...at, 'files', j, 'key_file']);
    if (cert !== undefined && key !== undefined) pairs.push({ cert, key, at: [...at, 'files', j] });
  });
  if (issues.size > before) return undefined;
  if (pairs.length === 0) { issues.add('GW_ERR_CONFIG_TLS', at, 'an ssls entry needs a certificate: cert and key, or cert_file and key_file'); return undefined; }
  return pairs;
}

/** Checks each pair (parses, key matches, not expired) and makes the entry's SecureContext. */
function compileEntry(s: SslDoc, snis: string[], pairs: Pair[], settings: ReadonlyMap<string, TlsSettings>, at: PathSeg[], issues: IssueList, now: number): SslEntry | undefined {
  const certs: CertInfo[] = [];
  let ok = true;
  for (const p of pairs) {
    const info = checkPair(p, issues, now);
    if (info) certs.push(info);
    else ok = false;
  }
  if (!ok) return undefined;
  // Reversed: a context picked by SNI serves only the pair set last (Node's UseSNIContext), which should be the first one given.
  const options: tls.SecureContextOptions = { cert: pairs.map((p) => p.cert).reverse(), key: pairs.map((p) => p.key).reverse(), ...(s.client ? { ca: s.client.ca } : {}) };
  if (s.client) {
    try { new X509Certificate(s.client.ca); } catch (err) {
      issues.add('GW_ERR_CONFIG_TLS', [...at, 'client', 'ca'], `client.ca is not a PEM certificate (${(err as Error).message})`);
      return undefined;
    }
  }
  const contexts = new Map<string, tls.SecureContext>();
  // A switched-to context serves one pair: with RSA and ECDSA, one context per kind holding its first pair (listeners pick by ClientHello).
  const ecAt = certs.findIndex((c) => c.keyType === 'EC');
  const rsaAt = certs.findIndex((c) => c.keyType === 'RSA');
  const byKind = !s.default && ecAt >= 0 && rsaAt >= 0 ? { ec: new Map<string, tls.SecureContext>(), rsa: new Map<string, tls.SecureContext>() } : undefined;
  try {
    for (const [key, l] of settings) {
      const ctxOpts = { minVersion: l.minVersion, maxVersion: l.maxVersion, ciphers: l.ciphers, honorCipherOrder: true };
      contexts.set(key, tls.createSecureContext({ ...options, ...ctxOpts }));
      if (!byKind) continue;
      const ca = s.client ? { ca: s.client.ca } : {};
      byKind.ec.set(key, tls.createSecureContext({ cert: pairs[ecAt].cert, key: pairs[ecAt].key, ...ca, ...ctxOpts }));
      byKind.rsa.set(key, tls.createSecureContext({ cert: pairs[rsaAt].cert, key: pairs[rsaAt].key, ...ca, ...ctxOpts }));
    }
  } catch (err) {
    issues.add('GW_ERR_CONFIG_TLS', at, `the certificates cannot be served together: ${(err as Error).message}`);
    return undefined;
  }
  return Object.freeze({
    id: String(s.id), snis: Object.freeze(snis), isDefault: s.default === true, contexts, byKind, options: Object.freeze(options),
    client: s.client ? Object.freeze({ depth: s.client.depth }) : undefined,
    protocols: s.ssl_protocols ? new Set(s.ssl_protocols) : undefined,
    certs: Object.freeze(certs),
  });
}

/** The certificate's facts, or undefined with the reason added at the pair's position. */
function checkPair(p: Pair, issues: IssueList, now: number): CertInfo | undefined {
  const bad = (message: string) => { issues.add('GW_ERR_CONFIG_TLS', p.at, message); return undefined; };
  let x509: X509Certificate;
  try { x509 = new X509Certificate(p.cert); } catch (err) { return bad(`the certificate is not a PEM certificate (${(err as Error).message})`); }
  let key: ReturnType<typeof createPrivateKey>;
  try { key = createPrivateKey(p.key); } catch (err) { return bad(`the key is not a PEM private key (${(err as Error).message})`); }
  if (!x509.checkPrivateKey(key)) return bad(`the key does not match the certificate (${x509.subject.replace(/\n/g, ', ')})`);
  const notAfterMs = Date.parse(x509.validTo);
  if (!(notAfterMs > now)) return bad(`the certificate expired on ${new Date(notAfterMs).toISOString()} (${x509.subject.replace(/\n/g, ', ')})`);
  return Object.freeze({
    subject: x509.subject.replace(/\n/g, ', '), issuer: x509.issuer.replace(/\n/g, ', '),
    notAfter: new Date(notAfterMs).toISOString(), notAfterMs, keyType: (key.asymmetricKeyType ?? 'unknown').toUpperCase(), fingerprint256: x509.fingerprint256,
  });
}

/** Checks that need both: a TLS listener has something to serve, the admin's TLS has a default certificate. */
export function checkTlsUse(listeners: readonly ListenerSpec[], admin: { tls: boolean } | null, table: SniTable, issues: IssueList): void {
  const i = listeners.findIndex((l) => l.tls);
  if (i >= 0 && table.entries.length === 0) issues.add('GW_ERR_CONFIG_TLS', ['listen', i, 'tls'], 'a TLS listener needs at least one served ssls entry', true);
  if (admin?.tls && !table.defaultEntry) issues.add('GW_ERR_CONFIG_TLS', ['admin', 'listen', 'tls'], 'the admin listener\'s TLS needs an ssls entry with default: true', true);
}
