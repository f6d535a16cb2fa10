/**
 * JSON Schema validation with ajv, turning ajv's errors into sentences that
 * point at a YAML position. Plugins' schemas get a fresh Ajv per load, so
 * nothing leaks between loads; the file's own schema is compiled once.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { HEADER_FORMATS } from '../plugin.ts';
import { didYouMean } from './compat/suggest.ts';
import type { PathSeg } from './source.ts';

export interface SchemaProblem { path: PathSeg[]; message: string; atKey: boolean }

/** Compiles schemas once per load, keyed by `$id`. */
export class SchemaSet {
  private ajv = withFormats(new Ajv({ allErrors: true, useDefaults: true, strict: false, allowUnionTypes: true, verbose: true }));
  private compiled = new Map<string, ValidateFunction>();

  /** Compiles (once) and runs `schema` against `data`, applying defaults in place. */
  validate(key: string, schema: Record<string, unknown>, data: unknown, base: readonly PathSeg[]): SchemaProblem[] {
    let fn = this.compiled.get(key);
    if (!fn) {
      const { $id: _drop, ...rest } = schema;
      fn = this.ajv.compile(rest);
      this.compiled.set(key, fn);
    }
    if (fn(data)) return [];
    return describe(fn.errors ?? [], base);
  }
}

/** The formats every schema may use (HEADER_FORMATS: plugins that set headers). */
function withFormats(ajv: Ajv): Ajv {
  for (const [name, f] of Object.entries(HEADER_FORMATS)) ajv.addFormat(name, { type: 'string', validate: f.test });
  return ajv;
}

function pointerToPath(pointer: string): PathSeg[] {
  if (!pointer) return [];
  return pointer.slice(1).split('/').map((s) => {
    const seg = s.replace(/~1/g, '/').replace(/~0/g, '~');
    return /^\d+$/.test(seg) ? Number(seg) : seg;
  });
}

function describe(errors: ErrorObject[], base: readonly PathSeg[]): SchemaProblem[] {
  // An anyOf failure also reports every branch's failure; keep only the summary.
  const anyOfs = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => e.schemaPath);
  const kept = errors.filter((e) => (e.keyword === 'anyOf' || e.keyword === 'oneOf') || !anyOfs.some((p) => e.schemaPath.startsWith(p + '/')));
  const out: SchemaProblem[] = [];
  const seen = new Set<string>();
  for (const e of kept) {
    const path = [...base, ...pointerToPath(e.instancePath)];
    let message: string;
    let atKey = false;
    switch (e.keyword) {
      case 'required': message = `missing required field "${(e.params as { missingProperty: string }).missingProperty}"`; break;
      case 'additionalProperties': {
        const extra = (e.params as { additionalProperty: string }).additionalProperty;
        path.push(extra); atKey = true;
        const props = (e.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties;
        message = `unknown field "${extra}"${props ? didYouMean(extra, Object.keys(props)) : ''}`; break;
      }
      case 'enum': message = `must be one of: ${((e.params as { allowedValues: unknown[] }).allowedValues).map((v) => JSON.stringify(v)).join(', ')}`; break;
      case 'type': message = `must be of type ${(e.params as { type: string }).type}`; break;
      case 'anyOf': case 'oneOf': message = `is not valid; expected ${((e.parentSchema as { description?: string })?.description ?? 'one of the allowed forms').replace(/\.$/, '')}`; break;
      case 'propertyNames': continue; // reported by the 'pattern' or 'format' error that follows
      case 'if': continue; // the failing then/else branch reports what is wrong
      case 'format': {
        const f = HEADER_FORMATS[(e.params as { format: string }).format as keyof typeof HEADER_FORMATS];
        const name = (e as { propertyName?: string }).propertyName;
        if (name !== undefined) { path.push(name); atKey = true; }
        message = `${JSON.stringify(name ?? e.data)} ${f?.text ?? `must match format "${(e.params as { format: string }).format}"`}`;
        break;
      }
      case 'pattern': {
        const name = (e as { propertyName?: string }).propertyName;
        if (name !== undefined) { path.push(name); atKey = true; message = `"${name}" is not a valid name`; }
        else message = `must match pattern ${(e.params as { pattern: string }).pattern}`;
        break;
      }
      default: message = e.message ?? 'is not valid';
    }
    const k = path.join('\u0000') + '|' + message;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push({ path, message, atKey });
  }
  return out;
}
