/** Loading plugin modules: malformed ones are refused with their file and what is missing. */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatIssues, loadConfigText } from '../src/config/load.ts';
import { builtinPlugins } from '../src/config/plugins.ts';
import { FunctionPools } from '../src/serverless/pool.ts';
import { Gateway } from '../src/runtime/gateway.ts';
import { captureLogs, request } from './helpers/harness.ts';

const pools = new FunctionPools();
after(() => pools.close());

const modules: { desc: string; file: string; src: string; want: string }[] = [
  { desc: 'no default export', file: 'a.js', src: 'export const x = 1;', want: 'plugin file plugins/a.js has no default export (export default definePlugin({...}))' },
  { desc: 'name does not match file', file: 'b.js', src: "export default { name: 'other', version: '1', priority: 1, schema: {}, phases: {} };", want: 'plugin file plugins/b.js is named "other" but its file is "b.js": use the same name for both' },
  { desc: 'no priority', file: 'c.js', src: "export default { name: 'c', version: '1', schema: {}, phases: {} };", want: 'plugin file plugins/c.js needs "priority", a number' },
  { desc: 'unknown phase', file: 'd.js', src: "export default { name: 'd', version: '1', priority: 1, schema: {}, phases: { balancer() {} } };", want: 'plugin file plugins/d.js has unknown phase "balancer" (phases: rewrite, access, before_proxy, header_filter, body_filter, log)' },
  { desc: 'syntax error', file: 'e.js', src: 'export default {', want: 'plugin file plugins/e.js could not be loaded: ' },
  { desc: 'loops forever at import', file: 'g.js', src: 'while (true) {}\nexport default {};', want: 'plugin file plugins/g.js did not finish loading within 2000 ms (an endless loop at import?)' },
  { desc: 'throws at import', file: 'h.js', src: "throw new Error('no config for h');\nexport default {};", want: 'plugin file plugins/h.js could not be loaded: no config for h' },
  { desc: 'ends the process at import', file: 'i.js', src: 'process.exit(3);\nexport default {};', want: 'plugin file plugins/i.js ended the process while loading (exit code 3)' },
  { desc: 'a rejected top-level await', file: 'j.mjs', src: "await Promise.reject(new Error('later'));\nexport default {};", want: 'plugin file plugins/j.mjs could not be loaded: later' },
  { desc: 'a TypeScript plugin loads', file: 'f.ts', src: "const p: { name: string } & Record<string, unknown> = { name: 'f', version: '1', priority: 1, schema: {}, phases: {} };\nexport default p;", want: '' },
];

