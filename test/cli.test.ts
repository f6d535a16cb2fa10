/** The CLI as a user runs it: exit codes, printed errors, start and graceful stop. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, request } from './helpers/harness.ts';
import { tooOld } from '../bin/node-version.js';

const BIN = fileURLToPath(new URL('../bin/turnpike.js', import.meta.url));

function run(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, TURNPIKE_CONFIG: '' } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('Node version check (bin/node-version.js, plain JS for any Node)', () => {
  const cases = [
    { desc: 'Node 20 is refused with one line', version: '20.20.2', want: /^turnpike: Node 20\.20\.2 found, Node 24 or later needed: run it as `npx turnpike …` or `npm start` after `npm ci` \(they use the bundled Node 24\), or install Node 24$/ },
    { desc: 'Node 22 is refused', version: '22.12.0', want: /Node 22\.12\.0 found/ },
    { desc: 'Node 24 runs', version: '24.21.0', want: undefined },
    { desc: 'Node 26 runs', version: '26.0.0', want: undefined },
    { desc: 'garbage is refused', version: 'x', want: /Node x found/ },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const got = tooOld(c.version);
      if (c.want) assert.match(got ?? '', c.want);
      else assert.equal(got, undefined);
    });
  }
});

describe('turnpike CLI', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'turnpike-cli-'));
    await writeFile(path.join(dir, 'good.yaml'), 'listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nroutes:\n  - id: hi\n    uri: /hi\n    plugins:\n      mocking: { response_example: hello }\n');
    await writeFile(path.join(dir, 'bad.yaml'), 'routes:\n  - id: hi\n    uri: /hi\n    service_id: missing\n  - id: two\n    uri: 2\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const cases: { desc: string; args: string[]; want: { code: number; stdout?: RegExp; stderr?: string | RegExp } }[] = [
    { desc: 'validate: valid file', args: ['validate', 'good.yaml'], want: { code: 0, stdout: /^good\.yaml: ok \(1 routes, sha256 [0-9a-f]{12}\)\n$/ } },
    { desc: 'validate: invalid file prints every error', args: ['validate', 'bad.yaml'], want: { code: 1, stderr: 'bad.yaml:4:17: routes[0].service_id: service "missing" is not defined in services\nbad.yaml:6:10: routes[1].uri: must be of type string\nbad.yaml: 2 errors\n' } },
    { desc: 'validate: several files, one invalid', args: ['validate', 'good.yaml', 'bad.yaml'], want: { code: 1, stdout: /good\.yaml: ok/ } },
    { desc: 'validate: missing file', args: ['validate', 'nope.yaml'], want: { code: 1, stderr: /nope\.yaml:0:0: file not found/ } },
    { desc: 'validate: no file is a usage error', args: ['validate'], want: { code: 2, stderr: /^validate needs one or more files/ } },
    { desc: 'unknown command', args: ['serve'], want: { code: 2, stderr: /^unknown command "serve"/ } },
    { desc: 'start: invalid file does not serve', args: ['start', '-c', 'bad.yaml'], want: { code: 1, stderr: /bad\.yaml:6:10: routes\[1\]\.uri: must be of type string\nturnpike: bad\.yaml is not valid; not starting/ } },
    { desc: 'start: unknown option', args: ['start', '--port', '1'], want: { code: 2, stderr: /^unknown option "--port"\nusage: turnpike start/ } },
    { desc: 'start: -c with no value', args: ['start', '-c'], want: { code: 2, stderr: /^option "--config" needs a value\n/ } },
    { desc: 'start: --no-watch takes no value', args: ['start', '--no-watch=yes'], want: { code: 2, stderr: /^option "--no-watch" takes no value\n/ } },
    { desc: 'start: --workers 0', args: ['start', '-c', 'good.yaml', '--workers', '0'], want: { code: 2, stderr: /^option "--workers" needs a whole number from 1 to 1024, not "0"\nusage: turnpike start/ } },
    { desc: 'start: --workers not a number', args: ['start', '-c', 'good.yaml', '--workers', 'many'], want: { code: 2, stderr: /^option "--workers" needs a whole number from 1 to 1024, not "many"\n/ } },
    { desc: 'start: a stray argument', args: ['start', 'gateway.yaml'], want: { code: 2, stderr: /^unexpected argument: "gateway\.yaml"\n/ } },
    { desc: 'no command', args: [], want: { code: 2, stderr: /^no command given\nusage:\n  turnpike start/ } },
    { desc: '--version', args: ['--version'], want: { code: 0, stdout: /^turnpike \d+\.\d+\.\d+ \(node v24\.\d+\.\d+\)\n$/ } },
    { desc: '--help', args: ['--help'], want: { code: 0, stdout: /^usage:\n  turnpike start .*\n  turnpike validate FILE\.\.\.\n/ } },
    { desc: 'start --help', args: ['start', '--help'], want: { code: 0, stdout: /^usage: turnpike start \[--config\|-c FILE\] \[--no-watch\] \[--workers N\]\n\nServe FILE/ } },
    { desc: 'validate -h (even with files)', args: ['validate', '-h', 'bad.yaml'], want: { code: 0, stdout: /^usage: turnpike validate FILE\.\.\.\n\nCheck each FILE/ } },
    { desc: 'help validate', args: ['help', 'validate'], want: { code: 0, stdout: /^usage: turnpike validate FILE/ } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const r = await run(c.args, dir);
      assert.equal(r.code, c.want.code, r.stderr);
      if (c.want.stdout) assert.match(r.stdout, c.want.stdout);
      if (typeof c.want.stderr === 'string') assert.equal(r.stderr, c.want.stderr);
      else if (c.want.stderr) assert.match(r.stderr, c.want.stderr);
    });
  }

  it('start on a port in use exits 1 instead of hanging', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await writeFile(path.join(dir, 'busy.yaml'), `listen: 127.0.0.1:${port}\nadmin: { enabled: false }\nroutes:\n  - { id: fn, uri: /fn, plugins: { pre-function: { functions: ["return () => {}"] } } }\n`);
      const r = await run(['start', '-c', 'busy.yaml'], dir);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^turnpike: cannot start: listen EADDRINUSE/);
    } finally {
      blocker.close();
    }
  });

  it('start serves, reloads on SIGHUP, then exits 0 on SIGTERM', async () => {
    await writeFile(path.join(dir, 'hup.yaml'), await readFile(path.join(dir, 'good.yaml')));
    const p = spawn(process.execPath, [BIN, 'start', '--config', 'hup.yaml', '--no-watch'], { cwd: dir });
    let out = '';
    const port = await new Promise<number>((resolve, reject) => {
      p.stdout.on('data', (d) => {
        out += d;
        const m = /"msg":"turnpike started","listen":"127\.0\.0\.1:(\d+)"/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      p.on('close', () => reject(new Error(`exited early: ${out}`)));
    });
    const res = await request(port, '/hi');
    assert.deepEqual([res.status, res.body], [200, 'hello']);
    await writeFile(path.join(dir, 'hup.yaml'), (await readFile(path.join(dir, 'good.yaml'), 'utf8')).replace('hello', 'reloaded'));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await request(port, '/hi')).body, 'hello', '--no-watch: no reload without a signal');
    p.kill('SIGHUP');
    await eventually(async () => (await request(port, '/hi')).body === 'reloaded');
    // Log lines are written in batches: the new config may serve before its line is out.
    await eventually(() => /"msg":"config reloaded","result":"success","reason":"SIGHUP"/.test(out));
    const code = await new Promise<number | null>((resolve) => { p.on('close', resolve); p.kill('SIGTERM'); });
    assert.equal(code, 0);
    assert.match(out, /"msg":"shutting down","signal":"SIGTERM"/);
  });
});
