/**
 * The migration tally: runs real files through the real command, as a new
 * user would. DIR/apisix/*.y{a,}ml go through `turnpike validate`, DIR/kong/*
 * through `turnpike import` (then `validate` on its output). The corpus stays
 * outside the repository (third-party files); this only reads it.
 *
 *   node_modules/.bin/node scripts/corpus.ts DIR [--verbose]
 *
 * A crash is an exit code other than 0/1 (2 for a file import refuses as
 * neither format), or a stderr line that is not a positioned message.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { KONG_PLUGINS } from '../src/config/import/kong-plugins.ts';

const BIN = fileURLToPath(new URL('../bin/turnpike.js', import.meta.url));
const [dir, flag] = process.argv.slice(2);
if (!dir) {
  process.stderr.write('usage: node scripts/corpus.ts DIR [--verbose]  (DIR/apisix/*.yaml, DIR/kong/*.yaml)\n');
  process.exit(2);
}
const verbose = flag === '--verbose';
const scratch = mkdtempSync(path.join(tmpdir(), 'turnpike-corpus-'));

function run(args: string[], cwd: string): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stderr: r.stderr };
}

function files(sub: string): string[] {
  try {
    return readdirSync(path.join(dir, sub)).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => path.join(dir, sub, f));
  } catch {
    return [];
  }
}

/** stderr lines that are not `file:line[:col]: …` and not the command's summary line. */
function unpositioned(stderr: string, name: string): string[] {
  return stderr.split('\n').filter((l) => l !== '' && !l.startsWith(`${name}:`) && !/^\s/.test(l))
    .concat(stderr.split('\n').filter((l) => l.startsWith(`${name}: `) && !/^[^:]+: (ok|\d+ errors?|imported as)/.test(l)));
}

/** An error line without the file position and quoted names, to count kinds across files. */
const kind = (line: string) => line.replace(/^[^:]+:\d+(:\d+)?: /, '').replace(/^[\w.[\]-]+: (?=(plugin|unknown|warning|route|upstream|service|consumer|this))/, '')
  .replace(/ \(known: [^)]*\)/, '').replace(/ \(used in \d+ places[^)]*\)/, '').replace(/\[\d+\]/g, '[]').slice(0, 160);

const tally = { apisix: { total: 0, ok: 0, okWarn: 0, crash: [] as string[] }, kong: { total: 0, exit0: 0, mappable: 0, mappableExit0: 0, crash: [] as string[], invalidOutput: [] as string[] } };
const kinds = new Map<string, Set<string>>();
const note = (k: string, file: string) => { if (!kinds.has(k)) kinds.set(k, new Set()); kinds.get(k)!.add(file); };

/** One `validate` for every file (a process per file costs seconds on a loaded machine); per file again if that one crashed. */
function validateAll(list: string[]): Map<string, { code: number | null; stderr: string }> {
  const out = new Map<string, { code: number | null; stderr: string }>();
  const byDir = path.dirname(list[0] ?? '.');
  const names = list.map((f) => path.basename(f));
  const all = names.length ? run(['validate', ...names], byDir) : { code: 0, stderr: '' };
  const stray = all.stderr.split('\n').filter((l) => l !== '' && !names.some((n) => l.startsWith(`${n}:`)));
  if ((all.code === 0 || all.code === 1) && !stray.length) {
    for (const n of names) {
      const mine = all.stderr.split('\n').filter((l) => l.startsWith(`${n}:`));
      out.set(n, { code: mine.some((l) => l.startsWith(`${n}: `) && /^[^:]+: \d+ errors?$/.test(l)) ? 1 : 0, stderr: mine.map((l) => `${l}\n`).join('') });
    }
    return out;
  }
  for (const n of names) out.set(n, run(['validate', n], byDir));
  return out;
}

