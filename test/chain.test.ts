/** Plugin chains: merge (global < service < consumer < route) and order (priority, then name). */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildChain, type Instance } from '../src/config/chain.ts';
import { definePlugin, type PluginDef } from '../src/plugin.ts';
import { request, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness.ts';

const def = (name: string, priority: number, phases: PluginDef['phases']): PluginDef => definePlugin({ name, version: '1', priority, schema: {}, phases });
const inst = (d: PluginDef, state: unknown = {}): Instance => ({ def: d, state });

describe('buildChain', () => {
  const noop = () => undefined;
  const a = def('a', 10, { access: noop, log: noop });
  const b = def('b', 10, { access: noop });
  const c = def('c', 99, { access: noop, rewrite: noop });
  const d = def('d', -5, { header_filter: noop });

  const cases: { desc: string; layers: Map<string, Instance>[]; want: Record<string, string[]> }[] = [
    { desc: 'sorted by priority, ties by name',
      layers: [new Map([['b', inst(b)], ['d', inst(d)], ['a', inst(a)], ['c', inst(c)]])],
      want: { rewrite: ['c'], access: ['c', 'a', 'b'], header_filter: ['d'], log: ['a'] } },
    { desc: 'union of layers',
      layers: [new Map([['a', inst(a)]]), new Map([['c', inst(c)]])],
      want: { rewrite: ['c'], access: ['c', 'a'], header_filter: [], log: ['a'] } },
  ];
  for (const k of cases) {
    it(k.desc, () => {
      const chain = buildChain(k.layers);
      for (const [phase, names] of Object.entries(k.want)) assert.deepEqual(chain[phase as 'access'].map((s) => s.name), names, phase);
    });
  }

  it('a plugin joins only the phases its instance declares active', () => {
    const many = definePlugin<unknown, { on: string[] }>({ name: 'many', version: '1', priority: 1, schema: {}, activePhases: (s) => s.on as never, phases: { access: noop, header_filter: noop, body_filter: noop } });
    const chain = buildChain([new Map([['many', inst(many, { on: ['access'] })]])]);
    assert.deepEqual([chain.access.length, chain.header_filter.length, chain.body_filter.length, chain.bufferResponse], [1, 0, 0, false]);
  });

  it('the most specific layer wins for the same plugin', () => {
    const chain = buildChain([new Map([['a', inst(a, 'global')]]), new Map([['a', inst(a, 'service')]]), undefined, new Map([['a', inst(a, 'route')]])]);
    assert.deepEqual(chain.access.map((s) => s.conf), ['route']);
  });
});

describe('chains on a running gateway', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    const tag = (v: string) => `{ headers: { set: { x-layer: ${v} } } }`;
    gw = await startGateway(`
global_rules:
  - id: g
    plugins:
      proxy-rewrite: ${tag('global')}
services:
  - id: s
    upstream: { nodes: { "127.0.0.1:${up.port}": 1 } }
    plugins:
      proxy-rewrite: ${tag('service')}
routes:
  - { id: bare, uri: /bare, upstream: { nodes: { "127.0.0.1:${up.port}": 1 } } }
  - { id: svc, uri: /svc, service_id: s }
  - id: route
    uri: /route
    service_id: s
    plugins:
      proxy-rewrite: ${tag('route')}
  - id: auth
    uri: /auth
    service_id: s
    plugins:
      key-auth: {}
  - id: auth-route
    uri: /auth-route
    service_id: s
    plugins:
      key-auth: {}
      proxy-rewrite: ${tag('route')}
consumers:
  - username: alice
    plugins:
      key-auth: { key: alice-key }
      proxy-rewrite: ${tag('consumer')}
  - username: bob
    plugins:
      key-auth: { key: bob-key }
`);
  });
  after(async () => { await gw.close(); await up.close(); });

  const cases: { desc: string; path: string; headers: Record<string, string>; want: string }[] = [
    { desc: 'global only', path: '/bare', headers: {}, want: 'global' },
    { desc: 'service over global', path: '/svc', headers: {}, want: 'service' },
    { desc: 'route over service', path: '/route', headers: {}, want: 'route' },
    { desc: 'consumer over service', path: '/auth', headers: { apikey: 'alice-key' }, want: 'consumer' },
    { desc: 'consumer without plugins keeps the service chain', path: '/auth', headers: { apikey: 'bob-key' }, want: 'service' },
    { desc: 'route over consumer', path: '/auth-route', headers: { apikey: 'alice-key' }, want: 'route' },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await request(gw.port, c.path, { headers: c.headers });
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.body).headers['x-layer'], c.want);
    });
  }
});
