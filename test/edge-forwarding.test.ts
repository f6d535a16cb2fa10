/** The edge: whom to trust. trusted_proxies as CIDRs (IPv4 and IPv6), the client address right to left, forwarding headers from untrusted peers. */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatIssues, loadConfigText } from '../src/config/load.ts';
import { parseTrustedProxies } from '../src/config/upstream.ts';
import { FunctionPools } from '../src/serverless/pool.ts';
import { fixture, request } from './helpers/harness.ts';

describe('trusted_proxies: parsing', () => {
  const cases: { desc: string; list: string[]; ip: string; want: boolean }[] = [
    { desc: 'IPv6 CIDR matches an address inside it', list: ['fd00::/8'], ip: 'fd00::1', want: true },
    { desc: 'IPv6 CIDR does not match one outside', list: ['fd00::/8'], ip: 'fe80::1', want: false },
    { desc: 'IPv6 address', list: ['::1'], ip: '::1', want: true },
    { desc: 'IPv4 CIDR', list: ['10.0.0.0/8'], ip: '10.200.3.4', want: true },
    { desc: 'IPv4 CIDR matches an IPv4-mapped peer', list: ['10.0.0.0/8'], ip: '::ffff:10.1.2.3', want: true },
    { desc: 'IPv4 CIDR, outside', list: ['10.0.0.0/8'], ip: '11.0.0.1', want: false },
    { desc: 'a /0 trusts every IPv4 address', list: ['0.0.0.0/0'], ip: '203.0.113.1', want: true },
    { desc: 'no entries trust nobody', list: [], ip: '127.0.0.1', want: false },
  ];
  for (const c of cases) {
    it(c.desc, () => assert.equal(parseTrustedProxies(c.list).match(c.ip), c.want));
  }

  const pools = new FunctionPools();
  after(() => pools.close());
  it('reports every bad entry with its position', async () => {
    const text = 'trusted_proxies:\n  - 10.0.0.0/99\n  - banana\n  - "::1/129"\n  - 10.0.0.0/8\nroutes:\n  - { id: a, uri: /a, upstream: { nodes: { "127.0.0.1:80": 1 } } }\n';
    const res = await loadConfigText(text, 'gateway.yaml', { env: {}, functions: (s) => pools.host(s) });
    assert.equal(formatIssues(res.ok ? [] : res.issues), [
      'gateway.yaml:2:5: trusted_proxies[0]: "10.0.0.0/99" is not an IP address or CIDR (the prefix length is 0-32 for IPv4, 0-128 for IPv6)',
      'gateway.yaml:3:5: trusted_proxies[1]: "banana" is not an IP address or CIDR (the prefix length is 0-32 for IPv4, 0-128 for IPv6)',
      'gateway.yaml:4:5: trusted_proxies[2]: "::1/129" is not an IP address or CIDR (the prefix length is 0-32 for IPv4, 0-128 for IPv6)',
    ].join('\n'));
  });
});

describe('client address and forwarding headers', () => {
  // The test client connects from 127.0.0.1: trusted here, untrusted below.
  const trusted = fixture((port) => `trusted_proxies: ["127.0.0.0/8", "10.0.0.0/8"]\nroutes:\n  - { id: echo, uri: /echo, upstream: { nodes: { "127.0.0.1:${port}": 1 } } }\n`);
  const untrusted = fixture((port) => `trusted_proxies: ["10.0.0.0/8"]\nroutes:\n  - { id: echo, uri: /echo, upstream: { nodes: { "127.0.0.1:${port}": 1 } } }\n`);

  const cases: { desc: string; xff: string; want: string }[] = [
    { desc: 'the first untrusted address from the right is the client', xff: '6.6.6.6, 203.0.113.9, 10.1.2.3', want: '203.0.113.9' },
    { desc: 'a single address from a trusted peer', xff: '203.0.113.9', want: '203.0.113.9' },
    { desc: 'garbage stops the walk at the last trusted hop', xff: '203.0.113.9, banana, 10.1.2.3', want: '10.1.2.3' },
    { desc: 'all trusted: the leftmost', xff: '10.9.9.9, 10.1.2.3', want: '10.9.9.9' },
  ];
  for (const c of cases) {
    it(`trusted peer: ${c.desc}`, async () => {
      const res = await request(trusted.gw.port, '/echo', { headers: { 'x-forwarded-for': c.xff } });
      const h = JSON.parse(res.body).headers;
      assert.equal(h['x-real-ip'], c.want);
      assert.equal(h['x-forwarded-for'], `${c.xff}, 127.0.0.1`);
    });
  }

  it('trusted peer: Forwarded, X-Forwarded-Port and -Prefix are kept', async () => {
    const res = await request(trusted.gw.port, '/echo', { headers: { forwarded: 'for=203.0.113.9', 'x-forwarded-port': '443', 'x-forwarded-prefix': '/shop' } });
    const h = JSON.parse(res.body).headers;
    assert.deepEqual([h.forwarded, h['x-forwarded-port'], h['x-forwarded-prefix']], ['for=203.0.113.9', '443', '/shop']);
  });

  it('untrusted peer: its forwarding headers are removed or replaced', async () => {
    const res = await request(untrusted.gw.port, '/echo', {
      headers: { forwarded: 'for=6.6.6.6;proto=https', 'x-forwarded-for': '6.6.6.6', 'x-forwarded-port': '1', 'x-forwarded-prefix': '/evil', 'x-real-ip': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', host: 'shop.example' },
    });
    const h = JSON.parse(res.body).headers;
    assert.deepEqual(
      [h.forwarded, h['x-forwarded-prefix'], h['x-forwarded-port'], h['x-real-ip'], h['x-forwarded-for'], h['x-forwarded-proto'], h['x-forwarded-host']],
      [undefined, undefined, String(untrusted.gw.port), '127.0.0.1', '127.0.0.1', 'http', 'shop.example'],
    );
  });
});
