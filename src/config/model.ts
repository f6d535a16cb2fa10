/** The shape of gateway.yaml after schema validation (defaults applied). */
export type PluginMap = Record<string, Record<string, unknown>>;

export interface UpstreamDoc {
  id?: string | number;
  type: 'roundrobin' | 'chash' | 'least_conn';
  hash_on: 'vars' | 'header' | 'cookie' | 'consumer';
  key: string;
  scheme: 'http' | 'https';
  nodes: Record<string, number> | { host: string; port?: number; weight?: number }[];
  /** `read` has no schema default: unset, it is 6 s for responses and 60 s for an idle WebSocket tunnel. */
  timeout: { connect: number; send: number; read?: number };
  retries?: number;
  retry_non_idempotent: boolean;
  pass_host: 'pass' | 'node' | 'rewrite';
  upstream_host?: string;
  keepalive_pool: { size: number; idle_timeout: number };
  tls?: UpstreamTlsDoc;
  checks?: { passive?: { tcp_failures: number; http_failures: number; http_statuses: number[]; ejection_seconds: number }; active?: ActiveCheckDoc };
}

/** `checks.active` (APISIX's fields and defaults). */
export interface ActiveCheckDoc {
  type: 'http' | 'https' | 'tcp';
  timeout: number;
  concurrency: number;
  host?: string;
  port?: number;
  http_method: string;
  http_path: string;
  http_req_body: string;
  https_verify_certificate: boolean;
  req_headers?: string[];
  healthy: { interval: number; http_statuses: number[]; successes: number };
  unhealthy: { interval: number; http_statuses: number[]; http_failures: number; tcp_failures: number; timeouts: number };
}

/** `upstream.tls` (ca_file and client_cert_id are resolved into ca and client_cert/client_key at check). */
export interface UpstreamTlsDoc {
  verify?: boolean;
  sni?: string;
  ca?: string;
  ca_file?: string;
  client_cert?: string;
  client_key?: string;
  client_cert_id?: string | number;
}

export interface GatewayDoc {
  workers?: number | 'auto';
  listen: number | string | ListenerDoc[];
  admin?: { listen: number | string | { host?: string; port: number; tls: boolean }; enabled: boolean };
  ssls?: SslDoc[];
  trusted_proxies: string[];
  client_header_timeout: number;
  client_body_timeout: number;
  keepalive_timeout: number;
  max_buffered_response_bytes: number;
  plugin_paths: string[];
  serverless?: {
    enabled: boolean; threads?: number; concurrency: number; timeout_ms: number; max_queue: number;
    max_heap_mb: number; max_result_bytes: number; allow_fs_read: string[];
  };
  global_rules?: { id: string | number; plugins: PluginMap }[];
  plugin_metadata?: ({ id: string } & Record<string, unknown>)[];
  upstreams?: UpstreamDoc[];
  services?: { id: string | number; upstream_id?: string | number; upstream?: UpstreamDoc; plugins?: PluginMap }[];
  routes?: {
    id: string | number; uri?: string; uris?: string[]; methods?: string[]; host?: string; hosts?: string[];
    priority: number; service_id?: string | number; upstream_id?: string | number; upstream?: UpstreamDoc;
    vars?: unknown; remote_addr?: string; remote_addrs?: string[];
    enable_websocket: boolean; allow_encoded_slashes: boolean; plugins?: PluginMap;
  }[];
  consumers?: { username: string | number; plugins?: PluginMap }[];
}

/** One entry of a `listen` list. */
export interface ListenerDoc {
  host?: string; port: number; tls: boolean; http2: boolean; ssl_protocols?: ('TLSv1.2' | 'TLSv1.3')[]; ciphers?: string;
}

/** One `ssls` entry (APISIX's ssl resource, plus Turnpike's files and default). */
export interface SslDoc {
  id: string | number;
  type: 'server' | 'client';
  sni?: string; snis?: string[];
  cert?: string; key?: string; certs?: string[]; keys?: string[];
  cert_file?: string; key_file?: string; files?: { cert_file: string; key_file: string }[];
  client?: { ca: string; depth: number; skip_mtls_uri_regex?: string[] };
  status: 0 | 1;
  ssl_protocols?: ('TLSv1.1' | 'TLSv1.2' | 'TLSv1.3')[];
  default: boolean;
}
