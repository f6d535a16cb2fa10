/** Balancers: weighted round robin, least connections, consistent hash; and hash_on over real sockets. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createBalancer } from '../src/balancer.ts';
import type { UpstreamNode } from '../src/snapshot.ts';
import { request, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness.ts';

const node = (name: string, weight = 1): UpstreamNode => ({ host: name, port: 80, weight, origin: `http://${name}:80`, hostHeader: name });
const picks = (type: string, nodes: UpstreamNode[], n: number, key?: (i: number) => string) => {
  const b = createBalancer(type, nodes);
  return Array.from({ length: n }, (_, i) => b.pick(key?.(i))!.host);
};

describe('balancers', () => {
  const cases: { desc: string; type: string; nodes: UpstreamNode[]; n: number; want: string }[] = [
    { desc: 'round robin alternates equal weights', type: 'roundrobin', nodes: [node('a'), node('b')], n: 4, want: 'abab' },
    { desc: 'smooth weighted round robin interleaves 2:1', type: 'roundrobin', nodes: [node('a', 2), node('b', 1)], n: 6, want: 'abaaba' },
    { desc: 'weight 0 gets no traffic', type: 'roundrobin', nodes: [node('a', 0), node('b', 1)], n: 3, want: 'bbb' },
  ];
  for (const c of cases) it(c.desc, () => assert.equal(picks(c.type, c.nodes, c.n).join(''), c.want));

  it('least_conn picks the node with the fewest requests in flight per weight', () => {
    const [a, b] = [node('a'), node('b')];
    const lc = createBalancer('least_conn', [a, b]);
    lc.acquire(a); lc.acquire(a); lc.acquire(b);
    assert.equal(lc.pick(undefined), b);
    lc.release(a); lc.release(a);
    assert.equal(lc.pick(undefined), a);
  });

  it('chash sends a key to the same node, spreads keys, and moves few keys when a node goes', () => {
    const nodes = ['a', 'b', 'c', 'd'].map((n) => node(n));
    const before = picks('chash', nodes, 1000, (i) => `user-${i}`);
    assert.deepEqual(before, picks('chash', nodes, 1000, (i) => `user-${i}`));
    for (const n of ['a', 'b', 'c', 'd']) assert.ok(before.filter((x) => x === n).length > 150, `${n} gets a share`);
    const after = picks('chash', nodes.filter((n) => n.host !== 'd'), 1000, (i) => `user-${i}`);
    const moved = before.filter((x, i) => x !== 'd' && x !== after[i]).length;
    assert.equal(moved, 0, 'keys of the remaining nodes stay where they were');
  });

  it('pick skips excluded (already tried) nodes', () => {
    const [a, b] = [node('a'), node('b')];
    for (const type of ['roundrobin', 'least_conn', 'chash']) {
      const bal = createBalancer(type, [a, b]);
      assert.equal(bal.pick('k', new Set([a])), b, type);
      assert.equal(bal.pick('k', new Set([a, b])), undefined, type);
    }
  });
});

describe('hash_on over real sockets', () => {
  const ups: Upstream[] = [];
  let gw: TestGateway;
  before(async () => {
    for (const name of ['n1', 'n2', 'n3']) ups.push(await startUpstream((_req, res) => { res.end(name); return true; }));
    const nodes = ups.map((u) => `"127.0.0.1:${u.port}": 1`).join(', ');
    gw = await startGateway(`routes:
  - { id: h, uri: /h, upstream: { type: chash, hash_on: header, key: x-user, nodes: { ${nodes} } } }
  - { id: c, uri: /c, upstream: { type: chash, hash_on: cookie, key: sid, nodes: { ${nodes} } } }
  - { id: v, uri: /v, upstream: { type: chash, key: arg_user, nodes: { ${nodes} } } }
`);
  });
  after(async () => { await gw.close(); for (const u of ups) await u.close(); });

  it('the same header value always reaches the same node; values spread', async () => {
    const seen = new Map<string, Set<string>>();
    for (let i = 0; i < 30; i++) {
      const user = `u${i % 10}`;
      const body = (await request(gw.port, '/h', { headers: { 'x-user': user } })).body;
      if (!seen.has(user)) seen.set(user, new Set());
      seen.get(user)!.add(body);
    }
    for (const [user, nodes] of seen) assert.equal(nodes.size, 1, user);
    assert.ok(new Set([...seen.values()].map((s) => [...s][0])).size > 1, 'more than one node used');
  });

  it('hash_on vars (the default): the same query argument always reaches the same node; values spread', async () => {
    const seen = new Map<string, Set<string>>();
    for (let i = 0; i < 30; i++) {
      const user = `u${i % 10}`;
      const body = (await request(gw.port, `/v?user=${user}`)).body;
      if (!seen.has(user)) seen.set(user, new Set());
      seen.get(user)!.add(body);
    }
    for (const [user, nodes] of seen) assert.equal(nodes.size, 1, user);
    assert.ok(new Set([...seen.values()].map((s) => [...s][0])).size > 1, 'more than one node used');
  });

  it('the same cookie reaches the same node', async () => {
    const bodies = new Set<string>();
    for (let i = 0; i < 5; i++) bodies.add((await request(gw.port, '/c', { headers: { cookie: 'theme=dark; sid=abc123' } })).body);
    assert.equal(bodies.size, 1);
  });
});
