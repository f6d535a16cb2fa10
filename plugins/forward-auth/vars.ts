/**
 * `$var` / `${var}` in forward-auth's extra_headers, as APISIX's
 * resolve_var reads them: compiled once at load into literal and variable
 * parts; an unknown variable reads as the empty string.
 */
import type { Ctx } from '../../src/plugin.ts';

type Part = string | ((ctx: Ctx) => string);

const first = (v: string | string[] | undefined): string => (Array.isArray(v) ? v[0] ?? '' : v ?? '');

/** The reader of one nginx-style variable. */
function variable(name: string): (ctx: Ctx) => string {
  switch (name) {
    case 'remote_addr': return (ctx) => ctx.request.client_ip;
    case 'remote_port': return (ctx) => String(ctx.downstream.remote_port);
    case 'server_addr': return (ctx) => ctx.downstream.server_addr;
    case 'server_port': return (ctx) => String(ctx.downstream.port);
    case 'scheme': return (ctx) => ctx.downstream.scheme;
    case 'host': return (ctx) => ctx.downstream.host;
    case 'uri': return (ctx) => ctx.request.path;
    case 'request_uri': return (ctx) => ctx.downstream.request_uri;
    case 'request_method': return (ctx) => ctx.request.method;
    case 'args': return (ctx) => { const u = ctx.downstream.request_uri; const q = u.indexOf('?'); return q < 0 ? '' : u.slice(q + 1); };
    case 'route_id': return (ctx) => ctx.route.id;
    case 'service_id': return (ctx) => ctx.service?.id ?? '';
    case 'consumer_name': return (ctx) => ctx.consumer?.username ?? '';
  }
  if (name.startsWith('http_')) { const h = name.slice(5).replace(/_/g, '-'); return (ctx) => first(ctx.request.headers[h]); }
  if (name.startsWith('arg_')) { const a = name.slice(4); return (ctx) => first(ctx.request.query[a]); }
  if (name.startsWith('cookie_')) {
    const re = new RegExp(`(?:^|;)\\s*${name.slice(7)}=([^;]*)`);
    return (ctx) => { const c = ctx.request.headers.cookie; return (c && re.exec(c)?.[1]) || ''; };
  }
  return () => '';
}

/** Compiles `value` once; the result resolves it for one request. */
export function compileTemplate(value: string): (ctx: Ctx) => string {
  const parts: Part[] = [];
  let last = 0;
  for (const m of value.matchAll(/(?<!\\)\$(?:\{(\w+)\}|(\w+))/g)) {
    if (m.index > last) parts.push(value.slice(last, m.index));
    parts.push(variable((m[1] ?? m[2]).toLowerCase()));
    last = m.index + m[0].length;
  }
  if (last < value.length) parts.push(value.slice(last));
  if (parts.every((p) => typeof p === 'string')) { const s = parts.join(''); return () => s; }
  return (ctx) => {
    let out = '';
    for (const p of parts) out += typeof p === 'string' ? p : p(ctx);
    return out;
  };
}
