import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { captureLogs, eventually, fixture, request } from '../helpers/harness.ts';
import { flushLogs } from '../../src/log.ts';
import { pluginConfigErrors } from '../helpers/load.ts';

describe('real-ip', () => {
  const f = fixture((port) => {
    const up = `upstream: { nodes: { "127.0.0.1:${port}": 1 } }`;
    return `routes:
  - { id: hdr, uri: /hdr, ${up}, plugins: { real-ip: { source: http_x_real_ip, trusted_addresses: ["127.0.0.1"] } } }
  - { id: untrusted, uri: /untrusted, ${up}, plugins: { real-ip: { source: http_x_real_ip, trusted_addresses: ["10.0.0.0/8"] } } }
  - { id: xff, uri: /xff, ${up}, plugins: { real-ip: { source: http_x_forwarded_for, trusted_addresses: ["127.0.0.0/8"] } } }
  - { id: xff-rec, uri: /xff-rec, ${up}, plugins: { real-ip: { source: http_x_forwarded_for, trusted_addresses: ["127.0.0.1", "10.0.0.0/8"], recursive: true } } }
  - { id: arg, uri: /arg, ${up}, plugins: { real-ip: { source: arg_realip, trusted_addresses: ["127.0.0.0/24"] } } }
  - id: guarded
    uri: /guarded
    ${up}
    plugins:
      real-ip: { source: http_x_client, trusted_addresses: ["127.0.0.1"] }
      ip-restriction: { whitelist: ["203.0.113.0/24", "2001:db8::/32"] }
`;
  });
  let logs: ReturnType<typeof captureLogs>;
  before(() => { logs = captureLogs(); });
  after(() => logs.restore());

  const cases: { desc: string; path: string; headers?: Record<string, string | string[]>; want: { status: number; client: string } }[] = [
    { desc: 'a header from a trusted peer', path: '/hdr', headers: { 'x-real-ip': '198.51.100.7' }, want: { status: 200, client: '198.51.100.7' } },
    { desc: 'no header: unchanged', path: '/hdr', want: { status: 200, client: '127.0.0.1' } },
    { desc: 'not an address: unchanged', path: '/hdr', headers: { 'x-real-ip': 'evil.example' }, want: { status: 200, client: '127.0.0.1' } },
    { desc: 'a header from a peer outside trusted_addresses is ignored', path: '/untrusted', headers: { 'x-real-ip': '10.0.0.1' }, want: { status: 200, client: '127.0.0.1' } },
    { desc: 'X-Forwarded-For: the last hop', path: '/xff', headers: { 'x-forwarded-for': '192.0.2.1, 198.51.100.2' }, want: { status: 200, client: '198.51.100.2' } },
    { desc: 'X-Forwarded-For on several lines: the last hop of the last', path: '/xff', headers: { 'x-forwarded-for': ['192.0.2.1, 192.0.2.2', '198.51.100.3'] }, want: { status: 200, client: '198.51.100.3' } },
    { desc: 'X-Forwarded-For: a single address, with spaces', path: '/xff', headers: { 'x-forwarded-for': '  192.0.2.9 ' }, want: { status: 200, client: '192.0.2.9' } },
    { desc: 'recursive: the rightmost untrusted hop', path: '/xff-rec', headers: { 'x-forwarded-for': '192.0.2.1, 198.51.100.2, 10.0.0.3' }, want: { status: 200, client: '198.51.100.2' } },
    { desc: 'recursive: all trusted gives the first', path: '/xff-rec', headers: { 'x-forwarded-for': '10.0.0.1, 10.0.0.2' }, want: { status: 200, client: '10.0.0.1' } },
    { desc: 'query argument with a port', path: '/arg?realip=192.0.2.44:9080', want: { status: 200, client: '192.0.2.44' } },
    { desc: 'query argument: bracketed IPv6 with a port', path: '/arg?realip=[2001:db8::5]:443', want: { status: 200, client: '2001:db8::5' } },
    { desc: 'query argument: bare IPv6', path: '/arg?realip=2001:db8::6', want: { status: 200, client: '2001:db8::6' } },
    { desc: 'query argument: garbage is ignored', path: '/arg?realip=1.2.3.4.5', want: { status: 200, client: '127.0.0.1' } },
    { desc: 'ip-restriction judges the new address: let in', path: '/guarded', headers: { 'x-client': '203.0.113.9' }, want: { status: 200, client: '203.0.113.9' } },
    { desc: 'ip-restriction judges the new address: IPv6 let in', path: '/guarded', headers: { 'x-client': '2001:db8::1' }, want: { status: 200, client: '2001:db8::1' } },
    { desc: 'ip-restriction judges the new address: refused', path: '/guarded', headers: { 'x-client': '198.51.100.1' }, want: { status: 403, client: '198.51.100.1' } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await request(f.gw.port, c.path, { headers: c.headers });
      assert.equal(res.status, c.want.status);
      if (c.want.status === 200) assert.equal(JSON.parse(res.body).headers['x-real-ip'], c.want.client, 'X-Real-IP sent upstream');
      const [entry] = await eventually(() => { flushLogs(); const l = logs.lines.filter((x) => x.msg === 'access' && x.path === c.path.split('?')[0]); return l.length ? l.slice(-1) : undefined; });
      assert.equal(entry.client, c.want.client, 'client in the access log');
      logs.lines.length = 0;
    });
  }
});

describe('real-ip config errors', () => {
  const at = 'routes[0].plugins.real-ip';
  const cases: { desc: string; conf: unknown; want: string[] }[] = [
    { desc: 'no source', conf: { trusted_addresses: ['10.0.0.1'] }, want: [`${at}: plugin real-ip: missing required field "source"`] },
    { desc: 'no trusted_addresses (APISIX would believe anyone)', conf: { source: 'http_x_real_ip' },
      want: [`${at}: plugin real-ip: trusted_addresses is required: without it any client could choose its own address (write ["0.0.0.0/0", "::/0"] to believe every peer knowingly)`] },
    { desc: 'a source Turnpike does not read', conf: { source: 'remote_addr', trusted_addresses: ['10.0.0.1'] },
      want: [`${at}: plugin real-ip: source "remote_addr" is not one Turnpike reads: use http_NAME (a header, such as http_x_forwarded_for) or arg_NAME (a query argument)`] },
    { desc: 'an invalid trusted address', conf: { source: 'http_x_real_ip', trusted_addresses: ['10.0.0.0/40'] }, want: [`${at}: plugin real-ip: invalid ip address: 10.0.0.0/40`] },
    { desc: 'recursive not a boolean', conf: { source: 'http_x_real_ip', trusted_addresses: ['10.0.0.1'], recursive: 'yes' }, want: [`${at}.recursive: plugin real-ip: must be of type boolean`] },
  ];
  for (const c of cases) it(c.desc, async () => assert.deepEqual(await pluginConfigErrors('real-ip', c.conf), c.want));
});
