import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, request } from '../helpers/harness.ts';
import { pluginConfigErrors } from '../helpers/load.ts';

describe('consumer-restriction', () => {
  const f = fixture((port) => {
    const up = `upstream: { nodes: { "127.0.0.1:${port}": 1 } }`;
    return `services:
  - { id: s1, ${up} }
routes:
  - id: white
    uri: /white
    ${up}
    plugins:
      key-auth: {}
      consumer-restriction: { whitelist: [alice, bob], allowed_by_methods: [{ user: bob, methods: [GET] }] }
  - id: methods
    uri: /methods
    methods: [GET, POST]
    ${up}
    plugins:
      key-auth: {}
      consumer-restriction: { allowed_by_methods: [{ user: bob, methods: [GET] }] }
  - id: black
    uri: /black
    ${up}
    plugins:
      key-auth: {}
      consumer-restriction: { blacklist: [carol], rejected_code: 429, rejected_msg: "not you" }
  - { id: noauth, uri: /noauth, ${up}, plugins: { consumer-restriction: { whitelist: [alice] } } }
  - { id: by-route, uri: /by-route, ${up}, plugins: { consumer-restriction: { type: route_id, blacklist: [by-route] } } }
  - { id: by-service, uri: /by-service, service_id: s1, plugins: { consumer-restriction: { type: service_id, whitelist: [s1] } } }
  - { id: by-service-none, uri: /by-service-none, ${up}, plugins: { consumer-restriction: { type: service_id, whitelist: [s1] } } }
consumers:
  - { username: alice, plugins: { key-auth: { key: key-a } } }
  - { username: bob, plugins: { key-auth: { key: key-b } } }
  - { username: carol, plugins: { key-auth: { key: key-c } } }
`;
  });

  const forbidden = (type = 'consumer_name') => ({ message: `The ${type} is forbidden.` });
  const cases: { desc: string; path: string; method?: string; key?: string; want: { status: number; body?: unknown } }[] = [
    { desc: 'whitelisted consumer', path: '/white', key: 'key-a', want: { status: 200 } },
    { desc: 'whitelisted consumer: methods are not checked (as APISIX)', path: '/white', method: 'POST', key: 'key-b', want: { status: 200 } },
    { desc: 'consumer missing from the whitelist', path: '/white', key: 'key-c', want: { status: 403, body: forbidden() } },
    { desc: 'no key: the auth plugin answers first', path: '/white', want: { status: 401, body: { message: 'Missing API key in request' } } },
    { desc: 'allowed method', path: '/methods', key: 'key-b', want: { status: 200 } },
    { desc: 'method not in its allowed_by_methods', path: '/methods', method: 'POST', key: 'key-b', want: { status: 403, body: forbidden() } },
    { desc: 'a consumer without an entry is not limited', path: '/methods', method: 'POST', key: 'key-a', want: { status: 200 } },
    { desc: 'blacklisted consumer, custom code and message', path: '/black', key: 'key-c', want: { status: 429, body: { message: 'not you' } } },
    { desc: 'consumer not blacklisted', path: '/black', key: 'key-a', want: { status: 200 } },
    { desc: 'no auth plugin, so no consumer: refused (fail closed)', path: '/noauth', want: { status: 401, body: { message: 'The request is rejected, please check the consumer_name for this request' } } },
    { desc: 'route_id blacklisted', path: '/by-route', want: { status: 403, body: forbidden('route_id') } },
    { desc: 'service_id whitelisted', path: '/by-service', want: { status: 200 } },
    { desc: 'route without a service: refused', path: '/by-service-none', want: { status: 401, body: { message: 'The request is rejected, please check the service_id for this request' } } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const before = f.up.seen.length;
      const res = await request(f.gw.port, c.path, { method: c.method, headers: c.key ? { apikey: c.key } : {} });
      assert.equal(res.status, c.want.status);
      if (c.want.body) {
        assert.deepEqual(JSON.parse(res.body), c.want.body);
        assert.equal(f.up.seen.length, before, 'a refused request must not reach the upstream');
      } else assert.equal(f.up.seen.length, before + 1);
    });
  }
});

describe('consumer-restriction config errors', () => {
  const cases: { desc: string; conf: unknown; want: string[] }[] = [
    { desc: 'no list', conf: {}, want: ['routes[0].plugins.consumer-restriction: plugin consumer-restriction: give whitelist, blacklist or allowed_by_methods'] },
    { desc: 'consumer groups do not exist in Turnpike', conf: { type: 'consumer_group_id', whitelist: ['g'] },
      want: ['routes[0].plugins.consumer-restriction.type: plugin consumer-restriction: must be one of: "consumer_name", "service_id", "route_id"'] },
    { desc: 'unknown method', conf: { allowed_by_methods: [{ user: 'a', methods: ['FETCH'] }] },
      want: ['routes[0].plugins.consumer-restriction.allowed_by_methods[0].methods[0]: plugin consumer-restriction: must be one of: "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PURGE"'] },
    { desc: 'empty whitelist', conf: { whitelist: [] }, want: ['routes[0].plugins.consumer-restriction.whitelist: plugin consumer-restriction: must NOT have fewer than 1 items'] },
    { desc: 'rejected_code below 200', conf: { whitelist: ['a'], rejected_code: 100 }, want: ['routes[0].plugins.consumer-restriction.rejected_code: plugin consumer-restriction: must be >= 200'] },
    { desc: 'a name that is not a string', conf: { blacklist: [7] }, want: ['routes[0].plugins.consumer-restriction.blacklist[0]: plugin consumer-restriction: must be of type string'] },
  ];
  for (const c of cases) it(c.desc, async () => assert.deepEqual(await pluginConfigErrors('consumer-restriction', c.conf), c.want));
});
