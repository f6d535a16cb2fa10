/**
 * The package a user installs: what `npm pack` ships, and the JavaScript build
 * it runs (Node does not strip types under node_modules, so the package runs
 * dist/, built by `npm run build` at pack time).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { request } from './helpers/harness.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);

describe('package', () => {
  // Inside the repo, so the build resolves node_modules as an installed package does.
  const out = path.join(ROOT, `.build-test-${process.pid}`);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'turnpike-pkg-'));
    await run(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json', '--outDir', out], { cwd: ROOT });
  });
  after(async () => {
    await rm(out, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  it('npm pack ships the CLI, the build, the bundled config and the license; no tests, bench or CI', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT });
    const files: string[] = JSON.parse(stdout)[0].files.map((f: { path: string }) => f.path);
    for (const want of ['bin/turnpike.js', 'bin/node-version.js', 'gateway.yaml', 'LICENSE', 'CHANGELOG.md', 'README.md', 'package.json']) assert.ok(files.includes(want), want);
    assert.deepEqual(files.filter((f) => /^(test|bench|\.ci|src|examples)\//.test(f) || f.endsWith('.ts')), []);
  });

  it('the built JavaScript validates the bundled gateway.yaml', async () => {
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', `const { main } = await import(${JSON.stringify(path.join(out, 'src/cli.js'))}); process.exitCode = await main(['validate', 'gateway.yaml']);`], { cwd: ROOT });
    assert.match(stdout, /^gateway\.yaml: ok \(\d+ routes, sha256 [0-9a-f]{12}\)\n$/);
  });

  it('the built JavaScript serves, a serverless function included', async () => {
    await writeFile(path.join(dir, 'g.yaml'), `listen: 127.0.0.1:0
admin: { enabled: false }
routes:
  - id: greet
    uri: /greet
    plugins:
      pre-function:
        functions: ["return (conf, ctx) => ({ status: 200, body: 'Hello ' + ctx.request.query.name })"]
`);
    const p = spawn(process.execPath, ['--input-type=module', '-e', `const { main } = await import(${JSON.stringify(path.join(out, 'src/cli.js'))}); await main(['start', '-c', 'g.yaml', '--no-watch']);`], { cwd: dir });
    try {
      let log = '';
      const port = await new Promise<number>((resolve, reject) => {
        p.stdout.on('data', (d) => {
          log += d;
          const m = /"msg":"turnpike started","listen":"127\.0\.0\.1:(\d+)"/.exec(log);
          if (m) resolve(Number(m[1]));
        });
        p.on('close', () => reject(new Error(`exited: ${log}`)));
      });
      const res = await request(port, '/greet?name=dist');
      assert.deepEqual([res.status, res.body], [200, 'Hello dist']);
    } finally {
      p.kill('SIGKILL');
    }
  });
});