const results = validateAll(files('apisix'));
for (const [name, r] of results) {
  tally.apisix.total++;
  const odd = unpositioned(r.stderr, name);
  if ((r.code !== 0 && r.code !== 1) || odd.length) tally.apisix.crash.push(`${name}: exit ${r.code}: ${odd.join(' | ') || r.stderr.slice(0, 300)}`);
  if (r.code === 0) { tally.apisix.ok++; if (r.stderr) tally.apisix.okWarn++; }
  const errors = r.stderr.split('\n').filter((l) => l.startsWith(`${name}:`) && !/: warning: /.test(l) && !/^[^:]+: \d+ errors?$/.test(l));
  for (const e of errors) note(`apisix error: ${kind(e)}`, name);
  if (verbose) process.stdout.write(`--- ${name}: exit ${r.code}\n${r.stderr}`);
}

for (const file of files('kong')) {
  const name = path.basename(file);
  tally.kong.total++;
  const plugins: string[] = [];
  try {
    // Every `plugins:` list, at any depth (services, routes, consumers, the top level).
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) { v.forEach(walk); return; }
      if (!v || typeof v !== 'object') return;
      for (const [key, x] of Object.entries(v)) {
        if (key === 'plugins' && Array.isArray(x)) for (const p of x) if (p && typeof p === 'object' && typeof (p as { name?: unknown }).name === 'string') plugins.push((p as { name: string }).name);
        walk(x);
      }
    };
    walk(parse(readFileSync(file, 'utf8')));
  } catch { /* the command reports it */ }
  const mappable = plugins.every((p) => p in KONG_PLUGINS);
  if (mappable) tally.kong.mappable++;
  const out = path.join(scratch, `${name}.gateway.yaml`);
  const r = run(['import', path.resolve(file), '-o', out], scratch);
  const odd = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith(`${path.resolve(file)}:`));
  if ((r.code !== 0 && r.code !== 1 && r.code !== 2) || odd.length) tally.kong.crash.push(`${name}: exit ${r.code}: ${odd.join(' | ')}`);
  if (r.code === 0) { tally.kong.exit0++; if (mappable) tally.kong.mappableExit0++; }
  if (r.code === 0 || r.code === 1) {
    const v = run(['validate', out], scratch);
    if (v.code !== 0) tally.kong.invalidOutput.push(`${name}: ${v.stderr.slice(0, 300)}`);
  }
  for (const l of r.stderr.split('\n').filter((x) => / not carried over: /.test(x))) note(`kong dropped${mappable ? ' (only mappable plugins)' : ''}: ${kind(l.replace(/^.*? not carried over: /, ''))}`, name);
  if (r.code === 2) note(`kong refused: ${kind(r.stderr.split('\n')[0].replace(/^.*?: /, ''))}`, name);
  if (verbose) process.stdout.write(`--- ${name}: exit ${r.code}, plugins: ${[...new Set(plugins)].join(', ') || '-'}\n${r.stderr}`);
}
rmSync(scratch, { recursive: true, force: true });

const a = tally.apisix, k = tally.kong;
process.stdout.write(`APISIX: ${a.ok}/${a.total} validate unchanged (exit 0; ${a.okWarn} of them with warnings); crashes: ${a.crash.length}\n`);
for (const c of a.crash) process.stdout.write(`  crash: ${c}\n`);
process.stdout.write(`Kong: ${k.exit0}/${k.total} import with exit 0; ${k.mappableExit0}/${k.mappable} of the files whose plugins all have a mapping; crashes: ${k.crash.length}; outputs failing validate: ${k.invalidOutput.length}\n`);
for (const c of [...k.crash, ...k.invalidOutput]) process.stdout.write(`  ${c}\n`);
process.stdout.write('What stopped files, by how many files:\n');
for (const [msg, set] of [...kinds].sort((x, y) => y[1].size - x[1].size || x[0].localeCompare(y[0]))) {
  process.stdout.write(`  ${String(set.size).padStart(3)}  ${msg}${verbose ? `  [${[...set].join(', ')}]` : ''}\n`);
}
