/**
 * What happens around a handshake besides picking the certificate: the
 * entry's rules checked once it is done (APISIX ssl_protocols, mutual TLS and
 * its depth), and failures logged once per client address a minute, so a
 * scanner or a misconfigured client cannot flood the log.
 */
import type { TLSSocket, PeerCertificate, DetailedPeerCertificate } from 'node:tls';
import { log } from '../log.ts';
import type { SniTable } from './sni.ts';

/** Client addresses remembered for the once-a-minute rule; past it the memory starts over. */
const MAX_REMEMBERED = 10_000;
const QUIET_MS = 60_000;

/** Handshake failures, logged at most once per client address per minute. */
export class HandshakeLog {
  private readonly last = new Map<string, number>();
  /** Failures seen, logged or not. */
  count = 0;

  failed(address: string | undefined, port: number, reason: string): void {
    this.count++;
    const addr = address ?? '';
    const now = Date.now();
    const t = this.last.get(addr);
    if (t !== undefined && now - t < QUIET_MS) return;
    if (this.last.size >= MAX_REMEMBERED) this.last.clear();
    this.last.set(addr, now);
    log('warn', 'TLS handshake failed (logged once per client address per minute)', { client: addr, port, reason });
  }
}

/** Why a finished handshake may not carry requests (the entry's protocols, mutual TLS), or undefined. */
export function secureChecks(socket: TLSSocket, table: SniTable): string | undefined {
  // A resumed session passed these checks when it was made (same version); listeners with mTLS issue no tickets (listeners.ts).
  if (socket.isSessionReused()) return table.hasMtls ? 'a resumed session on a listener with mutual TLS' : undefined;
  const entry = table.lookup(socket.servername || undefined);
  if (!entry) return 'no certificate entry for this connection';
  const version = socket.getProtocol() ?? '';
  if (entry.protocols && !entry.protocols.has(version)) return `${version} is not allowed for ssls "${entry.id}" (ssl_protocols)`;
  if (!entry.client) return undefined;
  if (!socket.authorized) return `client certificate refused for ssls "${entry.id}": ${socket.authorizationError ?? 'none sent'}`;
  const cas = chainLength(socket.getPeerCertificate(true)) - 1;
  if (cas > entry.client.depth) return `client certificate chain is ${cas} CAs deep, over client.depth ${entry.client.depth} of ssls "${entry.id}"`;
  return undefined;
}

/** Certificates from the peer's up to the trust anchor. */
function chainLength(cert: PeerCertificate | DetailedPeerCertificate): number {
  let n = 0;
  let c: DetailedPeerCertificate | undefined = cert as DetailedPeerCertificate;
  const seen = new Set<unknown>();
  while (c && c.raw && !seen.has(c)) {
    seen.add(c);
    n++;
    if (c.issuerCertificate === c) break;
    c = c.issuerCertificate;
  }
  return n;
}
