import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import { fixture, request } from '../helpers/harness.ts';
import { configErrors, routeWith } from '../helpers/config.ts';
import { anonymousConsumerTests } from '../helpers/anonymous.ts';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const pem = (k: { publicKey: { export(o: object): string | Buffer } }) => String(k.publicKey.export({ type: 'spki', format: 'pem' }));
const rsaPkcs1 = String(rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }));
const indent = (s: string) => s.trim().split('\n').map((l) => '          ' + l).join('\n');
const now = () => Math.floor(Date.now() / 1000);

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const enc = new TextEncoder();
const sign = (payload: JWTPayload, alg: string, key: Parameters<SignJWT['sign']>[0]) => new SignJWT(payload).setProtectedHeader({ alg }).sign(key);
const hs = (payload: JWTPayload, secret = 'alice-secret', alg = 'HS256') => sign(payload, alg, enc.encode(secret));

describe('jwt-auth', () => {
  const f = fixture((port) => {
    const node = `{ nodes: { "127.0.0.1:${port}": 1 } }`;
    return `routes:
  - { id: plain, uri: /plain, upstream: ${node}, plugins: { jwt-auth: {} } }
  - { id: hidden, uri: /hidden, upstream: ${node}, plugins: { jwt-auth: { header: X-Token, query: t, cookie: tok, hide_credentials: true } } }
  - { id: sub, uri: /sub, upstream: ${node}, plugins: { jwt-auth: { key_claim_name: sub, realm: api, claims_to_verify: [exp], store_in_ctx: true } } }
consumers:
  - username: alice
    plugins:
      jwt-auth: { key: alice, secret: "\${{ALICE_SECRET}}" }
      proxy-rewrite: { headers: { set: { x-consumer: alice } } }
  - username: b64
    plugins:
      jwt-auth: { key: b64, secret: "${Buffer.from('raw bytes \u0001\u0002').toString('base64')}", base64_secret: true, algorithm: HS512 }
  - username: late
    plugins:
      jwt-auth: { key: late, secret: late-secret, lifetime_grace_period: 100 }
  - username: rsa
    plugins:
      jwt-auth:
        key: rsa
        algorithm: RS256
        public_key: |
${indent(pem(rsa))}
  - username: pss
    plugins:
      jwt-auth:
        key: pss
        algorithm: PS256
        public_key: |
${indent(rsaPkcs1)}
  - username: ec
    plugins:
      jwt-auth:
        key: ec
        algorithm: ES256
        public_key: |
${indent(pem(ec))}
  - username: ed
    plugins:
      jwt-auth:
        key: ed
        algorithm: EdDSA
        public_key: |
${indent(pem(ed))}
`;
  }, { env: { ALICE_SECRET: 'alice-secret' } });

  type Want = { status: number; message?: string; realm?: string; forwarded?: Record<string, unknown>; url?: string };
  const cases: { desc: string; path?: string; headers?: () => Promise<Record<string, string>>; query?: () => Promise<string>; want: Want }[] = [
    { desc: 'no token', want: { status: 401, message: 'Missing JWT token in request' } },
    { desc: 'not a JWT', headers: async () => ({ authorization: 'Bearer abc.def' }), want: { status: 401, message: 'JWT token invalid' } },
    { desc: 'empty bearer', headers: async () => ({ authorization: 'Bearer ' }), want: { status: 401, message: 'JWT token invalid' } },
    { desc: 'no key claim', headers: async () => ({ authorization: await hs({ sub: 'x' }) }), want: { status: 401, message: 'missing user key in JWT token' } },
    { desc: 'unknown key', headers: async () => ({ authorization: await hs({ key: 'mallory' }) }), want: { status: 401, message: 'Invalid user key in JWT token' } },
    { desc: 'key claim not a string', headers: async () => ({ authorization: await hs({ key: ['alice'] }) }), want: { status: 401, message: 'Invalid user key in JWT token' } },
    { desc: 'HS256 with Bearer: the consumer plugins join the chain', headers: async () => ({ authorization: `Bearer ${await hs({ key: 'alice' })}` }), want: { status: 200, forwarded: { 'x-consumer': 'alice' } } },
    { desc: 'lower-case bearer', headers: async () => ({ authorization: `bearer ${await hs({ key: 'alice' })}` }), want: { status: 200 } },
    { desc: 'without the Bearer prefix', headers: async () => ({ authorization: await hs({ key: 'alice', exp: now() + 60 }) }), want: { status: 200 } },
    { desc: 'in the query', query: async () => `?jwt=${await hs({ key: 'alice' })}&x=1`, want: { status: 200 } },
    { desc: 'in a cookie', headers: async () => ({ cookie: `a=1; jwt=${await hs({ key: 'alice' })}` }), want: { status: 200, forwarded: { 'x-consumer': 'alice' } } },
    { desc: 'base64 secret, HS512', headers: async () => ({ authorization: await hs({ key: 'b64' }, 'raw bytes \u0001\u0002', 'HS512') }), want: { status: 200 } },
    { desc: 'RS256', headers: async () => ({ authorization: await sign({ key: 'rsa' }, 'RS256', rsa.privateKey) }), want: { status: 200 } },
    { desc: 'PS256 with a PKCS#1 public key', headers: async () => ({ authorization: await sign({ key: 'pss' }, 'PS256', rsa.privateKey) }), want: { status: 200 } },
    { desc: 'ES256', headers: async () => ({ authorization: await sign({ key: 'ec' }, 'ES256', ec.privateKey) }), want: { status: 200 } },
    { desc: 'EdDSA', headers: async () => ({ authorization: await sign({ key: 'ed' }, 'EdDSA', ed.privateKey) }), want: { status: 200 } },
    // Hostile tokens.
    { desc: 'alg none', headers: async () => ({ authorization: `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ key: 'alice' })}.` }), want: { status: 401, message: 'failed to verify jwt' } },
    { desc: 'alg none with a signature', headers: async () => ({ authorization: `${b64({ alg: 'none' })}.${b64({ key: 'alice' })}.c2ln` }), want: { status: 401, message: 'failed to verify jwt' } },
    { desc: 'HS256 signed with the RS public key as the secret', headers: async () => ({ authorization: await hs({ key: 'rsa' }, pem(rsa)) }), want: { status: 401, message: 'failed to verify jwt' } },
    { desc: 'RS256 token for an HS256 consumer', headers: async () => ({ authorization: await sign({ key: 'alice' }, 'RS256', rsa.privateKey) }), want: { status: 401, message: 'failed to verify jwt' } },
    { desc: 'RS384 token for an RS256 consumer', headers: async () => ({ authorization: await sign({ key: 'rsa' }, 'RS384', rsa.privateKey) }), want: { status: 401, message: 'failed to verify jwt' } },
    { desc: 'wrong secret', headers: async () => ({ authorization: await hs({ key: 'alice' }, 'guess') }), want: { status: 401, message: 'failed to verify jwt' } },
    { desc: 'expired', headers: async () => ({ authorization: await hs({ key: 'alice', exp: now() - 10 }) }), want: { status: 401, message: 'failed to verify jwt' } },
    { desc: 'expired within the grace period', headers: async () => ({ authorization: await hs({ key: 'late', exp: now() - 30 }, 'late-secret') }), want: { status: 200 } },
    { desc: 'expired past the grace period', headers: async () => ({ authorization: await hs({ key: 'late', exp: now() - 300 }, 'late-secret') }), want: { status: 401, message: 'failed to verify jwt' } },
    { desc: 'not valid yet (nbf)', headers: async () => ({ authorization: await hs({ key: 'alice', nbf: now() + 300 }) }), want: { status: 401, message: 'failed to verify jwt' } },
    { desc: 'exp not a number', headers: async () => ({ authorization: await hs({ key: 'alice', exp: 'never' as unknown as number }) }), want: { status: 401, message: 'failed to verify jwt' } },
    {
      desc: 'tampered payload (key claim swapped, signature kept)',
      headers: async () => { const [h, , s] = (await hs({ key: 'late' }, 'late-secret')).split('.'); return { authorization: `${h}.${b64({ key: 'alice' })}.${s}` }; },
      want: { status: 401, message: 'failed to verify jwt' },
    },
    { desc: 'huge token under the header limit', headers: async () => ({ authorization: `${b64({ alg: 'HS256' })}.${'A'.repeat(12000)}.x` }), want: { status: 401, message: 'JWT token invalid' } },
    { desc: 'huge token past the header limit: 431 (Request Header Fields Too Large)', headers: async () => ({ authorization: 'x'.repeat(100_000) }), want: { status: 431 } },
    // Route options.
    { desc: 'hidden header', path: '/hidden', headers: async () => ({ 'x-token': await hs({ key: 'alice' }) }), want: { status: 200, forwarded: { 'x-token': undefined } } },
    { desc: 'hidden query', path: '/hidden', query: async () => `?x=1&t=${await hs({ key: 'alice' })}`, want: { status: 200, url: '/hidden?x=1' } },
    { desc: 'hidden cookie, others kept', path: '/hidden', headers: async () => ({ cookie: `a=1; tok=${await hs({ key: 'alice' })}; b=2` }), want: { status: 200, forwarded: { cookie: 'a=1; b=2' } } },
    { desc: 'default header ignored on a custom-header route', path: '/hidden', headers: async () => ({ authorization: await hs({ key: 'alice' }) }), want: { status: 401, message: 'Missing JWT token in request' } },
    { desc: 'key_claim_name sub', path: '/sub', headers: async () => ({ authorization: await hs({ sub: 'alice', exp: now() + 60 }) }), want: { status: 200, forwarded: { authorization: /^eyJ/ } } },
    { desc: 'claims_to_verify: exp required', path: '/sub', headers: async () => ({ authorization: await hs({ sub: 'alice' }) }), want: { status: 401, message: 'failed to verify jwt', realm: 'api' } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const before = f.up.seen.length;
      const path = (c.path ?? '/plain') + (c.query ? await c.query() : '');
      const res = await request(f.gw.port, path, { headers: c.headers ? await c.headers() : undefined });
      assert.equal(res.status, c.want.status, res.body);
      if (c.want.message) {
        assert.deepEqual(JSON.parse(res.body), { message: c.want.message });
        assert.equal(res.headers['www-authenticate'], `Bearer realm="${c.want.realm ?? 'jwt'}"`);
      }
      if (c.want.status !== 200) {
        assert.equal(f.up.seen.length, before, 'a refused request must not reach the upstream');
        return;
      }
      const seen = JSON.parse(res.body);
      if (c.want.url) assert.equal(seen.url, c.want.url);
      for (const [k, v] of Object.entries(c.want.forwarded ?? {})) {
        if (v instanceof RegExp) assert.match(seen.headers[k], v, k);
        else assert.equal(seen.headers[k], v, k);
      }
    });
  }

  // Verified tokens are kept per route for speed: the verdict must end with the token's exp, and a token
  // kept on one route must not pass on a route whose verification differs.
  it('a kept verdict ends when the token expires', async () => {
    const token = await hs({ key: 'alice', exp: now() + 2 });
    assert.equal((await request(f.gw.port, '/plain', { headers: { authorization: token } })).status, 200);
    assert.equal((await request(f.gw.port, '/plain', { headers: { authorization: token } })).status, 200);
    const until = (now() + 3) * 1000;
    while (Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    const res = await request(f.gw.port, '/plain', { headers: { authorization: token } });
    assert.equal(res.status, 401);
    assert.deepEqual(JSON.parse(res.body), { message: 'failed to verify jwt' });
  });

  it('a token kept on one route is judged afresh on another (claims_to_verify differs)', async () => {
    const token = await hs({ key: 'alice', sub: 'alice' });
    assert.equal((await request(f.gw.port, '/plain', { headers: { authorization: token } })).status, 200);
    assert.equal((await request(f.gw.port, '/sub', { headers: { authorization: token } })).status, 401, 'no exp: /sub requires it');
  });
});

