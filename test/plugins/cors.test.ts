import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, request } from '../helpers/harness.ts';
import { pluginConfigErrors } from '../helpers/load.ts';

const A = 'https://a.example.com';
const B = 'https://b.example.com';

/** The CORS-related headers of a response, to compare whole. */
function corsHeaders(h: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h)) if (k.startsWith('access-control-') || k === 'timing-allow-origin' || k === 'vary') out[k] = v;
  return out;
}

describe('cors', () => {
  const f = fixture((port) => {
    const up = `upstream: { nodes: { "127.0.0.1:${port}": 1 } }`;
    return `routes:
  - { id: star, uri: /star, ${up}, plugins: { cors: {} } }
  - id: list
    uri: /list
    ${up}
    plugins:
      cors: { allow_origins: "${A},${B}", allow_methods: "GET,POST", allow_headers: "X-Custom", expose_headers: "X-Up", max_age: 600 }
  - { id: single, uri: /single, ${up}, plugins: { cors: { allow_origins: "${A}" } } }
  - id: echo
    uri: /echo
    ${up}
    plugins:
      cors: { allow_origins: "**", allow_methods: "**", allow_headers: "**", allow_credential: true }
  - id: regex
    uri: /regex
    ${up}
    plugins:
      cors: { allow_origins_by_regex: ['https://[a-z0-9-]+\\.example\\.com'], allow_methods: "GET", allow_headers: "X-A", allow_credential: true }
  - id: timing
    uri: /timing
    ${up}
    plugins:
      cors: { allow_origins: "${A}", timing_allow_origins: "${B}" }
  - { id: vary, uri: /vary, ${up}, plugins: { cors: { allow_origins: "${A}" } } }
`;
  }, { handler: (req, res) => {
    if (req.url !== '/vary') return false;
    res.writeHead(200, { vary: 'Accept-Encoding', 'access-control-allow-origin': 'https://upstream.example' });
    res.end('v');
    return true;
  } });

  const STAR = { 'access-control-allow-origin': '*', 'access-control-allow-methods': '*', 'access-control-allow-headers': '*', 'access-control-max-age': '5' };
  const LIST_A = { vary: 'Origin', 'access-control-allow-origin': A, 'access-control-allow-methods': 'GET,POST', 'access-control-allow-headers': 'X-Custom', 'access-control-expose-headers': 'X-Up', 'access-control-max-age': '600' };
  const ALL = 'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE';
  const preflight = (origin: string, extra: Record<string, string> = {}) => ({ origin, 'access-control-request-method': 'POST', ...extra });

  const cases: { desc: string; path: string; method?: string; headers?: Record<string, string>; want: { status: number; cors: Record<string, unknown>; upstream: boolean } }[] = [
    { desc: '* answers any origin with *', path: '/star', headers: { origin: A }, want: { status: 200, cors: STAR, upstream: true } },
    { desc: '* sets the headers even without an Origin (as APISIX)', path: '/star', want: { status: 200, cors: STAR, upstream: true } },
    { desc: 'preflight answered at the gateway', path: '/star', method: 'OPTIONS', headers: preflight(A), want: { status: 200, cors: STAR, upstream: false } },
    { desc: 'OPTIONS that is not a preflight reaches the upstream', path: '/star', method: 'OPTIONS', headers: { origin: A }, want: { status: 200, cors: STAR, upstream: true } },
    { desc: 'listed origin echoed, with Vary', path: '/list', headers: { origin: A }, want: { status: 200, cors: LIST_A, upstream: true } },
    { desc: 'second listed origin', path: '/list', headers: { origin: B }, want: { status: 200, cors: { ...LIST_A, 'access-control-allow-origin': B }, upstream: true } },
    { desc: 'unlisted origin: no CORS header, Vary still', path: '/list', headers: { origin: 'https://c.example.com' }, want: { status: 200, cors: { vary: 'Origin' }, upstream: true } },
    { desc: 'a listed origin as a prefix of another is not it', path: '/list', headers: { origin: `${A}.attacker` }, want: { status: 200, cors: { vary: 'Origin' }, upstream: true } },
    { desc: 'preflight from an unlisted origin: 200, no CORS header, no upstream', path: '/list', method: 'OPTIONS', headers: preflight('https://evil.test'), want: { status: 200, cors: { vary: 'Origin' }, upstream: false } },
    { desc: 'preflight from a listed origin', path: '/list', method: 'OPTIONS', headers: preflight(A), want: { status: 200, cors: LIST_A, upstream: false } },
    { desc: 'single origin: not sent back to another origin (APISIX does)', path: '/single', headers: { origin: B }, want: { status: 200, cors: { vary: 'Origin' }, upstream: true } },
    { desc: 'single origin: matched', path: '/single', headers: { origin: A }, want: { status: 200, cors: { vary: 'Origin', 'access-control-allow-origin': A, 'access-control-allow-methods': '*', 'access-control-allow-headers': '*', 'access-control-max-age': '5' }, upstream: true } },
    { desc: '** echoes the origin, every method, the requested headers, credentials', path: '/echo', method: 'OPTIONS', headers: preflight('https://any.test', { 'access-control-request-headers': 'X-One, X-Two' }),
      want: { status: 200, cors: { vary: 'Origin', 'access-control-allow-origin': 'https://any.test', 'access-control-allow-methods': ALL, 'access-control-allow-headers': 'X-One, X-Two', 'access-control-max-age': '5', 'access-control-allow-credentials': 'true' }, upstream: false } },
    { desc: 'regex: a subdomain', path: '/regex', headers: { origin: 'https://app.example.com' },
      want: { status: 200, cors: { vary: 'Origin', 'access-control-allow-origin': 'https://app.example.com', 'access-control-allow-methods': 'GET', 'access-control-allow-headers': 'X-A', 'access-control-max-age': '5', 'access-control-allow-credentials': 'true' }, upstream: true } },
    { desc: 'regex: a suffix attack does not match (whole-string match)', path: '/regex', headers: { origin: 'https://evil.example.com.attacker' }, want: { status: 200, cors: { vary: 'Origin' }, upstream: true } },
    { desc: 'regex: a prefix attack does not match', path: '/regex', headers: { origin: 'https://attacker.test/https://app.example.com' }, want: { status: 200, cors: { vary: 'Origin' }, upstream: true } },
    { desc: 'regex: the bare domain is not a subdomain', path: '/regex', headers: { origin: 'https://example.com' }, want: { status: 200, cors: { vary: 'Origin' }, upstream: true } },
    { desc: 'regex: no Origin, no CORS header', path: '/regex', want: { status: 200, cors: { vary: 'Origin' }, upstream: true } },
    { desc: 'Timing-Allow-Origin for its own origins', path: '/timing', headers: { origin: B }, want: { status: 200, cors: { vary: 'Origin', 'timing-allow-origin': B }, upstream: true } },
    { desc: "upstream's Vary kept and Origin added; its ACAO replaced", path: '/vary', headers: { origin: A },
      want: { status: 200, cors: { vary: 'Accept-Encoding, Origin', 'access-control-allow-origin': A, 'access-control-allow-methods': '*', 'access-control-allow-headers': '*', 'access-control-max-age': '5' }, upstream: true } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const before = f.up.seen.length;
      const res = await request(f.gw.port, c.path, { method: c.method, headers: c.headers });
      assert.equal(res.status, c.want.status);
      assert.deepEqual(corsHeaders(res.headers), c.want.cors);
      assert.equal(f.up.seen.length - before, c.want.upstream ? 1 : 0, 'upstream calls');
      if (!c.want.upstream) {
        assert.equal(res.body, '');
        assert.equal(res.headers['content-length'], '0');
      }
    });
  }
});

