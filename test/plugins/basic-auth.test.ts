import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { captureLogs, fixture, request } from '../helpers/harness.ts';
import { configErrors, routeWith } from '../helpers/config.ts';
import { loadWarnings } from '../helpers/load.ts';
import { anonymousConsumerTests } from '../helpers/anonymous.ts';

const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;

describe('basic-auth', () => {
  const f = fixture((port) => {
    const node = `{ nodes: { "127.0.0.1:${port}": 1 } }`;
    return `routes:
  - { id: plain, uri: /plain, upstream: ${node}, plugins: { basic-auth: {} } }
  - { id: hidden, uri: /hidden, upstream: ${node}, plugins: { basic-auth: { hide_credentials: true, realm: staff } } }
consumers:
  - username: alice
    plugins:
      basic-auth: { username: alice, password: "\${{ALICE_PASSWORD}}" }
      proxy-rewrite: { headers: { set: { x-consumer: alice } } }
  - username: colon
    plugins:
      basic-auth: { username: colon, password: "a:b c" }
  - username: nopass
    plugins:
      basic-auth: { username: nopass, password: "" }
`;
  }, { env: { ALICE_PASSWORD: 'open sesame' } });

  type Want = { status: number; message?: string; realm?: string; forwarded?: Record<string, unknown> };
  const cases: { desc: string; path?: string; auth?: string; want: Want }[] = [
    { desc: 'no header', want: { status: 401, message: 'Missing authorization in request' } },
    { desc: 'not Basic', auth: 'Bearer abc', want: { status: 401, message: 'Invalid authorization in request' } },
    { desc: 'Basic without credentials', auth: 'Basic ', want: { status: 401, message: 'Invalid authorization in request' } },
    { desc: 'not base64', auth: 'Basic !!!!', want: { status: 401, message: 'Invalid authorization in request' } },
    { desc: 'no colon', auth: basic('alice'), want: { status: 401, message: 'Invalid authorization in request' } },
    { desc: 'header injection attempt', auth: 'Basic YWxpY2U6b3BlbiBzZXNhbWU=\tx-admin: 1', want: { status: 401, message: 'Invalid authorization in request' } },
    { desc: 'unknown user', auth: basic('mallory:open sesame'), want: { status: 401, message: 'Invalid user authorization' } },
    { desc: 'wrong password', auth: basic('alice:open sesamE'), want: { status: 401, message: 'Invalid user authorization' } },
    { desc: 'password prefix', auth: basic('alice:open'), want: { status: 401, message: 'Invalid user authorization' } },
    { desc: 'password plus a suffix', auth: basic('alice:open sesame!'), want: { status: 401, message: 'Invalid user authorization' } },
    { desc: 'empty password for a user that has one', auth: basic('alice:'), want: { status: 401, message: 'Invalid user authorization' } },
    { desc: 'user name case matters', auth: basic('Alice:open sesame'), want: { status: 401, message: 'Invalid user authorization' } },
    { desc: 'right password: the consumer plugins join the chain', auth: basic('alice:open sesame'), want: { status: 200, forwarded: { 'x-consumer': 'alice', authorization: basic('alice:open sesame') } } },
    { desc: 'scheme is case-insensitive', auth: `bAsIc ${Buffer.from('alice:open sesame').toString('base64')}`, want: { status: 200 } },
    { desc: 'password with a colon and a space', auth: basic('colon:a:b c'), want: { status: 200 } },
    { desc: 'empty password', auth: basic('nopass:'), want: { status: 200 } },
    { desc: 'hide_credentials', path: '/hidden', auth: basic('alice:open sesame'), want: { status: 200, forwarded: { authorization: undefined, 'x-consumer': 'alice' } } },
    { desc: 'custom realm', path: '/hidden', auth: basic('alice:x'), want: { status: 401, message: 'Invalid user authorization', realm: 'staff' } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const before = f.up.seen.length;
      const res = await request(f.gw.port, c.path ?? '/plain', { headers: c.auth === undefined ? {} : { authorization: c.auth } });
      assert.equal(res.status, c.want.status, res.body);
      if (c.want.status !== 200) {
        assert.deepEqual(JSON.parse(res.body), { message: c.want.message });
        assert.equal(res.headers['www-authenticate'], `Basic realm="${c.want.realm ?? 'basic'}"`);
        assert.equal(f.up.seen.length, before, 'a refused request must not reach the upstream');
        return;
      }
      const seen = JSON.parse(res.body);
      for (const [k, v] of Object.entries(c.want.forwarded ?? {})) assert.equal(seen.headers[k], v, k);
    });
  }

  it('never logs a password', async () => {
    const logs = captureLogs();
    try {
      await request(f.gw.port, '/plain', { headers: { authorization: basic('alice:wrong-password-xyz') } });
      await request(f.gw.port, '/plain', { headers: { authorization: basic('wrong-password-xyz:x') } });
    } finally {
      logs.restore();
    }
    const text = JSON.stringify(logs.lines);
    assert.ok(logs.lines.length > 0);
    assert.ok(!text.includes('wrong-password-xyz') && !text.includes('open sesame'), text);
  });
});

describe('basic-auth config errors', () => {
  const route = routeWith('basic-auth', 'ROUTE');
  const consumer = (conf: string) => `${route.replace('ROUTE', '{}')}consumers:\n  - username: u\n    plugins:\n      basic-auth: ${conf}\n`;
  const cases: { desc: string; conf: string; want: string }[] = [
    { desc: 'no password', conf: consumer('{ username: u }'), want: 'gateway.yaml:6:19: consumers[0].plugins.basic-auth: plugin basic-auth: missing required field "password"' },
    { desc: 'no username', conf: consumer('{ password: p }'), want: 'gateway.yaml:6:19: consumers[0].plugins.basic-auth: plugin basic-auth: missing required field "username"' },
    { desc: 'password not a string', conf: consumer('{ username: u, password: 123 }'), want: 'gateway.yaml:6:44: consumers[0].plugins.basic-auth.password: plugin basic-auth: must be of type string' },
    { desc: 'same user twice', conf: `${consumer('{ username: u, password: p }')}  - username: v\n    plugins:\n      basic-auth: { username: u, password: q }\n`, want: 'gateway.yaml:9:7: consumers[1].plugins.basic-auth: plugin basic-auth: the same credential is already used by consumer "u"' },
    { desc: 'unknown route field', conf: route.replace('ROUTE', '{ hide: true }'), want: 'gateway.yaml:2:92: routes[0].plugins.basic-auth.hide: plugin basic-auth: unknown field "hide"' },
    { desc: 'realm with a backslash', conf: route.replace('ROUTE', '{ realm: "a\\\\b" }'), want: 'gateway.yaml:2:99: routes[0].plugins.basic-auth.realm: plugin basic-auth: must match pattern ^[\\x20-\\x21\\x23-\\x5B\\x5D-\\x7E]+$' },
  ];
  for (const c of cases) it(c.desc, async () => assert.equal(await configErrors(c.conf), c.want));
  it('a colon in the user name loads, as in APISIX, with a warning that the consumer can never log in', async () => {
    assert.deepEqual(await loadWarnings(consumer('{ username: "a:b", password: p }')),
      ['gateway.yaml:6:7: consumers[0].plugins.basic-auth: warning: plugin basic-auth: username "a:b" has a colon, which Basic credentials cannot carry (RFC 7617): this consumer can never log in']);
  });
});

anonymousConsumerTests({ plugin: 'basic-auth', credential: '{ username: alice, password: alice-pw }', good: async () => ({ authorization: basic('alice:alice-pw') }), bad: { authorization: basic('alice:wrong') }, header: 'authorization' });
