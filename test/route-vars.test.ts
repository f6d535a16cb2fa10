/** Route `vars` (APISIX's expressions) and `remote_addrs`: what they take, what they refuse at load, and routing by them over real sockets. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileExpr, ExprError } from '../src/expr.ts';
import { compileRegex, foldCase } from '../src/regex.ts';
import { RequestCtx, RequestData } from '../src/runtime/context.ts';
import { ROUTE_VARIABLES } from '../src/vars.ts';
import type { IncomingMessage } from 'node:http';
import type { RouteEntry, Snapshot } from '../src/snapshot.ts';
import { fixture, request } from './helpers/harness.ts';
import { loadIssues } from './helpers/load.ts';

/** A request's context as the router's filters see it: path, query, headers and client address. */
function ctxOf(path: string, headers: Record<string, string | string[]> = {}, ip = '10.1.2.3'): RequestCtx {
  const [p, q = ''] = path.split('?');
  const raw = { headers, socket: {}, url: path } as unknown as IncomingMessage;
  const snap = { trustedProxies: () => false } as unknown as Snapshot;
  return new RequestCtx(snap, { id: 'r' } as RouteEntry, raw, new RequestData('GET', p, q ? `?${q}` : '', headers, ip));
}

describe('vars expressions', () => {
  const cases: { desc: string; vars: unknown; path: string; headers?: Record<string, string | string[]>; ip?: string; want: boolean }[] = [
    { desc: 'empty list holds', vars: [], path: '/', want: true },
    { desc: '== on a header', vars: [['http_x_version', '==', 'v2']], path: '/', headers: { 'x-version': 'v2' }, want: true },
    { desc: '== is exact', vars: [['http_x_version', '==', 'v2']], path: '/', headers: { 'x-version': 'V2' }, want: false },
    { desc: '== on an unset variable fails', vars: [['http_x_version', '==', 'v2']], path: '/', want: false },
    { desc: '~= on an unset variable holds', vars: [['http_x_version', '~=', 'v2']], path: '/', want: true },
    { desc: '== with a number compares numbers', vars: [['arg_n', '==', 5]], path: '/?n=5.0', want: true },
    { desc: '== with a number and text fails', vars: [['arg_n', '==', 5]], path: '/?n=five', want: false },
    { desc: '~= with a number and text holds', vars: [['arg_n', '~=', 5]], path: '/?n=five', want: true },
    { desc: '> on numbers', vars: [['arg_age', '>', 18]], path: '/?age=19', want: true },
    { desc: '> is numeric, not text order', vars: [['arg_age', '>', 18]], path: '/?age=9', want: false },
    { desc: '>= at the bound', vars: [['arg_age', '>=', '18']], path: '/?age=18', want: true },
    { desc: '< on text that is no number fails', vars: [['arg_age', '<', 18]], path: '/?age=x', want: false },
    { desc: '<= on an unset variable fails', vars: [['arg_age', '<=', 18]], path: '/', want: false },
    { desc: '~~ searches anywhere', vars: [['arg_address', '~~', 'China.*']], path: '/?address=in%20China%20now', want: true },
    { desc: '~~ is case-sensitive', vars: [['http_user_agent', '~~', 'android']], path: '/', headers: { 'user-agent': 'Mozilla ANDROID' }, want: false },
    { desc: '~* ignores case', vars: [['http_user_agent', '~*', 'android']], path: '/', headers: { 'user-agent': 'Mozilla ANDROID' }, want: true },
    { desc: '~* with a class ignores case', vars: [['uri', '~*', '^/API/v[0-9]+/']], path: '/api/V2/x', want: true },
    { desc: 'in a list', vars: [['arg_c', 'in', ['red', 'blue']]], path: '/?c=blue', want: true },
    { desc: 'not in a list', vars: [['arg_c', 'in', ['red', 'blue']]], path: '/?c=green', want: false },
    { desc: 'has among repeated headers', vars: [['http_x_tag', 'has', 'b']], path: '/', headers: { 'x-tag': ['a', 'b'] }, want: true },
    { desc: 'has among repeated arguments', vars: [['arg_t', 'has', 'b']], path: '/?t=a&t=c', want: false },
    { desc: 'ipmatch a CIDR', vars: [['remote_addr', 'ipmatch', ['192.168.0.0/16', '10.0.0.0/8']]], path: '/', want: true },
    { desc: 'ipmatch one address', vars: [['remote_addr', 'ipmatch', '10.9.9.9']], path: '/', want: false },
    { desc: '"!" negates', vars: [['arg_name', '!', '==', 'bot']], path: '/?name=bot', want: false },
    { desc: '"!" negates an unset variable into true', vars: [['arg_name', '!', '==', 'bot']], path: '/', want: true },
    { desc: 'the old two-item form means ==', vars: [['arg_k', 'v']], path: '/?k=v', want: true },
    { desc: 'operators in any case', vars: [['arg_c', 'IN', ['x']]], path: '/?c=x', want: true },
    { desc: 'all of a list must hold', vars: [['arg_a', '==', '1'], ['arg_b', '==', '2']], path: '/?a=1&b=3', want: false },
    { desc: 'OR: one is enough', vars: ['OR', ['arg_a', '==', '1'], ['arg_b', '==', '2']], path: '/?a=0&b=2', want: true },
    { desc: '!AND', vars: ['!AND', ['arg_a', '==', '1'], ['arg_b', '==', '2']], path: '/?a=1&b=2', want: false },
    { desc: '!OR', vars: ['!OR', ['arg_a', '==', '1'], ['arg_b', '==', '2']], path: '/?a=0&b=0', want: true },
    { desc: 'nested logic', vars: [['OR', ['arg_a', '==', '1'], ['AND', ['arg_b', '==', '2'], ['arg_c', '==', '3']]]], path: '/?b=2&c=3', want: true },
    { desc: 'cookie', vars: [['cookie_session', '==', 'abc']], path: '/', headers: { cookie: 'x=1; session=abc' }, want: true },
    { desc: 'host without port, lower case', vars: [['host', '==', 'api.example.com']], path: '/', headers: { host: 'API.example.com:8080' }, want: true },
    { desc: 'a hostile regex runs in linear time', vars: [['arg_x', '~~', '^(a+)+$']], path: `/?x=${'a'.repeat(5000)}!`, want: false },
  ];
  for (const c of cases) {
    it(c.desc, () => assert.equal(compileExpr(c.vars, ROUTE_VARIABLES)(ctxOf(c.path, c.headers, c.ip)), c.want));
  }

  const refused: { desc: string; vars: unknown; want: [(string | number)[], string] }[] = [
    { desc: 'not a list', vars: 'arg_a == 1', want: [[], 'must be a list of expressions, e.g. [["arg_name", "==", "json"]]'] },
    { desc: 'one expression not wrapped', vars: ['arg_a', '==', '1'], want: [[], 'rule should be wrapped inside brackets: [["arg_name", "==", "json"]], not ["arg_name", "==", "json"]'] },
    { desc: 'an unknown operator', vars: [['arg_a', '=~', '1']], want: [[0, 1], "invalid operator '=~' (known: == ~= > >= < <= ~~ ~* in has ipmatch)"] },
    { desc: 'four items without "!"', vars: [['arg_a', 'not', '==', '1']], want: [[0, 1], `bad 'not' expression: the second of four items must be "!"`] },
    { desc: 'a variable known only after routing', vars: [['consumer_name', '==', 'x']], want: [[0, 0], `"consumer_name" is not a variable Turnpike knows here (known: ${ROUTE_VARIABLES.known})`] },
    { desc: 'a response variable', vars: [['status', '==', 200]], want: [[0, 0], `"status" is not a variable Turnpike knows here (known: ${ROUTE_VARIABLES.known})`] },
    { desc: 'a number compare with text', vars: [['arg_a', '>', 'ten']], want: [[0, 2], '">" compares numbers: "ten" is not one'] },
    { desc: 'a regex that backtracks', vars: [['arg_a', '~~', '(a)\\1']], want: [[0, 2], 'the pattern: "(a)\\\\1" cannot run in linear time (backreferences, lookaround and repetition counts in the hundreds are not supported: a pattern that backtracks lets one request stall the gateway)'] },
    { desc: 'in without a list', vars: [['arg_a', 'in', 'x']], want: [[0, 2], '"in" takes a list of values'] },
    { desc: 'has on a single-valued variable', vars: [['uri', 'has', 'x']], want: [[0, 0], '"has" looks for a value among a repeated header\'s or query argument\'s values: "uri" is neither (http_<name> or arg_<name>)'] },
    { desc: 'ipmatch with no address', vars: [['remote_addr', 'ipmatch', ['10.0.0.0/33']]], want: [[0, 2], 'invalid ip address: 10.0.0.0/33'] },
    { desc: 'OR with one branch', vars: [['OR', ['arg_a', '==', '1']]], want: [[0], 'rule too short: OR needs at least two expressions'] },
    { desc: 'has without a value (it would match the text "undefined")', vars: [['http_x', 'has']], want: [[0, 2], '"has" takes one value (text or a number)'] },
    { desc: 'logic nested past 16 levels (a hostile file would overflow the stack)', vars: Array.from({ length: 5000 }).reduce<unknown[]>((inner) => [inner], [['arg_a', '==', '1']]), want: [Array(17).fill(0), 'nested deeper than 16 levels'] },
    { desc: 'a nested item that is not a list', vars: [['AND', ['arg_a', '==', '1'], 'x']], want: [[0, 2], 'must be an expression list, e.g. ["arg_name", "==", "json"]'] },
  ];
  for (const c of refused) {
    it(`refuses ${c.desc}`, () => {
      assert.throws(() => compileExpr(c.vars, ROUTE_VARIABLES), (err: unknown) => {
        assert.ok(err instanceof ExprError);
        assert.deepEqual([err.at, err.message], c.want);
        return true;
      });
    });
  }
});

