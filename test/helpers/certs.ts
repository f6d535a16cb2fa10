/**
 * Certificates made at test time with the `openssl` CLI in a temp dir: a CA,
 * leaf certificates (RSA or ECDSA, wildcard, expired) and client
 * certificates. No private key is ever committed to the repository.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Pem { cert: string; key: string; certFile: string; keyFile: string }

export interface LeafOptions {
  /** DNS names or IP addresses (the first is the CN). */
  names: string[];
  kind?: 'rsa' | 'ec';
  /** A certificate whose validity ended a day ago. */
  expired?: boolean;
  /** A client certificate (extendedKeyUsage clientAuth). */
  client?: boolean;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A certificate authority in its own temp dir, able to sign leaves. */
export class TestCA {
  readonly dir: string;
  readonly cert: string;
  readonly certFile: string;
  private readonly keyFile: string;
  private serial = 1;

  constructor(name = 'Turnpike Test CA') {
    this.dir = mkdtempSync(path.join(tmpdir(), 'turnpike-certs-'));
    this.keyFile = path.join(this.dir, 'ca.key');
    this.certFile = path.join(this.dir, 'ca.crt');
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', this.keyFile, '-out', this.certFile,
      '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], this.dir);
    this.cert = readFileSync(this.certFile, 'utf8');
  }

  /** A new key and a certificate for it, signed by this CA. */
  leaf(opts: LeafOptions): Pem {
    const base = path.join(this.dir, `leaf${this.serial++}`);
    const keyFile = `${base}.key`;
    const csr = `${base}.csr`;
    const certFile = `${base}.crt`;
    const ext = `${base}.ext`;
    const newkey = opts.kind === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
    openssl(['req', ...newkey, '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${opts.names[0]}`], this.dir);
    writeFileSync(ext, [
      `subjectAltName=${opts.names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',')}`,
      `extendedKeyUsage=${opts.client ? 'clientAuth' : 'serverAuth'}`,
      'basicConstraints=CA:FALSE',
    ].join('\n') + '\n');
    // OpenSSL 3.0 has no -not_after: -days -1 ends the validity a day before it starts.
    const validity = ['-days', opts.expired ? '-1' : '2'];
    openssl(['x509', '-req', '-in', csr, '-CA', this.certFile, '-CAkey', this.keyFile, '-set_serial', String(1000 + this.serial),
      '-extfile', ext, '-out', certFile, ...validity], this.dir);
    return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile, keyFile };
  }

  /** Removes the temp dir (keys included). */
  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** YAML for a PEM block as a literal scalar indented by `indent` spaces. */
export function pemYaml(pem: string, indent: number): string {
  const pad = ' '.repeat(indent);
  return '|\n' + pem.trim().split('\n').map((l) => pad + l).join('\n');
}
