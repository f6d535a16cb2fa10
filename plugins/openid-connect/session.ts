/**
 * The browser session in one cookie: a JWT encrypted with A256GCM (`dir`)
 * under a key derived from `session.secret`, so the client can neither read
 * nor change it; one that does not decrypt, or is past its exp, is no
 * session at all.
 */
import { hkdfSync } from 'node:crypto';
import { EncryptJWT, jwtDecrypt } from 'jose';

/** What a cookie holds: a login in progress, or a logged-in session. */
export type SessionData =
  | { t: 'pending'; state: string; nonce: string; verifier?: string; url: string; redirect: string }
  | { t: 'session'; at: string; rt?: string; idt?: string; id: Record<string, unknown>; ui?: Record<string, unknown>; atExp?: number; end: number };

/** Cookie attributes, fixed at load. */
export interface CookieConf {
  name: string;
  path: string;
  domain?: string;
  secure?: boolean;
  httpOnly: boolean;
  sameSite: string;
}

/** Browsers drop cookies past 4096 bytes; a session that large is refused rather than silently lost. */
export const MAX_COOKIE_BYTES = 4000;

/** Seals and opens session cookies for one secret. Key derivation happens once, at load. */
export class SessionCodec {
  readonly #key: Uint8Array;

  constructor(secret: string) {
    this.#key = new Uint8Array(hkdfSync('sha256', secret, 'turnpike openid-connect', 'session cookie A256GCM', 32));
  }

  /** The cookie value for `data`, valid until `endMs` (epoch ms). */
  seal(data: SessionData, endMs: number): Promise<string> {
    return new EncryptJWT({ s: data }).setProtectedHeader({ alg: 'dir', enc: 'A256GCM' }).setIssuedAt().setExpirationTime(Math.floor(endMs / 1000)).encrypt(this.#key);
  }

  /** The session in `value`, or undefined when it is not one of ours, was altered or has expired. */
  async open(value: string | undefined): Promise<SessionData | undefined> {
    if (!value) return undefined;
    try {
      const { payload } = await jwtDecrypt(value, this.#key, { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] });
      const s = payload.s as SessionData | undefined;
      // A session sealed before `end` existed has no end to keep: it logs in again.
      return s && (s.t === 'pending' || (s.t === 'session' && typeof s.end === 'number')) ? s : undefined;
    } catch {
      return undefined;
    }
  }
}

/** The value of cookie `name` in a Cookie header, if any. */
export function readCookie(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const line of Array.isArray(header) ? header : [header]) {
    for (const part of line.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}

/** A Set-Cookie value; `maxAge` 0 deletes the cookie. */
export function setCookie(c: CookieConf, value: string, secure: boolean, maxAge?: number): string {
  let s = `${c.name}=${value}; Path=${c.path}`;
  if (c.domain) s += `; Domain=${c.domain}`;
  if (maxAge !== undefined) s += `; Max-Age=${maxAge}`;
  if (c.httpOnly) s += '; HttpOnly';
  if (c.sameSite !== 'Default') s += `; SameSite=${c.sameSite}`;
  if (c.secure ?? secure) s += '; Secure';
  return s;
}