describe('case-insensitive patterns on the linear engine', () => {
  const cases: { pattern: string; want: string; yes: string[]; no: string[] }[] = [
    { pattern: '^/api/v[0-9]+', want: '^/[aA][pP][iI]/[vV][0-9]+', yes: ['/API/V2'], no: ['/apx/v2'] },
    { pattern: '^[a-c_]+$', want: '^[a-c_A-C]+$', yes: ['aBc_'], no: ['abd'] },
    { pattern: '^[^a-c]$', want: '^[^a-cA-C]$', yes: ['D'], no: ['A', 'a'] },
    { pattern: '(?<word>[a-]x)\\w', want: '(?<word>[a\\-A][xX])\\w', yes: ['-X1', 'AXz'], no: ['bx1'] },
    { pattern: '\\x41b{2}', want: '\\x41[bB]{2}', yes: ['ABb'], no: ['abb'] },
  ];
  for (const c of cases) {
    it(c.pattern, () => {
      assert.equal(foldCase(c.pattern), c.want);
      const re = compileRegex(c.pattern, 'test', 'i');
      for (const s of c.yes) assert.ok(re.test(s), s);
      for (const s of c.no) assert.ok(!re.test(s), s);
    });
  }
});

describe('route vars and remote_addrs in gateway.yaml', () => {
  const UP = '    upstream: { nodes: { "127.0.0.1:80": 1 } }\n';
  const cases: { desc: string; conf: string; want: string[] }[] = [
    { desc: 'vars, remote_addr and remote_addrs load', conf: `routes:\n  - id: a\n    uri: /a\n    vars: [["http_x", "==", "1"], ["OR", ["arg_a", "~*", "^y"], ["arg_b", "in", [1, 2]]]]\n    remote_addrs: ["10.0.0.0/8", "::1"]\n${UP}  - id: b\n    uri: /b\n    remote_addr: 127.0.0.1\n${UP}`, want: [] },
    { desc: 'the first mistake of vars and that of remote_addrs, each at its place', conf: `routes:\n  - id: a\n    uri: /a\n    vars: [["arg_a", "!", "~~", "[bad"], ["arg_y", "=~", "1"]]\n    remote_addrs: ["10.0.0.0/8", "nope"]\n${UP}`,
      want: [
        'gateway.yaml:4:33: routes[0].vars[0][3]: the pattern is not a valid regular expression: Invalid regular expression: /[bad/: Unterminated character class',
        'gateway.yaml:5:19: routes[0].remote_addrs: invalid ip address: nope',
      ] },
    { desc: 'one of remote_addr and remote_addrs', conf: `routes:\n  - id: a\n    uri: /a\n    remote_addr: 10.0.0.1\n    remote_addrs: [10.0.0.2]\n${UP}`,
      want: ['gateway.yaml:5:5: routes[0].remote_addrs: give either remote_addr or remote_addrs, not both'] },
    { desc: 'a route variable known only later', conf: `routes:\n  - id: a\n    uri: /a\n    vars: [["route_id", "==", "a"]]\n${UP}`,
      want: [`gateway.yaml:4:13: routes[0].vars[0][0]: "route_id" is not a variable Turnpike knows here (known: ${ROUTE_VARIABLES.known})`] },
  ];
  for (const c of cases) it(c.desc, async () => assert.deepEqual(await loadIssues(c.conf), c.want));
});

