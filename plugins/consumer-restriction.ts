/**
 * Lets requests through or refuses them by who they are: the consumer an
 * auth plugin identified (`type: consumer_name`, the default), or the
 * service or route they matched. Runs in access, after every auth plugin.
 *
 * ```yaml
 * routes:
 *   - id: orders
 *     plugins:
 *       key-auth: {}
 *       consumer-restriction:
 *         whitelist: [alice, bob]
 *         allowed_by_methods:
 *           - { user: bob, methods: [GET] }
 * ```
 *
 * As in APISIX: a blacklisted name gets `rejected_code` (403) with
 * `{"message":"The consumer_name is forbidden."}` (or `rejected_msg`); so does
 * a name missing from the whitelist, or one using a method its
 * `allowed_by_methods` entry does not list (unless whitelisted). Fails
 * closed: with no consumer (no auth plugin ran, or none identified one) the
 * answer is `401 {"message":"The request is rejected, please check the
 * consumer_name for this request"}`. APISIX's `consumer_group_id` is refused
 * at load: Turnpike has no consumer groups.
 */
import schema from '../schemas/consumer-restriction.json' with { type: 'json' };
import { definePlugin, type Ctx, type Reply } from '../src/plugin.ts';

type Kind = 'consumer_name' | 'service_id' | 'route_id';
interface Conf {
  type: Kind; whitelist?: string[]; blacklist?: string[];
  allowed_by_methods?: { user?: string; methods?: string[] }[]; rejected_code: number; rejected_msg?: string;
}
interface State {
  value: (ctx: Ctx) => string | undefined;
  whitelist: ReadonlySet<string> | undefined;
  blacklist: ReadonlySet<string> | undefined;
  /** name → methods it may use; the first entry for a name counts, as in APISIX. */
  methods: ReadonlyMap<string, ReadonlySet<string>> | undefined;
  rejected: Reply;
  missing: Reply;
}

const VALUE: Record<Kind, (ctx: Ctx) => string | undefined> = {
  consumer_name: (ctx) => ctx.consumer?.username,
  service_id: (ctx) => ctx.service?.id,
  route_id: (ctx) => ctx.route.id,
};

function methodMap(list: Conf['allowed_by_methods']): Map<string, Set<string>> | undefined {
  if (!list?.length) return undefined;
  const out = new Map<string, Set<string>>();
  for (const e of list) if (e.user !== undefined && !out.has(e.user)) out.set(e.user, new Set(e.methods ?? []));
  return out;
}

export default definePlugin<Conf, State>({
  name: 'consumer-restriction',
  version: '1.0.0',
  priority: 2400,
  schema,
  check(conf) {
    if (!conf.whitelist && !conf.blacklist && !conf.allowed_by_methods) return 'give whitelist, blacklist or allowed_by_methods';
    return undefined;
  },
  init: (conf) => ({
    value: VALUE[conf.type],
    whitelist: conf.whitelist && new Set(conf.whitelist),
    blacklist: conf.blacklist && new Set(conf.blacklist),
    methods: methodMap(conf.allowed_by_methods),
    rejected: { status: conf.rejected_code, body: { message: conf.rejected_msg ?? `The ${conf.type} is forbidden.` } },
    missing: { status: 401, body: { message: `The request is rejected, please check the ${conf.type} for this request` } },
  }),
  phases: {
    access(s, ctx) {
      const value = s.value(ctx);
      if (value === undefined) return s.missing;
      if (s.blacklist?.has(value)) return s.rejected;
      const whitelisted = s.whitelist?.has(value) ?? false;
      if (s.whitelist && !whitelisted) return s.rejected;
      const allowed = s.methods?.get(value);
      if (!whitelisted && allowed && !allowed.has(ctx.request.method)) return s.rejected;
      return undefined;
    },
  },
});
