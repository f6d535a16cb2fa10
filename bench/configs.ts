/** gateway.yaml texts for the benchmark scenarios. */

const head = (port: number, admin: number) => `listen: 127.0.0.1:${port}\nadmin:\n  listen: 127.0.0.1:${admin}\n`;

const JWT_SECRET = 'bench-secret-of-at-least-32-bytes-long';

/** A token for the prometheusJwt scenario's consumer (HS256, valid for a day). */
export async function benchJwt(): Promise<string> {
  const { SignJWT } = await import('jose');
  return new SignJWT({ key: 'bench-key' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1d').sign(new TextEncoder().encode(JWT_SECRET));
}

export const scenarios = {
  plain: (up: number) => `routes:\n  - { id: r, uri: /bench, upstream: { nodes: { "127.0.0.1:${up}": 1 } } }\n`,
  big: (up: number) => `routes:\n  - { id: r, uri: /big, upstream: { nodes: { "127.0.0.1:${up}": 1 } } }\n`,
  preFunction: (up: number) => `routes:
  - id: r
    uri: /bench
    upstream: { nodes: { "127.0.0.1:${up}": 1 } }
    plugins:
      serverless-pre-function:
        functions:
          - "return (conf, ctx) => { ctx.request.headers['x-fn'] = '1' }"
`,
  chain: (up: number) => `routes:
  - id: r
    uri: /bench
    upstream: { nodes: { "127.0.0.1:${up}": 1 } }
    plugins:
      request-id: {}
      key-auth: {}
      proxy-rewrite: { uri: /rewritten, headers: { set: { x-bench: "1" } } }
      response-rewrite: { headers: { set: { x-served-by: turnpike } } }
consumers:
  - username: bench
    plugins:
      key-auth: { key: bench-key }
`,
  /** The traffic plugins a public API usually carries: CORS, a local rate limit never reached, an IP allow-list. */
  traffic: (up: number) => `routes:
  - id: r
    uri: /bench
    upstream: { nodes: { "127.0.0.1:${up}": 1 } }
    plugins:
      cors: { allow_origins: "https://app.example.com,https://admin.example.com", allow_methods: "GET,POST" }
      limit-count: { count: 1000000000, time_window: 60, key: remote_addr }
      ip-restriction: { whitelist: ["127.0.0.0/8", "10.0.0.0/8"] }
`,
  /** One route counted by the prometheus plugin (bench/instructions.ts: SCENARIO=prometheus). */
  prometheus: (up: number) => `routes:\n  - { id: r, uri: /bench, upstream: { nodes: { "127.0.0.1:${up}": 1 } }, plugins: { prometheus: {} } }\n`,
  /** prometheus + jwt-auth: an HS256 consumer, the token (benchJwt) in the Authorization header. */
  prometheusJwt: (up: number) => `routes:
  - id: r
    uri: /bench
    upstream: { nodes: { "127.0.0.1:${up}": 1 } }
    plugins:
      prometheus: {}
      jwt-auth: {}
consumers:
  - username: bench
    plugins:
      jwt-auth: { key: bench-key, secret: ${JWT_SECRET}, algorithm: HS256 }
`,
  /** limit-count alone, never reached: `local` counts in the host's shared table, `redis` in one round trip per request. */
  limitCount: (up: number, redisPort?: number) => `routes:
  - id: r
    uri: /bench
    upstream: { nodes: { "127.0.0.1:${up}": 1 } }
    plugins:
      limit-count: { count: 1000000000, time_window: 60, key: remote_addr${redisPort ? `, policy: redis, redis_host: 127.0.0.1, redis_port: ${redisPort}` : ''} }
`,
  /** `count` routes, each with its own path; `probe` answers a mocked body (for reload timing). */
  many: (up: number, count: number, probe = 'p0') => {
    const lines = ['routes:', `  - { id: probe, uri: /probe, plugins: { mocking: { response_example: "${probe}" } } }`];
    for (let i = 0; i < count; i++) lines.push(`  - { id: r${i}, uri: "/svc${i}/items/:id", upstream_id: u }`);
    return `upstreams:\n  - { id: u, nodes: { "127.0.0.1:${up}": 1 } }\n${lines.filter(Boolean).join('\n')}\n`;
  },
};

/** A full file: listeners first, then the scenario's resources. */
export function gatewayYaml(port: number, admin: number, body: string): string {
  return head(port, admin) + body;
}
