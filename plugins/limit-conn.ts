/**
 * limit-conn (APISIX's, priority 1003): concurrent requests per key. Up to
 * `conn` run at once; up to `burst` more are let in after a delay
 * (default_conn_delay seconds per multiple of `conn` they are above it, or a
 * delay that follows the measured latency unless only_use_default_delay);
 * beyond, `rejected_code` (503).
 *
 * ```yaml
 * routes:
 *   - id: downloads
 *     uri: /downloads/*
 *     plugins:
 *       limit-conn:
 *         conn: 10
 *         burst: 5
 *         default_conn_delay: 0.1
 *         key_type: var
 *         key: remote_addr
 *         rejected_code: 503
 *         rejected_msg: too many concurrent requests
 * ```
 *
 * A request's slot is released in the log phase, which runs once whenever a
 * response closes, however it ends (finished, client abort, upstream error or
 * timeout, a plugin's failure). A request whose client left before limit-conn's
 * access ran is never counted. Counts live in a table every worker of the host
 * shares (policy `local`); a full table fails closed (500) unless
 * allow_degradation. The `redis` and `redis-cluster` policies are refused at
 * load: not supported yet. A key naming a variable Turnpike does not know is
 * refused at load.
 */
import schema from '../schemas/limit-conn.json' with { type: 'json' };
import { definePlugin, type Ctx, type Reply, type SharedTable } from '../src/plugin.ts';
import { compileKey, counterKey, keyProblem, namespaceOf, type KeyFn } from './limit/key.ts';
import { rejection, sleep, storeFailed, TABLE_FULL, type RejectConf } from './limit/reply.ts';

interface Conf extends RejectConf {
  conn: number;
  burst: number;
  default_conn_delay: number;
  only_use_default_delay: boolean;
  key: string;
  key_type: 'var' | 'var_combination';
  policy: 'local' | 'redis' | 'redis-cluster';
}

interface State {
  conf: Conf;
  namespace: string;
  key: KeyFn;
  table: SharedTable;
  /** The table update that takes a slot (conn + burst at most). */
  enter: (c: Float64Array, now: number) => number;
  /** Seconds a request waits per multiple of conn it is above it. */
  unitDelay(): number;
  /** Feeds a finished request's latency (seconds) into unitDelay. */
  observe(latency: number): void;
  rejected: Readonly<Reply>;
}

/** A held slot: released once, by the log phase. */
interface Held { s: State; key: string; started: number; delayMs: number }
/** Set by the log phase: the request is over, so an access that runs late must not count it. */
const ENDED = 'ended';
const holding = new WeakMap<Ctx, Held | typeof ENDED>();

/** A slot holder lives at most a day without news; then its key is forgotten (a crashed worker's counts). */
const HOLD_MS = 86_400_000;
const CAPACITY = 100_000;

/** Cells: [expiry, connections]. Returns connections with this one, or -1 when over conn + burst. */
function enter(max: number) {
  return (c: Float64Array, now: number): number => {
    if (c[0] !== 0 && c[0] <= now) c[1] = 0;
    if (c[1] + 1 > max) return -1;
    c[1] += 1;
    c[0] = now + HOLD_MS;
    return c[1];
  };
}

function leave(c: Float64Array, now: number): void {
  c[1] = c[0] !== 0 && c[0] <= now ? 0 : Math.max(c[1] - 1, 0);
  // An idle key expires at once, so its place in the table can go to another.
  c[0] = c[1] === 0 ? now : now + HOLD_MS;
}

export default definePlugin<Conf, State>({
  name: 'limit-conn',
  version: '0.1',
  priority: 1003,
  schema,
  check(conf) {
    if (conf.policy !== 'local') return `policy "${conf.policy}" is not supported yet for limit-conn (use "local")`;
    return keyProblem(conf.key_type, conf.key);
  },
  init(conf, api) {
    let unit = conf.default_conn_delay;
    return {
      conf,
      namespace: namespaceOf('limit-conn', api.scope, conf),
      key: compileKey(conf.key_type, conf.key),
      table: api.shared.table('limit-conn', { slots: 2, capacity: CAPACITY }),
      enter: enter(conf.conn + conf.burst),
      unitDelay: () => unit,
      observe: conf.only_use_default_delay ? () => {} : (latency) => { unit = (latency + unit) / 2; },
      rejected: rejection(conf),
    };
  },
  phases: {
    access(s, ctx) {
      if (holding.get(ctx) === ENDED) return undefined;
      const key = counterKey(s.namespace, s.key(ctx));
      const conn = s.table.update(key, s.enter);
      if (conn === undefined) return storeFailed(s.conf, ctx, 'conn', TABLE_FULL);
      if (conn < 0) return s.rejected;
      const max = s.conf.conn;
      const delayMs = conn > max ? s.unitDelay() * Math.floor((conn - 1) / max) * 1000 : 0;
      holding.set(ctx, { s, key, started: performance.now(), delayMs });
      return delayMs >= 1 ? sleep(delayMs).then(() => undefined) : undefined;
    },
    log(_s, ctx) {
      const held = holding.get(ctx);
      holding.set(ctx, ENDED);
      if (held === undefined || held === ENDED) return;
      held.s.table.update(held.key, leave);
      held.s.observe((performance.now() - held.started - held.delayMs) / 1000);
    },
  },
});