describe('plugin modules', () => {
  for (const m of modules) {
    it(m.desc, async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'turnpike-plugins-'));
      try {
        await mkdir(path.join(dir, 'plugins'));
        await writeFile(path.join(dir, 'plugins', m.file), m.src);
        const res = await loadConfigText('plugin_paths: [./plugins]\nroutes:\n  - { id: a, uri: /a, plugins: { mocking: {} } }\n', path.join(dir, 'gateway.yaml'), { env: {}, functions: (s) => pools.host(s), pluginImportTimeoutMs: m.desc.startsWith('loops') ? 2000 : undefined });
        const text = res.ok ? '' : formatIssues(res.issues);
        if (m.want === '') assert.equal(text, '');
        else assert.ok(text.includes(`plugin_paths[0]: ${m.want}`), text);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  it('a reload with a plugin that loops at import is rejected while traffic keeps being served', async () => {
    const logs = captureLogs();
    const dir = await mkdtemp(path.join(tmpdir(), 'turnpike-plugins-'));
    const file = path.join(dir, 'gateway.yaml');
    await writeFile(file, 'listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nroutes:\n  - { id: a, uri: /a, plugins: { mocking: { response_example: good } } }\n');
    const gw = await Gateway.start({ config: file, env: {}, watch: false, pluginImportTimeoutMs: 2000 });
    try {
      await mkdir(path.join(dir, 'plugins'));
      await writeFile(path.join(dir, 'plugins', 'spin.js'), 'while (true) {}\nexport default {};');
      await writeFile(file, `listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nplugin_paths: [./plugins]\nroutes:\n  - { id: a, uri: /a, plugins: { mocking: { response_example: new } } }\n`);
      const reload = gw.reload('test');
      // The probe thread spins; the main thread still answers.
      assert.equal((await request(gw.port, '/a')).body, 'good');
      const res = await reload;
      assert.equal(res.ok, false);
      assert.match(res.ok ? '' : formatIssues(res.issues), /plugin_paths\[0\]: plugin file plugins\/spin\.js did not finish loading within 2000 ms/);
      assert.equal((await request(gw.port, '/a')).body, 'good');
    } finally {
      await gw.close(100);
      await rm(dir, { recursive: true, force: true });
      logs.restore();
    }
  });

  it('a reload with a plugin whose init never settles is rejected, naming it, and the next reload goes through', async () => {
    const logs = captureLogs();
    const dir = await mkdtemp(path.join(tmpdir(), 'turnpike-plugins-'));
    const file = path.join(dir, 'gateway.yaml');
    const conf = (plugins: string, body: string) => `listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nplugin_paths: [./plugins]\nroutes:\n  - { id: a, uri: /a, plugins: { ${plugins}mocking: { response_example: ${body} } } }\n`;
    await mkdir(path.join(dir, 'plugins'));
    await writeFile(path.join(dir, 'plugins', 'stuck.js'), "export default { name: 'stuck', version: '1', priority: 1, schema: {}, init: () => new Promise(() => {}), phases: {} };");
    // A thenable of its own that never calls back: bounded the same.
    await writeFile(path.join(dir, 'plugins', 'stuck2.js'), "export default { name: 'stuck2', version: '1', priority: 1, schema: {}, init: () => ({ then() {} }), phases: {} };");
    await writeFile(file, conf('', 'good'));
    const gw = await Gateway.start({ config: file, env: {}, watch: false, pluginImportTimeoutMs: 1000 });
    try {
      await writeFile(file, conf('stuck: {}, ', 'stuck'));
      const res = await gw.reload('test');
      assert.equal(res.ok, false);
      assert.match(res.ok ? '' : formatIssues(res.issues), /gateway\.yaml:5:34: routes\[0\]\.plugins\.stuck: plugin stuck: init did not finish within 1000 ms$/);
      assert.equal((await request(gw.port, '/a')).body, 'good');
      await writeFile(file, conf('stuck2: {}, ', 'stuck2'));
      const res2 = await gw.reload('test');
      assert.match(res2.ok ? '' : formatIssues(res2.issues), /routes\[0\]\.plugins\.stuck2: plugin stuck2: init did not finish within 1000 ms$/);
      assert.equal((await request(gw.port, '/a')).body, 'good');
      await writeFile(file, conf('', 'next'));
      assert.equal((await gw.reload('test')).ok, true);
      assert.equal((await request(gw.port, '/a')).body, 'next');
    } finally {
      await gw.close(100);
      await rm(dir, { recursive: true, force: true });
      logs.restore();
    }
  });

  it("a plugin whose check() or advice() throws is that plugin's error (or warning) at its place, not the whole file's", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'turnpike-plugins-'));
    try {
      await mkdir(path.join(dir, 'plugins'));
      await writeFile(path.join(dir, 'plugins', 'boom.js'), "export default { name: 'boom', version: '1', priority: 1, schema: { type: 'object' }, advice() { throw new Error('advice blew up'); }, check() { throw new Error('check blew up'); }, phases: {} };");
      const res = await loadConfigText('plugin_paths: [./plugins]\nroutes:\n  - { id: a, uri: /a, plugins: { boom: {}, mocking: {} } }\n', path.join(dir, 'gateway.yaml'), { env: {}, functions: (s) => pools.host(s) });
      assert.equal(res.ok, false);
      if (res.ok) return;
      assert.deepEqual([...res.warnings, ...res.issues].map((i) => `${i.line}:${i.col}: ${i.path}: ${i.message}`), [
        '3:34: routes[0].plugins.boom: plugin boom: advice() threw: advice blew up',
        '3:34: routes[0].plugins.boom: plugin boom: check() threw: check blew up',
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('built-ins honour the naming rules: file, name, schema $id, kebab-case', async () => {
    const plugins = await builtinPlugins();
    assert.deepEqual([...plugins.keys()].sort(), ['basic-auth', 'client-control', 'consumer-restriction', 'cors', 'file-logger', 'forward-auth', 'http-logger', 'ip-restriction', 'jwt-auth', 'key-auth', 'limit-conn', 'limit-count', 'limit-req', 'mocking', 'opa', 'openid-connect', 'opentelemetry', 'post-function', 'pre-function', 'prometheus', 'proxy-rewrite', 'real-ip', 'redirect', 'request-id', 'response-rewrite', 'serverless-post-function', 'serverless-pre-function']);
    for (const [name, p] of plugins) {
      assert.equal(p.schema.$id, name);
      const props = { ...(p.schema.properties ?? {}), ...(p.consumerSchema?.properties ?? {}), ...(p.metadataSchema?.properties ?? {}) } as Record<string, { description?: string }>;
      for (const [k, v] of Object.entries(props)) {
        assert.match(k, /^[a-z][a-z0-9_]*$/, `${name}.${k} is snake_case`);
        assert.ok(v.description, `${name}.${k} has a description`);
      }
    }
  });
});
