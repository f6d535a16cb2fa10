/**
 * APISIX's `vars` expressions (lua-resty-expr), compiled once at load into
 * one predicate. What a route's `vars` takes:
 *
 * ```yaml
 * vars:                                   # all must hold
 *   - ["http_x_version", "==", "v2"]
 *   - ["arg_age", ">", 18]
 *   - ["http_user_agent", "~*", "android"]  # regex, any case
 *   - ["remote_addr", "ipmatch", ["10.0.0.0/8"]]
 *   - ["arg_name", "!", "==", "bot"]         # negated
 *   - ["OR", ["arg_a", "==", "1"], ["arg_b", "in", ["x", "y"]]]
 * ```
 *
 * Operators: == ~= > >= < <= ~~ ~* in has ipmatch, each negated by a "!"
 * before it; AND, OR, !AND, !OR over nested lists. Semantics are
 * lua-resty-expr's: an unset variable fails every operator but ~= (and its
 * negations); a number on the right makes == and ~= compare numbers. Regexes
 * run on the linear-time engine (src/regex.ts). One difference, kept on
 * purpose: `in` compares a number in its list as == does (APISIX's `in`
 * never matches a number against the variable's text).
 */
import type { Ctx } from './plugin.ts';
import { compileIpMatcher } from './plugin.ts';
import { compileRegex } from './regex.ts';
import type { VarReader } from './vars.ts';

/** A compiled expression: whether a request satisfies it. */
export type Predicate = (ctx: Ctx) => boolean;

/** A mistake in an expression, at `at` below the field that holds it (`[1, 2]`: its second rule's operator). */
export class ExprError extends Error {
  readonly at: readonly (string | number)[];
  constructor(at: readonly (string | number)[], message: string) {
    super(message);
    this.at = at;
  }
}

/** How variables are read: `read` compiles a name (undefined: unknown), `known` lists the names for the error. */
export interface ExprVariables {
  read(name: string): VarReader | undefined;
  /** Every value of a repeated header or query argument, for `has`; undefined for other names. */
  values?(name: string): ((ctx: Ctx) => readonly string[]) | undefined;
  known: string;
}

const LOGIC = new Set(['AND', 'OR', '!AND', '!OR']);
/** Deeper logic is refused at load: compiling and evaluating recurse, and a hostile file could nest thousands. */
const MAX_DEPTH = 16;
const OPS = new Set(['==', '~=', '>', '>=', '<', '<=', '~~', '~*', 'in', 'has', 'ipmatch']);

/**
 * Compiles a `vars` list; throws ExprError with the place and APISIX's
 * reason ("rule should be wrapped inside brackets", "invalid operator '=~'").
 * An empty list holds for every request.
 */
export function compileExpr(rule: unknown, vars: ExprVariables): Predicate {
  if (!Array.isArray(rule)) throw new ExprError([], 'must be a list of expressions, e.g. [["arg_name", "==", "json"]]');
  if (rule.length === 0) return () => true;
  if (!Array.isArray(rule[0]) && !(typeof rule[0] === 'string' && LOGIC.has(rule[0].toUpperCase()))) {
    throw new ExprError([], 'rule should be wrapped inside brackets: [["arg_name", "==", "json"]], not ["arg_name", "==", "json"]');
  }
  return compileRule(rule, [], vars);
}

function compileRule(rule: unknown[], at: (string | number)[], vars: ExprVariables): Predicate {
  if (rule.length === 0) throw new ExprError(at, 'rule too short');
  if (at.length > MAX_DEPTH) throw new ExprError(at, `nested deeper than ${MAX_DEPTH} levels`);
  if (Array.isArray(rule[0])) return all(rule.map((r, i) => sub(r, [...at, i], vars)));
  const op = typeof rule[0] === 'string' ? rule[0].toUpperCase() : '';
  if (LOGIC.has(op)) {
    if (rule.length <= 2) throw new ExprError(at, `rule too short: ${op} needs at least two expressions`);
    const parts = rule.slice(1).map((r, i) => sub(r, [...at, i + 1], vars));
    if (op === 'AND') return all(parts);
    if (op === 'OR') return any(parts);
    const inner = op === '!AND' ? all(parts) : any(parts);
    return (ctx) => !inner(ctx);
  }
  return compileComparison(rule, at, vars);
}

function sub(r: unknown, at: (string | number)[], vars: ExprVariables): Predicate {
  if (!Array.isArray(r)) throw new ExprError(at, 'must be an expression list, e.g. ["arg_name", "==", "json"]');
  return compileRule(r, at, vars);
}

function all(parts: Predicate[]): Predicate {
  if (parts.length === 1) return parts[0];
  return (ctx) => {
    for (let i = 0; i < parts.length; i++) if (!parts[i](ctx)) return false;
    return true;
  };
}