describe('cors config errors', () => {
  const cases: { desc: string; conf: unknown; want: string[] }[] = [
    { desc: 'credentials with the default * origin', conf: { allow_credential: true, allow_methods: 'GET', allow_headers: 'X' },
      want: ["routes[0].plugins.cors: plugin cors: allow_origins cannot be '*' when allow_credential is true (browsers refuse it; list the values, or use '**' knowingly)"] },
    { desc: 'credentials with * methods', conf: { allow_credential: true, allow_origins: 'https://a.test' },
      want: ["routes[0].plugins.cors: plugin cors: allow_methods cannot be '*' when allow_credential is true (browsers refuse it; list the values, or use '**' knowingly)"] },
    { desc: 'credentials with * expose_headers', conf: { allow_credential: true, allow_origins: 'https://a.test', allow_methods: 'GET', allow_headers: 'X', expose_headers: '*' },
      want: ["routes[0].plugins.cors: plugin cors: expose_headers cannot be '*' when allow_credential is true (browsers refuse it; list the values, or use '**' knowingly)"] },
    { desc: 'origin without a scheme', conf: { allow_origins: 'a.example.com' }, want: ['routes[0].plugins.cors.allow_origins: plugin cors: must match pattern ^(\\*|\\*\\*|null|\\w+://[^,]+(,\\w+://[^,]+)*)$'] },
    { desc: 'a broken regex', conf: { allow_origins_by_regex: ['https://(a'] },
      want: ['routes[0].plugins.cors: plugin cors: allow_origins_by_regex[0] is not a valid regular expression: Invalid regular expression: /https://(a/: Unterminated group'] },
    { desc: 'empty regex list', conf: { allow_origins_by_regex: [] }, want: ['routes[0].plugins.cors.allow_origins_by_regex: plugin cors: must NOT have fewer than 1 items'] },
    { desc: 'max_age not an integer', conf: { max_age: 'long' }, want: ['routes[0].plugins.cors.max_age: plugin cors: must be of type integer'] },
    { desc: 'plugin metadata is not a Turnpike feature', conf: { allow_origins_by_metadata: ['EXAMPLE'] }, want: ['routes[0].plugins.cors.allow_origins_by_metadata: plugin cors: unknown field "allow_origins_by_metadata"'] },
    { desc: 'credentials with ** and regex are fine', conf: { allow_credential: true, allow_origins_by_regex: ['https://a\\.test'], allow_methods: 'GET', allow_headers: '**' }, want: [] },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      assert.deepEqual(await pluginConfigErrors('cors', c.conf), c.want);
    });
  }
});
