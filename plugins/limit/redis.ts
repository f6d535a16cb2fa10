/**
 * Redis for the rate-limit plugins: one ioredis client per distinct connection
 * (host, port, credentials, database, TLS, timeout), made at the first request
 * that needs it (so `validate` never connects) and shared by every instance
 * and reload that names the same server. Scripts run with EVALSHA and fall back
 * to EVAL when Redis lost its script cache (a restart): ioredis's defineCommand.
 *
 * Every call is bounded by `redis_timeout`; while the client is known to be
 * disconnected a call fails at once instead of waiting, and the client keeps
 * reconnecting by itself (at most a second apart), so a restarted Redis is used
 * again without a gateway restart.
 */
import { Redis, Cluster } from 'ioredis';

/** The connection fields APISIX's redis policies share (names and defaults as APISIX). */
export interface RedisConf {
  policy: 'redis' | 'redis-cluster' | 'local';
  redis_host?: string;
  redis_port?: number;
  redis_username?: string;
  redis_password?: string;
  redis_database?: number;
  redis_timeout?: number;
  redis_ssl?: boolean;
  redis_ssl_verify?: boolean;
  redis_cluster_nodes?: string[];
  redis_cluster_name?: string;
  redis_cluster_ssl?: boolean;
  redis_cluster_ssl_verify?: boolean;
}

/** A Lua script run with one key. */
export interface Script { readonly name: string; readonly lua: string }

type Client = Redis | Cluster;
type ScriptFn = (key: string, ...args: (string | number)[]) => Promise<unknown>;

/** One server (or cluster) as the plugins use it. */
export class RedisStore {
  readonly label: string;
  readonly timeoutMs: number;
  private client?: Client;
  private readonly make: () => Client;
  private readonly defined = new Set<string>();
  private lastError = '';
  constructor(label: string, timeoutMs: number, make: () => Client) {
    this.label = label;
    this.timeoutMs = timeoutMs;
    this.make = make;
  }

  private get(): Client {
    if (!this.client) {
      const c = this.make();
      // Without a listener ioredis prints every failed reconnect to stderr.
      c.on('error', (err: Error) => { this.lastError = err.message; });
      c.on('ready', () => { this.lastError = ''; });
      this.client = c;
    }
    return this.client;
  }

  /** Runs `script` on `key` with `args`; rejects when Redis is down or slower than redis_timeout. */
  run(script: Script, key: string, args: (string | number)[]): Promise<unknown> {
    const c = this.get();
    if (c.status === 'reconnecting' || c.status === 'end' || c.status === 'close') {
      return Promise.reject(new Error(`redis ${this.label} is unavailable${this.lastError ? `: ${this.lastError}` : ''}`));
    }
    if (!this.defined.has(script.name)) {
      c.defineCommand(script.name, { numberOfKeys: 1, lua: script.lua });
      this.defined.add(script.name);
    }
    const call = (c as unknown as Record<string, ScriptFn>)[script.name](key, ...args);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`redis ${this.label} did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
  }

  /** Closes the connection (tests; a gateway keeps its clients for its lifetime). */
  close(): void {
    this.client?.disconnect();
    this.client = undefined;
    this.defined.clear();
  }
}

const stores = new Map<string, RedisStore>();
/** Every store made, also those closeRedisStores() detached from `stores` (instances still hold them). */
const made = new Set<RedisStore>();
const NODE = /^\[?([^\]]+?)\]?:(\d{1,5})$/;

const retryStrategy = (times: number): number => Math.min(times * 100, 1000);

/** The shared store for `conf`'s connection fields. */
export function redisStore(conf: RedisConf): RedisStore {
  const timeout = conf.redis_timeout ?? 1000;
  const id = JSON.stringify(conf.policy === 'redis-cluster'
    ? ['cluster', conf.redis_cluster_nodes, conf.redis_password, conf.redis_timeout, conf.redis_cluster_ssl, conf.redis_cluster_ssl_verify]
    : ['single', conf.redis_host, conf.redis_port, conf.redis_username, conf.redis_password, conf.redis_database, conf.redis_timeout, conf.redis_ssl, conf.redis_ssl_verify]);
  let store = stores.get(id);
  if (store) return store;
  if (conf.policy === 'redis-cluster') {
    const nodes = (conf.redis_cluster_nodes ?? []).map(parseNode);
    const tls = conf.redis_cluster_ssl ? { rejectUnauthorized: conf.redis_cluster_ssl_verify ?? false } : undefined;
    store = new RedisStore(`cluster ${conf.redis_cluster_name ?? nodes.map((n) => `${n.host}:${n.port}`).join(',')}`, timeout, () => new Cluster(nodes, {
      clusterRetryStrategy: retryStrategy,
      enableOfflineQueue: true,
      redisOptions: { password: conf.redis_password || undefined, tls, connectTimeout: timeout, maxRetriesPerRequest: 1 },
    }));
  } else {
    const host = conf.redis_host!;
    const port = conf.redis_port ?? 6379;
    store = new RedisStore(`${host}:${port}`, timeout, () => new Redis({
      host, port,
      username: conf.redis_username,
      password: conf.redis_password || undefined,
      db: conf.redis_database ?? 0,
      tls: conf.redis_ssl ? { rejectUnauthorized: conf.redis_ssl_verify ?? false, servername: host } : undefined,
      connectTimeout: timeout,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
      retryStrategy,
    }));
  }
  stores.set(id, store);
  made.add(store);
  return store;
}

/** Why `conf`'s redis fields cannot make a connection, or undefined (also for policy local). */
export function redisProblem(conf: RedisConf): string | undefined {
  if (conf.policy === 'redis' && conf.redis_host === undefined) return 'policy "redis" needs redis_host';
  if (conf.policy === 'redis-cluster') {
    if (!conf.redis_cluster_nodes) return 'policy "redis-cluster" needs redis_cluster_nodes';
    if (conf.redis_cluster_name === undefined) return 'policy "redis-cluster" needs redis_cluster_name';
    for (const n of conf.redis_cluster_nodes) if (!NODE.test(n)) return `redis_cluster_nodes: "${n}" is not host:port`;
  }
  return undefined;
}

/** `host:port` (or `[v6]:port`) of redis_cluster_nodes. */
export function parseNode(s: string): { host: string; port: number } {
  const m = NODE.exec(s);
  if (!m) throw new Error(`redis_cluster_nodes: "${s}" is not host:port`);
  return { host: m[1], port: Number(m[2]) };
}

/**
 * Closes every client this process made, and makes the next instance that
 * names a server get a client of its own (tests: two gateways in one process
 * as two hosts; after()).
 */
export function closeRedisStores(): void {
  for (const s of made) s.close();
  stores.clear();
}
