/**
 * `${{VAR}}` and `${{VAR:=default}}` substitution on the raw text (APISIX's syntax).
 * JavaScript's `${name}` never matches, so function sources are left alone.
 */

const PATTERN = /\$\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::=([^}]*))?\}\}/g;

export interface MissingVar { name: string; offset: number }

/** Substitutes variables; reports each one that is unset and has no default. */
export function interpolate(text: string, env: Readonly<Record<string, string | undefined>>): { text: string; missing: MissingVar[] } {
  const missing: MissingVar[] = [];
  const out = text.replace(PATTERN, (whole, name: string, dflt: string | undefined, offset: number) => {
    const v = env[name];
    if (v !== undefined) return v;
    if (dflt !== undefined) return dflt;
    missing.push({ name, offset });
    return whole;
  });
  return { text: out, missing };
}
