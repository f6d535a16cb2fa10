/** Header names and values in plugin configs: checked at load, with their position (the request path would fail on them). */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatIssues, loadConfigText } from '../src/config/load.ts';
import { FunctionPools } from '../src/serverless/pool.ts';
import './helpers/harness.ts';

const pools = new FunctionPools();
after(() => pools.close());
const load = (text: string) => loadConfigText(text, 'gateway.yaml', { env: {}, functions: (s) => pools.host(s) });
const route = (plugins: string) => `routes:\n  - id: a\n    uri: /a\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n    plugins:\n${plugins}`;

const cases: { desc: string; conf: string; want: string }[] = [
  { desc: 'proxy-rewrite: CR/LF in a set value', conf: route('      proxy-rewrite: { headers: { set: { x-a: "v\\r\\nx-evil: 1" } } }\n'),
    want: 'gateway.yaml:6:47: routes[0].plugins.proxy-rewrite.headers.set.x-a: plugin proxy-rewrite: "v\\r\\nx-evil: 1" is not a valid header value (no CR, LF or other control characters)' },
  { desc: 'proxy-rewrite: a space in an added name', conf: route('      proxy-rewrite: { headers: { add: { "x a": "1" } } }\n'),
    want: 'gateway.yaml:6:42: routes[0].plugins.proxy-rewrite.headers.add.x a: plugin proxy-rewrite: "x a" is not a valid header name (letters, digits and !#$%&\'*+-.^_`|~ only; no spaces)' },
  { desc: 'proxy-rewrite: a colon in a removed name', conf: route('      proxy-rewrite: { headers: { remove: ["x:y"] } }\n'),
    want: 'gateway.yaml:6:44: routes[0].plugins.proxy-rewrite.headers.remove[0]: plugin proxy-rewrite: "x:y" is not a valid header name (letters, digits and !#$%&\'*+-.^_`|~ only; no spaces)' },
  { desc: 'proxy-rewrite: LF in host', conf: route('      proxy-rewrite: { host: "a\\nb" }\n'),
    want: 'gateway.yaml:6:30: routes[0].plugins.proxy-rewrite.host: plugin proxy-rewrite: "a\\nb" is not a valid header value (no CR, LF or other control characters)' },
  { desc: 'response-rewrite: NUL in a value', conf: route('      response-rewrite: { headers: { set: { x-a: "a\\0b" } } }\n'),
    want: 'gateway.yaml:6:50: routes[0].plugins.response-rewrite.headers.set.x-a: plugin response-rewrite: "a\\u0000b" is not a valid header value (no CR, LF or other control characters)' },
  { desc: 'mocking: a space in a response header name', conf: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      mocking: { response_headers: { "bad name": x } }\n',
    want: 'gateway.yaml:5:38: routes[0].plugins.mocking.response_headers.bad name: plugin mocking: "bad name" is not a valid header name (letters, digits and !#$%&\'*+-.^_`|~ only; no spaces)' },
  { desc: 'mocking: LF in content_type', conf: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      mocking: { content_type: "text/plain\\nx: y" }\n',
    want: 'gateway.yaml:5:32: routes[0].plugins.mocking.content_type: plugin mocking: "text/plain\\nx: y" is not a valid header value (no CR, LF or other control characters)' },
  { desc: 'key-auth: a space in the header it reads', conf: route('      key-auth: { header: "api key" }\n'),
    want: 'gateway.yaml:6:27: routes[0].plugins.key-auth.header: plugin key-auth: "api key" is not a valid header name (letters, digits and !#$%&\'*+-.^_`|~ only; no spaces)' },
  { desc: 'redirect: LF in the location', conf: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      redirect: { uri: "/b\\r\\nset-cookie: x=1" }\n',
    want: 'gateway.yaml:5:24: routes[0].plugins.redirect.uri: plugin redirect: "/b\\r\\nset-cookie: x=1" is not a valid header value (no CR, LF or other control characters)' },
  { desc: 'cors: LF in expose_headers', conf: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      mocking: {}\n      cors: { expose_headers: "x-a\\nx-b" }\n',
    want: 'gateway.yaml:6:31: routes[0].plugins.cors.expose_headers: plugin cors: "x-a\\nx-b" is not a valid header value (no CR, LF or other control characters)' },
];

describe('header names and values are checked at load', () => {
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await load(c.conf);
      assert.equal(res.ok ? '' : formatIssues(res.issues), c.want);
    });
  }

  it('accepts valid names and values, tabs and obs-text included', async () => {
    const res = await load(route('      proxy-rewrite: { host: a.example, headers: { set: { "x-a!#$": "v\\tw é", x-n: 5 }, remove: [x-b] } }\n      response-rewrite: { headers: { add: { x-c: "" } } }\n'));
    assert.equal(res.ok ? '' : formatIssues(res.issues), '');
  });
});
