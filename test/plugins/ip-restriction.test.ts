import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, request } from '../helpers/harness.ts';
import { pluginConfigErrors } from '../helpers/load.ts';
import { compileIpMatcher } from '../../src/plugin.ts';

type Case = { desc: string; path: string; headers?: Record<string, string>; want: { status: number; body?: unknown } };

const DENIED = { message: 'Your IP address is not allowed' };

function run(f: ReturnType<typeof fixture>, cases: Case[]): void {
  for (const c of cases) {
    it(c.desc, async () => {
      const before = f.up.seen.length;
      const res = await request(f.gw.port, c.path, { headers: c.headers });
      assert.equal(res.status, c.want.status);
      if (c.want.body) {
        assert.deepEqual(JSON.parse(res.body), c.want.body);
        assert.equal(res.headers['content-type'], 'application/json');
        assert.equal(f.up.seen.length, before, 'a refused request must not reach the upstream');
      } else assert.equal(f.up.seen.length, before + 1);
    });
  }
}

const routes = (port: number) => {
  const up = `upstream: { nodes: { "127.0.0.1:${port}": 1 } }`;
  return `routes:
  - { id: white, uri: /white, ${up}, plugins: { ip-restriction: { whitelist: ["127.0.0.1"] } } }
  - { id: white-net, uri: /white-net, ${up}, plugins: { ip-restriction: { whitelist: ["10.0.0.0/8", "fd00::/8"] } } }
  - { id: black, uri: /black, ${up}, plugins: { ip-restriction: { blacklist: ["127.0.0.0/24"], message: "Go away", response_code: 404 } } }
  - { id: black-net, uri: /black-net, ${up}, plugins: { ip-restriction: { blacklist: ["10.0.0.0/8", "2001:db8::/32"] } } }
`;
};

describe('ip-restriction, client is the peer (no trusted proxies)', () => {
  const f = fixture((port) => routes(port));
  run(f, [
    { desc: 'whitelisted address', path: '/white', want: { status: 200 } },
    { desc: 'not in the whitelist', path: '/white-net', want: { status: 403, body: DENIED } },
    { desc: 'a spoofed X-Forwarded-For from an untrusted peer does not get it in', path: '/white-net', headers: { 'x-forwarded-for': '10.1.2.3' }, want: { status: 403, body: DENIED } },
    { desc: 'a spoofed X-Real-IP does not either', path: '/white-net', headers: { 'x-real-ip': '10.1.2.3' }, want: { status: 403, body: DENIED } },
    { desc: 'blacklisted CIDR, custom message and 404', path: '/black', want: { status: 404, body: { message: 'Go away' } } },
    { desc: 'a spoofed X-Forwarded-For does not get a blacklisted peer out', path: '/black', headers: { 'x-forwarded-for': '8.8.8.8' }, want: { status: 404, body: { message: 'Go away' } } },
    { desc: 'not in the blacklist', path: '/black-net', want: { status: 200 } },
  ]);
});

describe('ip-restriction, client read through trusted_proxies', () => {
  const f = fixture((port) => `trusted_proxies: ["127.0.0.1"]\n${routes(port)}`);
  run(f, [
    { desc: 'IPv4 client in a whitelisted CIDR', path: '/white-net', headers: { 'x-forwarded-for': '10.200.0.1' }, want: { status: 200 } },
    { desc: 'IPv6 client in a whitelisted CIDR', path: '/white-net', headers: { 'x-forwarded-for': 'fd00::42' }, want: { status: 200 } },
    { desc: 'IPv6 client outside it', path: '/white-net', headers: { 'x-forwarded-for': 'fe80::1' }, want: { status: 403, body: DENIED } },
    { desc: 'IPv6 client in a blacklisted CIDR', path: '/black-net', headers: { 'x-forwarded-for': '2001:db8:1::7' }, want: { status: 403, body: DENIED } },
    { desc: 'IPv4 client in a blacklisted CIDR', path: '/black-net', headers: { 'x-forwarded-for': '10.9.9.9' }, want: { status: 403, body: DENIED } },
    { desc: 'client outside the blacklist', path: '/black-net', headers: { 'x-forwarded-for': '192.0.2.1' }, want: { status: 200 } },
  ]);
});

describe('ip-restriction matcher', () => {
  const m = compileIpMatcher(['10.0.0.0/8', '192.168.1.7', 'fd00::/8']);
  const cases: { ip: string; want: boolean | undefined }[] = [
    { ip: '10.255.0.1', want: true },
    { ip: '::ffff:10.0.0.1', want: true },
    { ip: '192.168.1.7', want: true },
    { ip: '192.168.1.8', want: false },
    { ip: 'fd12::1', want: true },
    { ip: 'fe80::1', want: false },
    { ip: '', want: undefined },
    { ip: 'not-an-ip', want: undefined },
    { ip: '10.0.0.1, 8.8.8.8', want: undefined },
  ];
  for (const c of cases) it(`"${c.ip}" → ${c.want}`, () => assert.equal(m.match(c.ip), c.want));
});

describe('ip-restriction config errors', () => {
  const cases: { desc: string; conf: unknown; want: string[] }[] = [
    { desc: 'neither list', conf: {}, want: ['routes[0].plugins.ip-restriction: plugin ip-restriction: give either whitelist or blacklist (one of them, not both)'] },
    { desc: 'both lists', conf: { whitelist: ['1.2.3.4'], blacklist: ['5.6.7.8'] }, want: ['routes[0].plugins.ip-restriction: plugin ip-restriction: give either whitelist or blacklist (one of them, not both)'] },
    { desc: 'not an address', conf: { whitelist: ['10.0.0.256'] }, want: ['routes[0].plugins.ip-restriction: plugin ip-restriction: invalid ip address: 10.0.0.256'] },
    { desc: 'prefix too long', conf: { blacklist: ['10.0.0.0/33'] }, want: ['routes[0].plugins.ip-restriction: plugin ip-restriction: invalid ip address: 10.0.0.0/33'] },
    { desc: 'IPv6 prefix too long', conf: { blacklist: ['fd00::/129'] }, want: ['routes[0].plugins.ip-restriction: plugin ip-restriction: invalid ip address: fd00::/129'] },
    { desc: 'a hostname', conf: { whitelist: ['example.com'] }, want: ['routes[0].plugins.ip-restriction: plugin ip-restriction: invalid ip address: example.com'] },
    { desc: 'empty list', conf: { whitelist: [] }, want: ['routes[0].plugins.ip-restriction.whitelist: plugin ip-restriction: must NOT have fewer than 1 items'] },
    { desc: 'response_code outside 403-404', conf: { whitelist: ['1.2.3.4'], response_code: 500 }, want: ['routes[0].plugins.ip-restriction.response_code: plugin ip-restriction: must be <= 404'] },
    { desc: 'empty message', conf: { whitelist: ['1.2.3.4'], message: '' }, want: ['routes[0].plugins.ip-restriction.message: plugin ip-restriction: must NOT have fewer than 1 characters'] },
  ];
  for (const c of cases) it(c.desc, async () => assert.deepEqual(await pluginConfigErrors('ip-restriction', c.conf), c.want));
});
