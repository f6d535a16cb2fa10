import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, request } from '../helpers/harness.ts';
import { pluginConfigErrors } from '../helpers/load.ts';

type Case = { desc: string; path: string; method?: string; headers?: Record<string, string>; want: { status: number; location?: string } };

function run(f: ReturnType<typeof fixture>, cases: Case[]): void {
  for (const c of cases) {
    it(c.desc, async () => {
      const before = f.up.seen.length;
      const res = await request(f.gw.port, c.path, { method: c.method, headers: { host: 'Example.test:9080', ...c.headers } });
      assert.equal(res.status, c.want.status);
      assert.equal(res.headers.location, c.want.location);
      if (c.want.location !== undefined) {
        assert.equal(res.body, '');
        assert.equal(f.up.seen.length, before, 'a redirect must not reach the upstream');
      } else assert.equal(f.up.seen.length, before + 1);
    });
  }
}

const routes = (port: number) => {
  const up = `upstream: { nodes: { "127.0.0.1:${port}": 1 } }`;
  return `routes:
  - { id: https, uri: /https, ${up}, plugins: { redirect: { http_to_https: true } } }
  - { id: tmpl, uri: /tmpl, ${up}, plugins: { redirect: { uri: '/new$uri?from=$arg_from&tag=\${http_x_tag}&c=$cookie_sid', ret_code: 301 } } }
  - { id: tmpl2, uri: /tmpl2, ${up}, plugins: { redirect: { uri: '$scheme://$host$request_uri#\\$literal' } } }
  - { id: regex, uri: /regex/*, ${up}, plugins: { redirect: { regex_uri: ['^/regex/(\\w+)/(.*)', '/r/$2/$1'], append_query_string: true } } }
  - { id: enc, uri: /enc, ${up}, plugins: { redirect: { uri: '/a b/ü%?x=y z', encode_uri: true } } }
  - { id: plain, uri: /plain, ${up}, plugins: { redirect: { uri: '/a b/ü' } } }
`;
};

describe('redirect', () => {
  const f = fixture((port) => routes(port));
  run(f, [
    { desc: 'http_to_https: GET gets 301 to https://$host$request_uri', path: '/https?a=1&b=%20', want: { status: 301, location: 'https://example.test/https?a=1&b=%20' } },
    { desc: 'http_to_https: HEAD gets 301', path: '/https', method: 'HEAD', want: { status: 301, location: 'https://example.test/https' } },
    { desc: 'http_to_https: POST gets 308 (method and body kept)', path: '/https', method: 'POST', want: { status: 308, location: 'https://example.test/https' } },
    { desc: 'http_to_https: X-Forwarded-Proto from an untrusted client is not believed', path: '/https', headers: { 'x-forwarded-proto': 'https' }, want: { status: 301, location: 'https://example.test/https' } },
    { desc: 'uri template: $uri, $arg_, ${http_}, $cookie_', path: '/tmpl?from=x%2Fy&z=1', headers: { 'x-tag': 'blue', cookie: 'a=1; sid=s-42' },
      want: { status: 301, location: '/new/tmpl?from=x%2Fy&tag=blue&c=s-42' } },
    { desc: 'uri template: absent values are empty', path: '/tmpl', want: { status: 301, location: '/new/tmpl?from=&tag=&c=' } },
    { desc: 'uri template: non-ASCII from a header is percent-encoded, not a broken header', path: '/tmpl', headers: { 'x-tag': 'é' }, want: { status: 301, location: '/new/tmpl?from=&tag=%C3%A9&c=' } },
    { desc: 'uri template: $scheme, $host, $request_uri, \\$ (default 302)', path: '/tmpl2?q=1', want: { status: 302, location: 'http://example.test/tmpl2?q=1#$literal' } },
    { desc: 'regex_uri with captures and the query appended', path: '/regex/a/b/c?q=1', want: { status: 302, location: '/r/b/c/a?q=1' } },
    { desc: 'regex_uri that does not match: on to the upstream', path: '/regex/', want: { status: 200 } },
    { desc: 'encode_uri: the path encoded as nginx does, the query made header-safe', path: '/enc', want: { status: 302, location: '/a%20b/%C3%BC%25?x=y%20z' } },
    { desc: 'without encode_uri: only what a header cannot carry is encoded', path: '/plain', want: { status: 302, location: '/a%20b/%C3%BC' } },
  ]);
});

describe('redirect behind a trusted proxy', () => {
  const f = fixture((port) => `trusted_proxies: ["127.0.0.1"]\n${routes(port)}`);
  run(f, [
    { desc: 'X-Forwarded-Proto: https from a trusted proxy: no redirect', path: '/https', headers: { 'x-forwarded-proto': 'https' }, want: { status: 200 } },
    { desc: 'X-Forwarded-Proto: http from a trusted proxy: redirect', path: '/https', headers: { 'x-forwarded-proto': 'http' }, want: { status: 301, location: 'https://example.test/https' } },
    { desc: '$scheme follows the trusted proxy', path: '/tmpl2', headers: { 'x-forwarded-proto': 'https' }, want: { status: 302, location: 'https://example.test/tmpl2#$literal' } },
  ]);
});

describe('redirect config errors', () => {
  const at = 'routes[0].plugins.redirect';
  const cases: { desc: string; conf: unknown; want: string[] }[] = [
    { desc: 'nothing to do', conf: {}, want: [`${at}: plugin redirect: give exactly one of uri, regex_uri, http_to_https`] },
    { desc: 'two targets', conf: { uri: '/a', http_to_https: true }, want: [`${at}: plugin redirect: give exactly one of uri, regex_uri, http_to_https (not uri and http_to_https)`] },
    { desc: 'http_to_https with append_query_string', conf: { http_to_https: true, append_query_string: true },
      want: [`${at}: plugin redirect: only one of \`http_to_https\` and \`append_query_string\` can be configured`] },
    { desc: 'a broken regex', conf: { regex_uri: ['^/(a', '/b'] }, want: [`${at}: plugin redirect: regex_uri[0] is not a valid regular expression: Invalid regular expression: /^/(a/: Unterminated group`] },
    { desc: 'a regex that needs backtracking', conf: { regex_uri: ['^/(a+)\\1$', '/b'] }, want: [`${at}: plugin redirect: regex_uri[0]: "^/(a+)\\\\1$" cannot run in linear time (backreferences, lookaround and repetition counts in the hundreds are not supported: a pattern that backtracks lets one request stall the gateway)`] },
    { desc: 'regex_uri with one item', conf: { regex_uri: ['^/a'] }, want: [`${at}.regex_uri: plugin redirect: must NOT have fewer than 2 items`] },
    { desc: 'an unknown variable', conf: { uri: '/x/$upstream_addr' },
      want: [`${at}: plugin redirect: uri: unknown variable $upstream_addr in "/x/$upstream_addr" (known: $uri, $request_uri, $host, $scheme, $args, $query_string, $is_args, $request_method, $remote_addr, $arg_NAME, $http_NAME, $cookie_NAME)`] },
    { desc: 'uri too short', conf: { uri: '/' }, want: [`${at}.uri: plugin redirect: must NOT have fewer than 2 characters`] },
    { desc: 'ret_code below 200', conf: { uri: '/ab', ret_code: 101 }, want: [`${at}.ret_code: plugin redirect: must be >= 200`] },
  ];
  for (const c of cases) it(c.desc, async () => assert.deepEqual(await pluginConfigErrors('redirect', c.conf), c.want));
});
