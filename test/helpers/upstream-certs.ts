/**
 * Certificates for upstream TLS tests, made at run time by the openssl CLI in a
 * temp dir (no private key is ever committed): a CA, a node certificate it
 * signs for localhost and 127.0.0.1, a self-signed one, and a client CA with a
 * client certificate for mutual TLS.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Pair { cert: string; key: string }
export interface UpstreamCerts {
  dir: string;
  ca: Pair;
  /** Signed by `ca`, for DNS:localhost and IP:127.0.0.1. */
  node: Pair;
  /** Self-signed, for the same names. */
  selfSigned: Pair;
  clientCa: Pair;
  /** Signed by `clientCa`. */
  client: Pair;
  /** Path of ca.crt in `dir`. */
  caFile: string;
  remove(): void;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const SAN = 'subjectAltName=DNS:localhost,IP:127.0.0.1';

/** Makes the set in a new temp dir; `remove()` deletes it. */
export function makeUpstreamCerts(): UpstreamCerts {
  const dir = mkdtempSync(path.join(tmpdir(), 'turnpike-upcerts-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const read = (name: string): Pair => ({ cert: readFileSync(path.join(dir, `${name}.crt`), 'utf8'), key: readFileSync(path.join(dir, `${name}.key`), 'utf8') });
  const selfSigned = (name: string, cn: string, ext: string[]) => ssl('req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${cn}`, '-days', '2', ...ext);
  const signed = (name: string, cn: string, by: string, extfile?: string) => {
    ssl('req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${by}.crt`, '-CAkey', `${by}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', ...(extfile ? ['-extfile', extfile] : []));
  };
  writeFileSync(path.join(dir, 'san.ext'), `${SAN}\n`);
  selfSigned('ca', 'Turnpike Test Upstream CA', []);
  signed('node', 'localhost', 'ca', 'san.ext');
  selfSigned('self', 'localhost', ['-addext', SAN]);
  selfSigned('clientca', 'Turnpike Test Client CA', []);
  signed('client', 'turnpike-gateway', 'clientca');
  return {
    dir, ca: read('ca'), node: read('node'), selfSigned: read('self'), clientCa: read('clientca'), client: read('client'),
    caFile: path.join(dir, 'ca.crt'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