describe('routing by vars and remote_addrs', () => {
  const f = fixture((port) => `
upstreams:
  - { id: up, nodes: { "127.0.0.1:${port}": 1 } }
routes:
  - { id: canary, uri: /app/*, priority: 10, vars: [["http_x_canary", "==", "1"]], upstream_id: up,
      plugins: { proxy-rewrite: { headers: { set: { x-route: canary } } } } }
  - { id: mobile, uri: /app/*, priority: 5, vars: [["http_user_agent", "~*", "android|iphone"]], upstream_id: up,
      plugins: { proxy-rewrite: { headers: { set: { x-route: mobile } } } } }
  - { id: stable, uri: /app/*, upstream_id: up, plugins: { proxy-rewrite: { headers: { set: { x-route: stable } } } } }
  - { id: only-internal, uri: /admin/*, remote_addrs: ["10.0.0.0/8"], upstream_id: up }
  - { id: adults, uri: /adults, vars: [["arg_age", ">=", 18]], upstream_id: up }
  - { id: fallback, uri: /*, methods: [GET], upstream_id: up, plugins: { proxy-rewrite: { headers: { set: { x-route: fallback } } } } }
`);
  const routed = (): string | undefined => f.up.seen.at(-1)?.headers['x-route'] as string | undefined;

  const cases: { desc: string; path: string; headers?: Record<string, string>; status: number; route?: string }[] = [
    { desc: 'a header picks the canary', path: '/app/x', headers: { 'x-canary': '1' }, status: 200, route: 'canary' },
    { desc: 'a user agent in any case picks mobile', path: '/app/x', headers: { 'user-agent': 'Mozilla (iPhone)' }, status: 200, route: 'mobile' },
    { desc: 'the higher priority wins when both hold', path: '/app/x', headers: { 'x-canary': '1', 'user-agent': 'android' }, status: 200, route: 'canary' },
    { desc: 'neither: the route without vars', path: '/app/x', status: 200, route: 'stable' },
    { desc: 'an address outside remote_addrs goes on to the next route that matches', path: '/admin/users', status: 200, route: 'fallback' },
    { desc: 'vars that fail go on to the shorter prefix', path: '/adults?age=12', status: 200, route: 'fallback' },
    { desc: 'vars that hold take the route', path: '/adults?age=30', status: 200, route: undefined },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const before = f.up.seen.length;
      const res = await request(f.gw.port, c.path, { headers: c.headers });
      assert.equal(res.status, c.status);
      assert.equal(f.up.seen.length, before + 1);
      assert.equal(routed(), c.route);
    });
  }

  it('a request no route takes after its vars is 404, not the route it failed', async () => {
    const before = f.up.seen.length;
    const res = await request(f.gw.port, '/adults?age=12', { method: 'POST' });
    assert.equal(res.status, 404);
    assert.equal(f.up.seen.length, before);
  });
});
