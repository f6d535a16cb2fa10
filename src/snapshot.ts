/**
 * The frozen result of one config load: everything the request path reads.
 * Built by config code, read (never changed) by the server.
 */
import type { Credential, Ctx, Handler, Phase, PluginDef } from './plugin.ts';
import type { Balancer } from './balancer.ts';
import type { Router } from './router.ts';
import type { SecureVersion } from 'node:tls';
import type { SniTable } from './tls/sni.ts';

export interface Step {
  readonly name: string;
  readonly fn: Handler<unknown>;
  readonly conf: unknown;
}

/** A route's plugins, merged and sorted, split by phase. */
export type Chain = {
  readonly [P in Phase]: readonly Step[];
} & {
  /** Largest request body any plugin wants buffered (0: stream it). */
  readonly requestBody: number;
  /** Some plugin reads or replaces the response body. */
  readonly bufferResponse: boolean;
};

export interface UpstreamNode {
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  /** `http://host:port`: the key of its connection pool. */
  readonly origin: string;
  /** `host:port` as sent with pass_host: node. */
  readonly hostHeader: string;
  /** scheme https: how its connections are made (its pool is kept under tls.poolKey). */
  readonly tls?: UpstreamTls;
}

/** TLS to one https node, compiled at load (src/config/upstream-tls.ts). */
export interface UpstreamTls {
  /** Check the certificate's chain and name. */
  readonly verify: boolean;
  /** SNI, and the name the certificate is checked against; undefined for an IP node (checked against the IP). */
  readonly servername?: string;
  /** PEM CAs instead of the system's. */
  readonly ca?: string;
  /** PEM client certificate and key (mutual TLS). */
  readonly cert?: string;
  readonly key?: string;
  /** The origin and a digest of these settings: the key of the node's connection pool. */
  readonly poolKey: string;
}

export interface UpstreamEntry {
  readonly id: string;
  readonly nodes: readonly UpstreamNode[];
  readonly balancer: Balancer;
  /** chash only: where the hash key comes from (undefined for other balancers). */
  readonly hashOn?: 'vars' | 'header' | 'cookie' | 'consumer';
  /** chash: the request's key (hash_on + key, compiled at load); undefined spreads the request round-robin. */
  readonly hashKey?: (ctx: Ctx) => string | undefined;
  /** Milliseconds; `tunnelIdle`: a WebSocket tunnel with no byte either way this long is closed. */
  readonly timeout: { readonly connect: number; readonly send: number; readonly read: number; readonly tunnelIdle: number };
  readonly retries: number;
  readonly retryNonIdempotent: boolean;
  readonly passHost: 'pass' | 'node' | 'rewrite';
  readonly upstreamHost?: string;
  readonly keepalive: { readonly size: number; readonly idleMs: number };
  /** Passive health checks, when configured. */
  readonly passive?: PassiveCheck;
  /** Active health checks (probes), when configured; run by src/health/active.ts. */
  readonly active?: ActiveCheck;
}

/** `checks.active`, compiled: times in ms, statuses as sets, headers parsed. */
export interface ActiveCheck {
  readonly type: 'http' | 'https' | 'tcp';
  readonly timeoutMs: number;
  readonly concurrency: number;
  readonly host?: string;
  readonly port?: number;
  readonly method: string;
  readonly path: string;
  readonly body: string;
  readonly verify: boolean;
  readonly headers: Readonly<Record<string, string>>;
  readonly healthyIntervalMs: number;
  readonly healthyStatuses: ReadonlySet<number>;
  readonly successes: number;
  readonly unhealthyIntervalMs: number;
  readonly unhealthyStatuses: ReadonlySet<number>;
  readonly httpFailures: number;
  readonly tcpFailures: number;
  readonly timeouts: number;
}

export interface PassiveCheck {
  readonly tcpFailures: number;
  readonly httpFailures: number;
  readonly httpStatuses: ReadonlySet<number>;
  readonly ejectionMs: number;
}

export interface RouteEntry {
  readonly id: string;
  readonly uri: string;
  readonly serviceId?: string;
  /** The route as written, without its upstream (plugins see it as ctx.route.config). */
  readonly config?: Readonly<Record<string, unknown>>;
  /** ctx.service: the service's id and its config without upstream. */
  readonly service?: { readonly id: string; readonly config?: Readonly<Record<string, unknown>> };
  readonly upstream?: UpstreamEntry;
  readonly websocket: boolean;
  /** TRACE is answered 405 unless the route lists it in `methods`. */
  readonly allowTrace: boolean;
  /** `allow_encoded_slashes`: `%2F`/`%5C` in the path are passed on encoded instead of refused. */
  readonly allowEncodedSlashes: boolean;
  readonly chain: Chain;
  /** Its `vars` and `remote_addrs`, when it has any: the router takes it only for a request that passes. */
  readonly filter?: (ctx: Ctx) => boolean;
  /** The chain once a consumer is known (consumer plugins merged in), by username. */
  readonly consumerChains?: ReadonlyMap<string, Chain>;
}

export interface ServerlessSettings {
  readonly enabled: boolean;
  readonly threads: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
  readonly maxQueue: number;
  readonly maxHeapMb: number;
  readonly maxResultBytes: number;
  readonly allowFsRead: readonly string[];
}

export interface Listen { readonly host: string; readonly port: number }

/** One proxy listener (`listen` or an item of its list). */
export interface ListenerSpec extends Listen {
  readonly tls: boolean;
  /** HTTP/2 through ALPN beside HTTP/1.1 (TLS listeners only). */
  readonly http2: boolean;
  readonly minVersion: SecureVersion;
  readonly maxVersion: SecureVersion;
  /** OpenSSL cipher list (TLSv1.2). */
  readonly ciphers: string;
}

/** Bounds on what one client may make the gateway wait for or hold (top of gateway.yaml). */
export interface EdgeLimits {
  readonly headerTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly keepAliveMs: number;
  readonly maxBufferedResponse: number;
}

export interface Snapshot {
  readonly file: string;
  readonly hash: string;
  /** The first listener (what `listen` said when it was one address). */
  readonly listen: Listen;
  /** Every proxy listener; each worker serves them all. */
  readonly listeners: readonly ListenerSpec[];
  readonly admin: (Listen & { readonly tls: boolean }) | null;
  /** Certificates by SNI (`ssls`), SecureContexts made at load. */
  readonly ssls: SniTable;
  /** Certificate and key files this config read (absolute): watched like the config file. */
  readonly sslFiles: readonly string[];
  readonly trustedProxies: (ip: string) => boolean;
  readonly limits: EdgeLimits;
  readonly serverless: ServerlessSettings;
  readonly router: Router;
  readonly routes: readonly RouteEntry[];
  /** plugin name → lookup key → the consumer and its compiled credentials. */
  readonly consumers: ReadonlyMap<string, ReadonlyMap<string, Credential>>;
  /** Every upstream node origin in use (pools of others can be closed). */
  readonly origins: ReadonlySet<string>;
  /** Serverless function ids in use (workers drop the others). */
  readonly functionIds: readonly string[];
  /**
   * Compiled upstreams by their definition: the next load reuses an unchanged
   * one, so its balancer state (round-robin position, connection counts) carries over.
   */
  readonly upstreamCache: ReadonlyMap<string, UpstreamEntry>;
  /** Every plugin the load knew, by name (their close() runs when the gateway stops). */
  readonly plugins: ReadonlyMap<string, PluginDef>;
}