describe('jwt-auth config errors', () => {
  const route = routeWith('jwt-auth', 'ROUTE');
  const consumer = (conf: string) => `${route.replace('ROUTE', '{}')}consumers:\n  - username: u\n    plugins:\n      jwt-auth: ${conf}\n`;
  const cases: { desc: string; conf: string; want: string }[] = [
    { desc: 'HS256 without a secret', conf: consumer('{ key: k }'), want: 'gateway.yaml:6:7: consumers[0].plugins.jwt-auth: plugin jwt-auth: property "secret" is required when using HS based algorithms' },
    { desc: 'RS256 without a public key', conf: consumer('{ key: k, algorithm: RS256 }'), want: 'gateway.yaml:6:7: consumers[0].plugins.jwt-auth: plugin jwt-auth: missing valid public key ("public_key" is required for RS256)' },
    { desc: 'not base64', conf: consumer('{ key: k, secret: "not base64!", base64_secret: true }'), want: 'gateway.yaml:6:7: consumers[0].plugins.jwt-auth: plugin jwt-auth: base64_secret required but the secret is not in base64 format' },
    { desc: 'public key not PEM', conf: consumer('{ key: k, algorithm: ES256, public_key: "-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----" }'), want: /^gateway\.yaml:6:7: consumers\[0\]\.plugins\.jwt-auth: plugin jwt-auth: public_key is not a valid public key for ES256: /.source },
    { desc: 'EC key for RS256', conf: consumer(`{ key: k, algorithm: RS256, public_key: ${JSON.stringify(pem(ec))} }`), want: 'gateway.yaml:6:7: consumers[0].plugins.jwt-auth: plugin jwt-auth: public_key is not a valid public key for RS256: a ec (prime256v1) key cannot verify RS256' },
    { desc: 'P-256 key for ES384', conf: consumer(`{ key: k, algorithm: ES384, public_key: ${JSON.stringify(pem(ec))} }`), want: 'gateway.yaml:6:7: consumers[0].plugins.jwt-auth: plugin jwt-auth: public_key is not a valid public key for ES384: a ec (prime256v1) key cannot verify ES384' },
    { desc: 'alg none', conf: consumer('{ key: k, secret: s, algorithm: none }'), want: 'gateway.yaml:6:49: consumers[0].plugins.jwt-auth.algorithm: plugin jwt-auth: must be one of: "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"' },
    { desc: 'no key', conf: consumer('{ secret: s }'), want: 'gateway.yaml:6:17: consumers[0].plugins.jwt-auth: plugin jwt-auth: missing required field "key"' },
    { desc: 'negative grace', conf: consumer('{ key: k, secret: s, lifetime_grace_period: -1 }'), want: 'gateway.yaml:6:61: consumers[0].plugins.jwt-auth.lifetime_grace_period: plugin jwt-auth: must be >= 0' },
    { desc: 'unknown consumer field', conf: consumer('{ key: k, secret: s, secrett: t }'), want: 'gateway.yaml:6:38: consumers[0].plugins.jwt-auth.secrett: plugin jwt-auth: unknown field "secrett" (did you mean "secret"?)' },
    { desc: 'same key twice', conf: `${consumer('{ key: k, secret: s }')}  - username: v\n    plugins:\n      jwt-auth: { key: k, secret: t }\n`, want: 'gateway.yaml:9:7: consumers[1].plugins.jwt-auth: plugin jwt-auth: the same credential is already used by consumer "u"' },
    { desc: 'empty key claim name', conf: route.replace('ROUTE', '{ key_claim_name: "" }'), want: 'gateway.yaml:2:106: routes[0].plugins.jwt-auth.key_claim_name: plugin jwt-auth: must NOT have fewer than 1 characters' },
    { desc: 'realm with a quote', conf: route.replace('ROUTE', `{ realm: 'a"b' }`), want: 'gateway.yaml:2:97: routes[0].plugins.jwt-auth.realm: plugin jwt-auth: must match pattern ^[\\x20-\\x21\\x23-\\x5B\\x5D-\\x7E]+$' },
    { desc: 'claims_to_verify iat', conf: route.replace('ROUTE', '{ claims_to_verify: [iat] }'), want: 'gateway.yaml:2:109: routes[0].plugins.jwt-auth.claims_to_verify[0]: plugin jwt-auth: must be one of: "exp", "nbf"' },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const got = await configErrors(c.conf);
      if (c.want.startsWith('^')) assert.match(got, new RegExp(c.want));
      else assert.equal(got, c.want);
    });
  }
  it('the secret never appears in an error', async () => {
    const got = await configErrors(consumer('{ key: k, secret: "hunter2-not-base64!", base64_secret: true }'));
    assert.ok(got.length > 0 && !got.includes('hunter2'), got);
  });
});

anonymousConsumerTests({
  plugin: 'jwt-auth', credential: '{ key: alice, secret: alice-anon-secret }',
  good: async () => ({ authorization: `Bearer ${await hs({ key: 'alice' }, 'alice-anon-secret')}` }),
  bad: { authorization: 'Bearer not.a.jwt' }, header: 'authorization',
});
