import { loadConfigText, formatIssues } from '../src/config/load.ts';
import { FunctionPools } from '../src/serverless/pool.ts';
const fp = new FunctionPools();
const cases: Record<string,string> = {
 env: 'routes:\n  - id: a\n    uri: /a\n    upstream:\n      nodes: { "127.0.0.1:${{PORT}}": 1 }\n',
 yaml: 'routes:\n  - id: a\n    uri: /a\n   bad: [\n',
 unknownField: 'routes:\n  - id: a\n    uri: /a\n    urll: /b\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n',
 badType: 'routes:\n  - id: a\n    uri: 42\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n',
 badNodes: 'routes:\n  - id: a\n    uri: /a\n    upstream: { nodes: [] }\n',
 missingService: 'routes:\n  - id: a\n    uri: /a\n    service_id: nope\n',
 unknownPlugin: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      no-such: {}\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n',
 pluginSchema: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      mocking: { response_status: "x" }\n',
 dup: 'upstreams:\n  - id: u\n    nodes: { "127.0.0.1:80": 1 }\n  - id: u\n    nodes: { "127.0.0.1:81": 1 }\nroutes:\n  - id: a\n    uri: /a\n    upstream_id: u\n',
 noUpstream: 'routes:\n  - id: a\n    uri: /a\n',
 empty: '# nothing\n',
 bothUri: 'routes:\n  - id: a\n    uri: /a\n    uris: [/b]\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n',
 noUri: 'routes:\n  - id: a\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n',
 disabled: 'serverless: { enabled: false }\nroutes:\n  - id: a\n    uri: /a\n    plugins:\n      pre-function: { functions: ["return () => {}"] }\n',
 badFn: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      serverless-pre-function:\n        functions:\n          - |\n            let x = 1;\n            return function ( {\n            }\n',
 notFn: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      serverless-pre-function:\n        functions: ["return 42"]\n',
 kongEmpty: 'routes:\n  - id: a\n    uri: /a\n    plugins:\n      pre-function: {}\n',
 rewriteBoth: 'routes:\n  - id: a\n    uri: /a\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n    plugins:\n      proxy-rewrite: { uri: /x, regex_uri: ["a", "b"] }\n',
 list: '- a\n- b\n',
 dupKey: 'consumers:\n  - username: a\n    plugins: { key-auth: { key: k } }\n  - username: b\n    plugins: { key-auth: { key: k } }\nroutes:\n  - id: a\n    uri: /a\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n',
 badPath: 'plugin_paths: [./missing]\nroutes:\n  - id: a\n    uri: /a\n    upstream: { nodes: { "127.0.0.1:80": 1 } }\n',
};
for (const [k, t] of Object.entries(cases)) {
  const r = await loadConfigText(t, '/tmp/x/gateway.yaml', { env: {}, functions: (s) => fp.host(s) });
  console.log(`--- ${k}:`, r.ok ? 'OK' : '\n' + formatIssues(r.issues));
}
await fp.close();
