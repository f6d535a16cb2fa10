/**
 * One path, one host: what the router matches is what the upstream receives.
 *
 * Paths: percent-decoding of unreserved characters only (RFC 3986 §2.3, so
 * `%2e` is a dot and `%41` an `A`), other escapes upper-cased, dot segments
 * resolved (RFC 3986 §5.2.4, clamped at the root), `//` merged. `%2F` and
 * `%5C` (encoded `/` and `\`) stay encoded and are the caller's to refuse:
 * decoding them would change the segments, keeping them lets an upstream that
 * decodes them see another path than the router did. A raw `\`, `%00` or a
 * broken escape makes the path invalid.
 */

const UNRESERVED = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~') UNRESERVED[c.charCodeAt(0)] = 1;
const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/** True when `p` (which starts with `/`) is already in normal form: no escape, no `//`, no dot segment, no `\`. */
function isPlain(p: string): boolean {
  return p.indexOf('%') < 0 && p.indexOf('//') < 0 && p.indexOf('/.') < 0 && p.indexOf('\\') < 0;
}

/**
 * The normal form of an origin-form path (no query), or undefined when it is
 * not a valid one. Returns `p` itself when it is already normal (the common case,
 * no allocation).
 */
export function normalizePath(p: string): string | undefined {
  if (p.charCodeAt(0) !== 47) return undefined;
  if (isPlain(p)) return p;
  let decoded = '';
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c === 92) return undefined;
    if (c !== 37) { decoded += p[i]; continue; }
    const hi = hexValue(p.charCodeAt(i + 1));
    const lo = hexValue(p.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return undefined;
    const byte = hi * 16 + lo;
    if (byte === 0) return undefined;
    decoded += byte < 128 && UNRESERVED[byte] ? String.fromCharCode(byte) : '%' + HEX[hi] + HEX[lo];
    i += 2;
  }
  const out: string[] = [];
  const segs = decoded.split('/');
  // segs[0] is the empty string before the leading slash.
  let trailing = false;
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i];
    trailing = i === segs.length - 1;
    if (s === '' || s === '.') continue;
    if (s === '..') { out.pop(); continue; }
    // `..;x` is `..` to servlet containers (path parameters): refuse rather than guess.
    if (s.charCodeAt(0) === 46 && (s[1] === ';' || (s[1] === '.' && s[2] === ';'))) return undefined;
    out.push(s);
    if (trailing) return '/' + out.join('/');
  }
  return out.length === 0 ? '/' : '/' + out.join('/') + (trailing ? '/' : '');
}

/** True when a normal-form path carries an encoded `/` or `\`. */
export function hasEscapedSlash(p: string): boolean {
  return p.indexOf('%2F') >= 0 || p.indexOf('%5C') >= 0;
}

/**
 * A path a plugin rewrote, in normal form: made absolute, dot segments and
 * `//` resolved (so neither `//evil.example/x` nor `/../../etc/passwd` leaves);
 * a query it carries is kept.
 * Undefined when it cannot be made valid.
 */
export function normalizeRewritten(p: string): string | undefined {
  const q = p.indexOf('?');
  const path = q < 0 ? p : p.slice(0, q);
  const n = normalizePath(path.charCodeAt(0) === 47 ? path : '/' + path);
  // A query written into the rewrite (`/v2?x=1`) rides along untouched.
  return n === undefined || q < 0 ? n : n + p.slice(q);
}

const HOST_CHARS = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$|^\[[0-9a-f:.]+\]$/;
let lastHostIn = '';
let lastHostOut = '';

/**
 * The Host as routes match it: lower-cased, without port or trailing dot.
 * Undefined when it is not a host name or IP literal (a 400).
 */
export function normalizeHost(h: string): string | undefined {
  // One entry of memory: most connections send the same Host again and again.
  if (h === lastHostIn) return lastHostOut;
  let s = h.toLowerCase();
  const colon = s.lastIndexOf(':');
  if (colon >= 0 && s.indexOf(']') < colon) {
    const port = s.slice(colon + 1);
    if (!/^\d{0,5}$/.test(port)) return undefined;
    s = s.slice(0, colon);
  }
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (!HOST_CHARS.test(s)) return undefined;
  lastHostIn = h;
  lastHostOut = s;
  return s;
}
