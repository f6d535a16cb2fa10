/** The certificates in force as /status shows them and /metrics counts their days left. */
import type { SniTable } from './sni.ts';

/** One `ssls` entry in /status. */
export interface CertStatus {
  id: string;
  snis: string[];
  default: boolean;
  mtls: boolean;
  certificates: { subject: string; issuer: string; key_type: string; not_after: string; days_left: number; fingerprint256: string }[];
}

const DAY_MS = 86_400_000;

const daysLeft = (notAfter: string, now: number) => Math.floor(((Date.parse(notAfter) - now) / DAY_MS) * 100) / 100;

/** Every served entry with its certificates (days left as of `now`). */
export function certStatus(table: SniTable, now = Date.now()): CertStatus[] {
  return table.entries.map((e) => ({
    id: e.id, snis: [...e.snis], default: e.isDefault, mtls: e.client !== undefined,
    certificates: e.certs.map((c) => ({ subject: c.subject, issuer: c.issuer, key_type: c.keyType, not_after: c.notAfter, days_left: daysLeft(c.notAfter, now), fingerprint256: c.fingerprint256 })),
  }));
}

const label = (v: string) => v.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, '\\n');

/** `turnpike_ssl_certificate_expiry_days{id, sni}`: per SNI, the entry's soonest expiry (an entry may hold RSA and ECDSA). */
export function certMetrics(rows: readonly CertStatus[], now = Date.now()): string {
  if (rows.length === 0) return '';
  const lines = [
    '# HELP turnpike_ssl_certificate_expiry_days Days until the certificate served for this SNI expires (the soonest of the entry\'s).',
    '# TYPE turnpike_ssl_certificate_expiry_days gauge',
  ];
  for (const r of rows) {
    const days = Math.min(...r.certificates.map((c) => daysLeft(c.not_after, now)));
    for (const sni of r.snis.length ? r.snis : ['']) lines.push(`turnpike_ssl_certificate_expiry_days{id="${label(r.id)}",sni="${label(sni)}"} ${days}`);
  }
  return lines.join('\n') + '\n';
}
