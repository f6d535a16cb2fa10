/**
 * Kong credentials as Turnpike consumer credentials, with the fields Kong
 * makes up when a file leaves them out (`auto = true` in its schema:
 * kong/plugins/key-auth/daos.lua, kong/plugins/jwt/daos.lua) made up the same way.
 */
import { randomBytes, randomInt } from 'node:crypto';

type Obj = Record<string, unknown>;

/** Credential fields Kong's schema marks `auto = true` (basic-auth has none: its username and password are required). */
const AUTO_FIELDS: Record<string, string[]> = { keyauth_credentials: ['key'], jwt_secrets: ['key', 'secret'] };

/**
 * A value as Kong's random_string makes one (kong/tools/rand.lua): 24 random
 * bytes in base64 with `/` and `+` replaced by a random letter, so 32 letters
 * and digits.
 */
function kongRandomString(): string {
  return randomBytes(24).toString('base64').replace(/[/+]/g, (c) => String.fromCharCode((c === '/' ? 65 : 97) + randomInt(26)));
}

/**
 * A credential (an item of `field`, `jwt_secrets` say) with the fields Kong
 * would make up filled in, and their names. A jwt secret only where it is
 * used: an HS algorithm without an RSA key.
 */
export function madeUp(x: Obj, field: string): { cred: Obj; made: string[] } {
  const made = (AUTO_FIELDS[field] ?? []).filter((f) => (x[f] === undefined || x[f] === null)
    && (f !== 'secret' || (!x.rsa_public_key && String(x.algorithm ?? 'HS256').startsWith('HS'))));
  if (!made.length) return { cred: x, made };
  const cred = { ...x };
  for (const f of made) cred[f] = kongRandomString();
  return { cred, made };
}

/** A Kong jwt_secret as a jwt-auth credential: `key` (what `iss` names), secret or RSA public key, algorithm. */
export function jwtCredential(x: Obj): Obj {
  return {
    key: x.key,
    ...(x.secret !== undefined && !x.rsa_public_key ? { secret: x.secret } : {}),
    algorithm: x.algorithm ?? 'HS256',
    ...(x.rsa_public_key ? { public_key: x.rsa_public_key } : {}),
  };
}
