/**
 * The `uri` template of redirect: `$var`, `${var}` and `\$` (a literal `$`),
 * compiled once at load into literal parts and value getters.
 */
import type { Ctx } from '../../src/plugin.ts';

type Getter = (ctx: Ctx) => string;
export type Template = readonly (string | Getter)[];

/** nginx's `$host`: the Host header without its port, lower-cased. */
function host(ctx: Ctx): string {
  const h = ctx.request.headers.host ?? '';
  const end = h.startsWith('[') ? h.indexOf(']') + 1 : h.indexOf(':');
  return (end > 0 ? h.slice(0, end) : h).toLowerCase();
}

const args = (ctx: Ctx): string => ctx.request.search.slice(1);

const FIXED: Record<string, Getter> = {
  uri: (ctx) => ctx.request.path,
  request_uri: (ctx) => ctx.request.path + ctx.request.search,
  host,
  scheme: (ctx) => ctx.request.scheme,
  args,
  query_string: args,
  is_args: (ctx) => (ctx.request.search.length > 1 ? '?' : ''),
  request_method: (ctx) => ctx.request.method,
  remote_addr: (ctx) => ctx.request.client_ip,
};

/** `$arg_NAME` as nginx gives it: the raw (still encoded) value of the first NAME in the query. */
function arg(name: string): Getter {
  const key = name.toLowerCase();
  return (ctx) => {
    for (const pair of ctx.request.search.slice(1).split('&')) {
      const eq = pair.indexOf('=');
      if ((eq < 0 ? pair : pair.slice(0, eq)).toLowerCase() === key) return eq < 0 ? '' : pair.slice(eq + 1);
    }
    return '';
  };
}

function header(name: string): Getter {
  const key = name.toLowerCase().replace(/_/g, '-');
  return (ctx) => {
    const v = ctx.request.headers[key];
    return v === undefined ? '' : Array.isArray(v) ? v.join(', ') : v;
  };
}

function cookie(name: string): Getter {
  return (ctx) => {
    const c = ctx.request.headers.cookie;
    if (c === undefined) return '';
    for (const part of c.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
    return '';
  };
}

/** The getter for a variable name, or undefined when Turnpike does not know it. */
function variable(name: string): Getter | undefined {
  if (Object.hasOwn(FIXED, name)) return FIXED[name];
  if (name.startsWith('arg_') && name.length > 4) return arg(name.slice(4));
  if (name.startsWith('http_') && name.length > 5) return header(name.slice(5));
  if (name.startsWith('cookie_') && name.length > 7) return cookie(name.slice(7));
  return undefined;
}

/** Every variable a template may name, for error messages. */
export const VARIABLES = `${Object.keys(FIXED).map((k) => '$' + k).join(', ')}, $arg_NAME, $http_NAME, $cookie_NAME`;

const TOKEN = /\\\$([0-9a-zA-Z_]+)|\$\{([0-9a-zA-Z_]+)\}|\$([0-9a-zA-Z_]+)|([^$\\]+|[$\\])/g;

/** Compiles `text`; throws naming the first variable Turnpike does not know. */
export function compileTemplate(text: string): Template {
  const parts: (string | Getter)[] = [];
  for (const m of text.matchAll(TOKEN)) {
    const name = m[2] ?? m[3];
    if (name === undefined) {
      // `\$name` is the literal text `$name`.
      const lit = m[1] !== undefined ? '$' + m[1] : m[4];
      if (typeof parts[parts.length - 1] === 'string') parts[parts.length - 1] += lit;
      else parts.push(lit);
      continue;
    }
    const get = variable(name);
    if (!get) throw new Error(`unknown variable $${name} in "${text}" (known: ${VARIABLES})`);
    parts.push(get);
  }
  return parts;
}

/** The template's text for this request. */
export function render(t: Template, ctx: Ctx): string {
  let out = '';
  for (const p of t) out += typeof p === 'string' ? p : p(ctx);
  return out;
}
