/**
 * TLS to https nodes: the connector each node's pool dials with (settings
 * compiled at load, see src/config/upstream-tls.ts), and which connection
 * errors are TLS failures (a 502, counted by passive health, logged with
 * OpenSSL's or Node's code).
 */
import { buildConnector } from 'undici';
import type { UpstreamTls } from '../snapshot.ts';

/**
 * A connector for an https node. The SNI is the compiled one whatever the
 * request asks: undici would otherwise take it from each request's Host header
 * (the client's, with pass_host: pass), letting a client choose the name the
 * node's certificate is checked against and churning pooled connections.
 * HTTP/1.1 only: the proxy's framing, upgrades and stray-100 filter are HTTP/1's.
 */
export function tlsConnector(tls: UpstreamTls, timeout: number): buildConnector.connector {
  const connect = buildConnector({
    timeout,
    allowH2: false,
    rejectUnauthorized: tls.verify,
    ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
    ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
    ...(tls.cert !== undefined ? { cert: tls.cert, key: tls.key } : {}),
  });
  return (opts, cb) => connect({ ...opts, servername: tls.servername }, cb);
}

/** OpenSSL's certificate verification results, as Node names them in err.code. */
const VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_CRL', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'CERT_SIGNATURE_FAILURE', 'CRL_SIGNATURE_FAILURE', 'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID', 'CRL_HAS_EXPIRED', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED', 'INVALID_CA', 'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'HOSTNAME_MISMATCH',
]);

/** The TLS error code of a failed exchange with an https node (verification, handshake, alert), or undefined for other failures. */
export function tlsErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  if (VERIFY_CODES.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || code === 'EPROTO') return code;
  return undefined;
}
