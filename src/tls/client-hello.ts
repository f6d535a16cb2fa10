/**
 * Reads just enough of a TLS ClientHello to tell whether the client accepts
 * an ECDSA certificate, so an `ssls` entry with RSA and ECDSA pairs can hand
 * the matching one (Node's SNI switch serves only one pair per context).
 * The bytes are never consumed: the caller buffers them and gives them back
 * to the TLS stack. Anything unexpected answers `invalid`, and the caller
 * then goes on as if nothing was read (the first pair, TLS's own errors).
 */

/** The most raw bytes read before giving up: one full record and its header. */
export const MAX_CLIENT_HELLO_BYTES = 16384 + 5;

/** What the buffered bytes say so far. */
export type HelloResult =
  | { readonly state: 'more'; /** Total bytes to have before parsing again changes anything. */ readonly need: number }
  | { readonly state: 'invalid' }
  | { readonly state: 'done'; readonly ecdsa: boolean };

const INVALID: HelloResult = Object.freeze({ state: 'invalid' });

/** TLS 1.2 ECDHE-ECDSA suites (IANA): AES, GCM, CCM, ChaCha20, Camellia, ARIA. */
const ECDSA_SUITES = new Set([
  0xc006, 0xc007, 0xc008, 0xc009, 0xc00a, 0xc023, 0xc024, 0xc02b, 0xc02c, 0xc048, 0xc049, 0xc05c, 0xc05d,
  0xc072, 0xc073, 0xc086, 0xc087, 0xc0ac, 0xc0ad, 0xc0ae, 0xc0af, 0xcca9,
]);

const EXT_SIGALGS = 0x000d;
const EXT_SUPPORTED_VERSIONS = 0x002b;

/**
 * Parses the ClientHello at the start of `buf` (TLS records of type 22,
 * possibly several carrying one handshake message). `tls13` says whether the
 * listener may negotiate TLS 1.3 (then TLS 1.2 cipher suites do not matter to
 * a client that offers 1.3).
 */
export function parseClientHello(buf: Buffer, tls13: boolean): HelloResult {
  // Reassemble the handshake message from the records' fragments.
  const parts: Buffer[] = [];
  let have = 0;
  let need = -1;
  let off = 0;
  while (need < 0 || have < need) {
    if (buf.length - off < 5) return off + 5 > MAX_CLIENT_HELLO_BYTES ? INVALID : { state: 'more', need: off + 5 };
    if (buf[off] !== 22 || buf[off + 1] !== 3) return INVALID;
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16384) return INVALID;
    if (buf.length - off - 5 < len) return off + 5 + len > MAX_CLIENT_HELLO_BYTES ? INVALID : { state: 'more', need: off + 5 + len };
    parts.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (need < 0 && have >= 4) {
      const head = parts.length === 1 ? parts[0] : Buffer.concat(parts);
      if (head[0] !== 1) return INVALID;
      need = 4 + head.readUIntBE(1, 3);
      if (need > MAX_CLIENT_HELLO_BYTES) return INVALID;
    }
  }
  const msg = (parts.length === 1 ? parts[0] : Buffer.concat(parts)).subarray(4, need);
  return readHello(msg, tls13) ?? INVALID;
}

/** The body of a ClientHello, or undefined when a length points past its end. */
function readHello(b: Buffer, tls13: boolean): HelloResult | undefined {
  let p = 2 + 32; // legacy_version, random
  if (p + 1 > b.length) return undefined;
  p += 1 + b[p]; // session id
  if (p + 2 > b.length) return undefined;
  const suitesLen = b.readUInt16BE(p);
  p += 2;
  if (p + suitesLen > b.length || suitesLen % 2 !== 0) return undefined;
  let ecdsaSuite = false;
  for (let i = 0; i < suitesLen; i += 2) if (ECDSA_SUITES.has(b.readUInt16BE(p + i))) ecdsaSuite = true;
  p += suitesLen;
  if (p + 1 > b.length) return undefined;
  p += 1 + b[p]; // compression methods
  let sigalgs: boolean | undefined; // absent: TLS 1.2 lets the suite decide (RFC 5246 7.4.1.4.1)
  let offers13 = false;
  if (p + 2 <= b.length) {
    const end = p + 2 + b.readUInt16BE(p);
    if (end > b.length) return undefined;
    p += 2;
    while (p + 4 <= end) {
      const type = b.readUInt16BE(p);
      const len = b.readUInt16BE(p + 2);
      p += 4;
      if (p + len > end) return undefined;
      const ext = b.subarray(p, p + len);
      if (type === EXT_SIGALGS) sigalgs = hasEcdsaSigalg(ext);
      else if (type === EXT_SUPPORTED_VERSIONS) offers13 = offersTls13(ext);
      p += len;
    }
    if (p !== end) return undefined;
  } else if (p !== b.length) return undefined;
  const suiteOk = (tls13 && offers13) || ecdsaSuite;
  return { state: 'done', ecdsa: suiteOk && sigalgs !== false };
}

/** signature_algorithms lists an ECDSA scheme (0x0203…0x0603: ecdsa with SHA-1…SHA-512). */
function hasEcdsaSigalg(ext: Buffer): boolean {
  if (ext.length < 2) return false;
  const n = Math.min(ext.readUInt16BE(0), ext.length - 2);
  for (let i = 2; i + 1 < 2 + n; i += 2) if (ext[i + 1] === 0x03 && ext[i] >= 0x02 && ext[i] <= 0x06) return true;
  return false;
}

/** supported_versions lists TLS 1.3 (0x0304). */
function offersTls13(ext: Buffer): boolean {
  if (ext.length < 1) return false;
  const n = Math.min(ext[0], ext.length - 1);
  for (let i = 1; i + 1 < 1 + n; i += 2) if (ext[i] === 3 && ext[i + 1] === 4) return true;
  return false;
}
