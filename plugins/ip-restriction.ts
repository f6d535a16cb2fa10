/**
 * Lets requests through or refuses them by the client's address: the peer,
 * or the address read through `trusted_proxies` (and real-ip, which runs
 * earlier), never a forwarding header an untrusted client sent itself.
 *
 * ```yaml
 * plugins:
 *   ip-restriction:
 *     whitelist: ["10.0.0.0/8", "192.168.1.7", "fd00::/8"]
 *     message: "Access denied"
 * ```
 *
 * Refused: `403 {"message":"Your IP address is not allowed"}` (or
 * `response_code: 404`). The lists compile once at load into node:net
 * BlockLists; an IPv4 client seen as `::ffff:a.b.c.d` matches IPv4 rules. Fails
 * closed: a request whose client address is unknown is refused under either
 * list (APISIX lets it through a blacklist).
 */
import schema from '../schemas/ip-restriction.json' with { type: 'json' };
import { compileIpMatcher, definePlugin, type IpMatcher, type Reply } from '../src/plugin.ts';

interface Conf { whitelist?: string[]; blacklist?: string[]; message: string; response_code: number }
interface State { list: IpMatcher; allow: boolean; reply: Reply }

export default definePlugin<Conf, State>({
  name: 'ip-restriction',
  version: '1.0.0',
  priority: 3000,
  schema,
  check(conf) {
    if ((conf.whitelist === undefined) === (conf.blacklist === undefined)) return 'give either whitelist or blacklist (one of them, not both)';
    try { compileIpMatcher(conf.whitelist ?? conf.blacklist ?? []); } catch (err) { return (err as Error).message; }
    return undefined;
  },
  init: (conf) => ({
    list: compileIpMatcher(conf.whitelist ?? conf.blacklist!),
    allow: conf.whitelist !== undefined,
    reply: { status: conf.response_code, body: { message: conf.message } },
  }),
  phases: {
    access(s, ctx) {
      const listed = s.list.match(ctx.request.client_ip);
      // undefined: no usable address, refused under either list.
      return listed === undefined || listed !== s.allow ? s.reply : undefined;
    },
  },
});
