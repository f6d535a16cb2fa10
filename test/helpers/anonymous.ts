/**
 * anonymous_consumer (APISIX 3.x), the same table for key-auth, basic-auth
 * and jwt-auth: without valid credentials the request goes on as the named
 * consumer, whose plugins (here a limit-count of 2) join the chain; a name
 * that is no consumer is a load error naming the route.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, request } from './harness.ts';
import { configErrors } from './config.ts';

export interface AnonymousCase {
  /** The auth plugin under test. */
  plugin: string;
  /** alice's credentials for it (YAML flow). */
  credential: string;
  /** Headers with alice's valid credentials, and with invalid ones. */
  good(): Promise<Record<string, string>>;
  bad: Record<string, string>;
  /** The header hide_credentials removes. */
  header: string;
}

/** Registers the anonymous_consumer tests for `c.plugin`. */
export function anonymousConsumerTests(c: AnonymousCase): void {
  describe(`${c.plugin}: anonymous_consumer`, () => {
    const f = fixture((port) => `routes:
  - { id: anon, uri: /anon, upstream: { nodes: { "127.0.0.1:${port}": 1 } }, plugins: { ${c.plugin}: { anonymous_consumer: guest, hide_credentials: true } } }
consumers:
  - username: alice
    plugins:
      ${c.plugin}: ${c.credential}
  - username: guest
    plugins:
      limit-count: { count: 2, time_window: 60, rejected_code: 429 }
`);

    it('valid credentials: the consumer itself; missing or invalid: the anonymous consumer and its limit, credentials hidden', async () => {
      const good = await request(f.gw.port, '/anon', { headers: await c.good() });
      assert.equal(good.status, 200);
      assert.equal(good.headers['x-ratelimit-limit'], undefined, 'alice has no limit');
      const steps: { desc: string; headers: Record<string, string>; want: { status: number; remaining?: string } }[] = [
        { desc: 'missing', headers: {}, want: { status: 200, remaining: '1' } },
        { desc: 'invalid', headers: c.bad, want: { status: 200, remaining: '0' } },
        { desc: 'over the guest limit', headers: {}, want: { status: 429 } },
      ];
      for (const s of steps) {
        const res = await request(f.gw.port, '/anon', { headers: s.headers });
        assert.equal(res.status, s.want.status, s.desc);
        if (s.want.remaining === undefined) continue;
        assert.equal(res.headers['x-ratelimit-limit'], '2', s.desc);
        assert.equal(res.headers['x-ratelimit-remaining'], s.want.remaining, s.desc);
        assert.equal(JSON.parse(res.body).headers[c.header], undefined, `${s.desc}: credentials hidden`);
      }
      assert.equal((await request(f.gw.port, '/anon', { headers: await c.good() })).status, 200, 'alice is not limited by the guest');
    });

    it('a name that is no consumer is a load error naming the route', async () => {
      const errs = await configErrors(`routes:\n  - { id: orders, uri: /a, upstream: { nodes: { "127.0.0.1:80": 1 } }, plugins: { ${c.plugin}: { anonymous_consumer: nobody } } }\n`);
      assert.match(errs, new RegExp(`^gateway\\.yaml:2:\\d+: .*plugin ${c.plugin}: anonymous_consumer "nobody" on route "orders" is not a consumer in this file$`));
    });
  });
}
