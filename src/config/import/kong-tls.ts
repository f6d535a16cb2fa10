/**
 * Kong's TLS as Turnpike's: `certificates` (and the top-level `snis` naming
 * them) as `ssls`, with `cert`/`key` and the alternate pair
 * `cert_alt`/`key_alt` (RSA next to ECDSA) for the SNIs Kong serves them
 * for; https-only routes.
 */
import type { PathSeg } from '../source.ts';
import { isMap } from '../compat/notes.ts';

type Obj = Record<string, unknown>;
type Drop = (path: PathSeg[], what: string, why: string) => void;

const sniName = (s: unknown): string | undefined => (typeof s === 'string' ? s : isMap(s) && typeof s.name === 'string' ? s.name : undefined);

/** The `ssls` for a Kong document's certificates (each one's place in `origins`); what cannot be carried goes to `drop`. */
export function kongCertificates(kong: Obj, id: (name: unknown, fallback: string) => string, drop: Drop, origins: Map<object, PathSeg[]>): Obj[] {
  const certs = Array.isArray(kong.certificates) ? kong.certificates : [];
  // Top-level snis name their certificate by id (or by the certificate object).
  const extra = new Map<string, string[]>();
  (Array.isArray(kong.snis) ? kong.snis : []).forEach((s, k) => {
    const name = sniName(s);
    const ref = isMap(s) ? (isMap(s.certificate) ? s.certificate.id : s.certificate) : undefined;
    if (!name || typeof ref !== 'string') { drop(['snis', k], `snis[${k}]`, 'it names no certificate'); return; }
    if (!certs.some((c) => isMap(c) && c.id === ref)) { drop(['snis', k], `sni ${name}`, `its certificate "${ref}" is not in the file`); return; }
    extra.set(ref, [...(extra.get(ref) ?? []), name]);
  });
  const out: Obj[] = [];
  certs.forEach((c, i) => {
    if (!isMap(c)) return;
    const at: PathSeg[] = ['certificates', i];
    const sslId = id(c.id, `certificate-${i + 1}`);
    const snis = [...new Set([...(Array.isArray(c.snis) ? c.snis.map(sniName) : []), ...(typeof c.id === 'string' ? extra.get(c.id) ?? [] : [])])]
      .filter((s): s is string => s !== undefined);
    if (typeof c.cert !== 'string' || typeof c.key !== 'string') { drop(at, `certificate "${sslId}"`, 'it has no cert and key'); return; }
    // Kong serves a certificate without SNIs to nobody (it is only referenced, as a client certificate).
    if (!snis.length) { drop(at, `certificate "${sslId}"`, 'it has no SNI, so Kong serves it to no client; a service\'s client_certificate is not imported yet'); return; }
    const ssl: Obj = { id: sslId, snis, cert: c.cert, key: c.key };
    if (typeof c.cert_alt === 'string' && typeof c.key_alt === 'string') { ssl.certs = [c.cert_alt]; ssl.keys = [c.key_alt]; }
    out.push(ssl);
    origins.set(ssl, at);
  });
  return out;
}

/** Kong refuses plain HTTP on an https-only route (426, or its https_redirect_status_code): here a redirect to HTTPS. */
export function httpsOnly(r: Obj, at: PathSeg[], id: string, plugins: Obj, drop: Drop): void {
  plugins.redirect = { http_to_https: true };
  const code = typeof r.https_redirect_status_code === 'number' ? r.https_redirect_status_code : 426;
  if (![301, 302, 307, 308].includes(code)) {
    drop([...at, 'protocols'], `route "${id}" https_redirect_status_code ${code}`, 'plain HTTP gets a redirect to HTTPS (301; 308 for methods other than GET and HEAD) where Kong answers 426');
  }
}
