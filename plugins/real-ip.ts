/**
 * Sets the client address from what a trusted proxy in front of the gateway
 * says: a header, the last X-Forwarded-For hop, or a query argument. Every
 * later step sees the new address: ip-restriction, limits keyed on
 * remote_addr, consistent hashing, X-Real-IP upstream and the access log.
 *
 * ```yaml
 * plugins:
 *   real-ip:
 *     source: http_x_forwarded_for
 *     trusted_addresses: ["10.0.0.0/8", "fd00::/8"]
 *     recursive: true
 * ```
 *
 * The address is changed only when the current client address (the peer, or
 * what `trusted_proxies` derived) is in `trusted_addresses`; a missing or
 * malformed value changes nothing. Headers are read as the client sent them
 * (the gateway's own trust, `trusted_proxies`, is not needed on top of
 * `trusted_addresses`). Where APISIX falls short, this plugin does
 * better: `trusted_addresses` is required (APISIX believes any client's
 * header when it is absent, so anyone can pick the address ip-restriction
 * judges); `["0.0.0.0/0", "::/0"]` says so on purpose.
 */
import schema from '../schemas/real-ip.json' with { type: 'json' };
import { compileIpMatcher, definePlugin, type Ctx, type IpMatcher } from '../src/plugin.ts';

interface Conf { source: string; trusted_addresses?: string[]; recursive: boolean }
interface State { read: (ctx: Ctx) => string | undefined; trusted: IpMatcher; forwardedFor: boolean; recursive: boolean }

/** `1.2.3.4`, `1.2.3.4:80`, `[::1]:80` or `::1` → the address part. */
function addressOf(value: string): string {
  const v = value.trim();
  if (v.startsWith('[')) {
    const end = v.indexOf(']');
    return end < 0 ? v : v.slice(1, end);
  }
  const colon = v.indexOf(':');
  // One colon: IPv4 with a port; more: a bare IPv6 address.
  return colon >= 0 && colon === v.lastIndexOf(':') ? v.slice(0, colon) : v;
}

/** The reader for `source`, or undefined when it is not a form Turnpike reads. */
function reader(source: string): ((ctx: Ctx) => string | undefined) | undefined {
  if (source.startsWith('http_') && source.length > 5) {
    const name = source.slice(5).toLowerCase().replace(/_/g, '-');
    // As received: the gateway drops forwarding headers from peers outside
    // trusted_proxies, but trusted_addresses is this plugin's own trust.
    return (ctx) => ctx.request.received(name);
  }
  if (source.startsWith('arg_') && source.length > 4) {
    const name = source.slice(4);
    return (ctx) => {
      const v = ctx.request.query[name];
      return Array.isArray(v) ? v[0] : v;
    };
  }
  return undefined;
}

/** The address X-Forwarded-For names: its last hop, or with `recursive` the rightmost untrusted one. */
function fromForwardedFor(s: State, xff: string): string {
  const hops = xff.split(',');
  if (!s.recursive) return hops[hops.length - 1];
  for (let i = hops.length - 1; i > 0; i--) {
    if (!s.trusted.match(addressOf(hops[i]))) return hops[i];
  }
  return hops[0];
}

export default definePlugin<Conf, State>({
  name: 'real-ip',
  version: '1.0.0',
  priority: 23000,
  schema,
  check(conf) {
    if (!reader(conf.source)) return `source "${conf.source}" is not one Turnpike reads: use http_NAME (a header, such as http_x_forwarded_for) or arg_NAME (a query argument)`;
    if (!conf.trusted_addresses) return 'trusted_addresses is required: without it any client could choose its own address (write ["0.0.0.0/0", "::/0"] to believe every peer knowingly)';
    try { compileIpMatcher(conf.trusted_addresses); } catch (err) { return (err as Error).message; }
    return undefined;
  },
  init: (conf) => ({
    read: reader(conf.source)!,
    trusted: compileIpMatcher(conf.trusted_addresses!),
    forwardedFor: conf.source.toLowerCase() === 'http_x_forwarded_for',
    recursive: conf.recursive,
  }),
  phases: {
    rewrite(s, ctx) {
      if (!s.trusted.match(ctx.request.client_ip)) return undefined;
      const value = s.read(ctx);
      if (!value) return undefined;
      const addr = addressOf(s.forwardedFor ? fromForwardedFor(s, value) : value);
      // Not an address: nothing changes (setClientAddress refuses it).
      if (!ctx.setClientAddress(addr)) ctx.log.warn('real-ip: not an address, client address unchanged', { value: value.slice(0, 100) });
      return undefined;
    },
  },
});
