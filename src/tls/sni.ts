/**
 * The certificates of one snapshot, by server name: compiled at load (one
 * SecureContext per `ssls` entry), read by the TLS listeners' SNICallback.
 * Lookup as APISIX's radixtree_sni: the exact name, then a wildcard for one
 * label (`*.example.com` matches `a.example.com`, not `a.b.example.com`),
 * then `*`, then the entry marked `default: true`.
 */
import type { SecureContext, SecureContextOptions } from 'node:tls';

/** What /status and /metrics show of one certificate. */
export interface CertInfo {
  readonly subject: string;
  readonly issuer: string;
  /** ISO 8601. */
  readonly notAfter: string;
  readonly notAfterMs: number;
  /** `RSA`, `EC`, … */
  readonly keyType: string;
  readonly fingerprint256: string;
}

/** One served `ssls` entry, compiled. */
export interface SslEntry {
  readonly id: string;
  readonly snis: readonly string[];
  readonly isDefault: boolean;
  /** One context per distinct TLS setting of the listeners (tlsKey): ciphers apply from the context the handshake ends on. */
  readonly contexts: ReadonlyMap<string, SecureContext>;
  /**
   * An entry with RSA and ECDSA pairs: per kind, contexts holding that kind's
   * first pair (by tlsKey), for the client the ClientHello says accepts it.
   */
  readonly byKind?: { readonly ec: ReadonlyMap<string, SecureContext>; readonly rsa: ReadonlyMap<string, SecureContext> };
  /** The certificates, keys and client CA: a listener's own context (the default entry, the admin listener) is made from them. */
  readonly options: Readonly<SecureContextOptions>;
  /** Mutual TLS: clients must present a certificate the entry's CA issued, through at most `depth` CAs. */
  readonly client?: { readonly depth: number };
  /** TLS versions allowed for this entry (APISIX ssl_protocols); undefined: the listener's. */
  readonly protocols?: ReadonlySet<string>;
  readonly certs: readonly CertInfo[];
}

/** The `ssls` of one snapshot by server name. */
export class SniTable {
  readonly entries: readonly SslEntry[];
  readonly defaultEntry: SslEntry | undefined;
  /** Some entry asks for client certificates (mutual TLS). */
  readonly hasMtls: boolean;
  /** Some entry picked by SNI holds RSA and ECDSA pairs: the listeners read ClientHellos to choose (peek.ts). */
  readonly picksByKind: boolean;
  private readonly exact = new Map<string, SslEntry>();
  /** `*.example.com` under `example.com`. */
  private readonly wildcard = new Map<string, SslEntry>();
  private readonly any: SslEntry | undefined;

  constructor(entries: readonly SslEntry[]) {
    this.entries = entries;
    let any: SslEntry | undefined;
    for (const e of entries) {
      for (const sni of e.snis) {
        if (sni === '*') any ??= e;
        else if (sni.startsWith('*.')) { if (!this.wildcard.has(sni.slice(2))) this.wildcard.set(sni.slice(2), e); }
        else if (!this.exact.has(sni)) this.exact.set(sni, e);
      }
    }
    this.any = any;
    this.defaultEntry = entries.find((e) => e.isDefault);
    this.hasMtls = entries.some((e) => e.client !== undefined);
    this.picksByKind = entries.some((e) => !e.isDefault && e.byKind !== undefined);
    Object.freeze(this);
  }

  /** The entry for a ClientHello's server name (undefined or '' when the client sent none). */
  lookup(servername: string | undefined | false): SslEntry | undefined {
    if (!servername) return this.defaultEntry;
    const name = normalizeSni(servername);
    const hit = this.exact.get(name);
    if (hit) return hit;
    const dot = name.indexOf('.');
    return (dot > 0 ? this.wildcard.get(name.slice(dot + 1)) : undefined) ?? this.any ?? this.defaultEntry;
  }
}

/** The TLS settings a context is made for: listeners that share them share contexts. */
export function tlsKey(l: { readonly minVersion: string; readonly maxVersion: string; readonly ciphers: string }): string {
  return `${l.minVersion}|${l.maxVersion}|${l.ciphers}`;
}

/** Lower case, without a trailing dot (as APISIX stores SNIs). */
export function normalizeSni(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}