function any(parts: Predicate[]): Predicate {
  return (ctx) => {
    for (let i = 0; i < parts.length; i++) if (parts[i](ctx)) return true;
    return false;
  };
}

/** `[var, op, value]`, `[var, "!", op, value]`, or the old `[var, value]` (==). */
function compileComparison(rule: unknown[], at: (string | number)[], vars: ExprVariables): Predicate {
  if (rule.length > 4) throw new ExprError(at, 'invalid expression: [variable, operator, value] or [variable, "!", operator, value]');
  let negate = false;
  let [name, op, value] = rule;
  let opAt = 1;
  if (rule.length === 4) {
    if (rule[1] !== '!') throw new ExprError([...at, 1], `bad 'not' expression: the second of four items must be "!"`);
    negate = true;
    [name, , op, value] = rule;
    opAt = 2;
  }
  if (typeof op === 'string') op = op.toLowerCase();
  if (rule.length === 2 && !(typeof op === 'string' && OPS.has(op))) [op, value] = ['==', op];
  if (typeof name !== 'string' || name === '') throw new ExprError([...at, 0], 'invalid expression: the first item names a variable, e.g. "arg_name" or "http_x_version"');
  if (typeof op !== 'string' || !OPS.has(op)) throw new ExprError([...at, opAt], `invalid operator '${String(op)}' (known: ${[...OPS].join(' ')})`);
  const read = vars.read(name);
  if (!read) throw new ExprError([...at, 0], `"${name}" is not a variable Turnpike knows here (known: ${vars.known})`);
  const test = comparison(op, value === null ? undefined : value, read, name, [...at, opAt + 1], vars);
  return negate ? (ctx) => !test(ctx) : test;
}

const numberOf = (v: unknown): number | undefined => {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string' || v.trim() === '') return undefined;
  const n = Number(v);
  return Number.isNaN(n) ? undefined : n;
};

function comparison(op: string, value: unknown, read: VarReader, name: string, at: (string | number)[], vars: ExprVariables): Predicate {
  switch (op) {
    case '==':
    case '~=': {
      const eq = equals(value);
      return op === '==' ? (ctx) => eq(read(ctx)) : (ctx) => !eq(read(ctx));
    }
    case '>': case '>=': case '<': case '<=': {
      const r = numberOf(value);
      if (r === undefined) throw new ExprError(at, `"${op}" compares numbers: ${JSON.stringify(value)} is not one`);
      const cmp = op === '>' ? (l: number) => l > r : op === '>=' ? (l: number) => l >= r : op === '<' ? (l: number) => l < r : (l: number) => l <= r;
      return (ctx) => { const l = numberOf(read(ctx)); return l !== undefined && cmp(l); };
    }
    case '~~':
    case '~*': {
      if (typeof value !== 'string') throw new ExprError(at, `"${op}" takes a regular expression (a string)`);
      let re: RegExp;
      try { re = compileRegex(value, 'the pattern', op === '~*' ? 'i' : ''); } catch (err) { throw new ExprError(at, (err as Error).message); }
      return (ctx) => { const l = read(ctx); return l !== undefined && re.test(l); };
    }
    case 'in': {
      if (!Array.isArray(value)) throw new ExprError(at, '"in" takes a list of values');
      const tests = value.map(equals);
      return (ctx) => { const l = read(ctx); return l !== undefined && tests.some((t) => t(l)); };
    }
    case 'has': {
      if (typeof value !== 'string' && typeof value !== 'number') throw new ExprError(at, '"has" takes one value (text or a number)');
      const list = vars.values?.(name);
      if (!list) throw new ExprError([...at.slice(0, -1), 0], `"has" looks for a value among a repeated header's or query argument's values: "${name}" is neither (http_<name> or arg_<name>)`);
      return (ctx) => list(ctx).includes(String(value));
    }
    default: { // ipmatch
      const cidrs = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(cidrs) || !cidrs.every((c) => typeof c === 'string')) throw new ExprError(at, '"ipmatch" takes an address or CIDR, or a list of them');
      let m: ReturnType<typeof compileIpMatcher>;
      try { m = compileIpMatcher(cidrs); } catch (err) { throw new ExprError(at, (err as Error).message); }
      return (ctx) => { const l = read(ctx); return l !== undefined && m.match(l) === true; };
    }
  }
}

/** lua-resty-expr's ==: a number compares as a number, anything else as text. */
function equals(value: unknown): (l: string | undefined) => boolean {
  if (typeof value === 'number') return (l) => numberOf(l) === value;
  if (typeof value === 'string') return (l) => l === value;
  // A boolean or a table never equals a variable's text; undefined (null) equals an unset one.
  return value === undefined ? (l) => l === undefined : () => false;
}
