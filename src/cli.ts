/**
 * `turnpike start [-c FILE]` and `turnpike validate FILE...`.
 * Exit codes: 0 ok, 1 invalid config, 2 usage.
 */
import path from 'node:path';
import { formatIssues, loadConfigFile } from './config/load.ts';
import { flushLogs, log } from './log.ts';
import { FunctionPools } from './serverless/pool.ts';
import { ConfigRejected, Gateway } from './runtime/gateway.ts';

const USAGE = `usage:
  turnpike start [--config|-c FILE] [--no-watch]
                                        serve FILE (default: $TURNPIKE_CONFIG or ./gateway.yaml), reloading it
                                        when it changes (unless --no-watch) and on SIGHUP
  turnpike validate FILE...             check files as a reload would; exit 1 if any is invalid`;

/** Runs the CLI; resolves with the exit code (start resolves only on failure to start). */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === 'validate') return validate(rest);
  if (cmd === 'start') return start(rest);
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') { process.stdout.write(USAGE + '\n'); return 0; }
  process.stderr.write(`${cmd ? `unknown command "${cmd}"` : 'no command given'}\n${USAGE}\n`);
  return 2;
}

async function validate(files: string[]): Promise<number> {
  if (files.length === 0 || files.some((f) => f.startsWith('-'))) {
    process.stderr.write(`validate needs one or more files\n${USAGE}\n`);
    return 2;
  }
  const functions = new FunctionPools();
  let bad = 0;
  try {
    for (const file of files) {
      const res = await loadConfigFile(path.resolve(file), { functions: (s) => functions.host(s) });
      if (res.ok) process.stdout.write(`${file}: ok (${res.snapshot.routes.length} routes, sha256 ${res.hash.slice(0, 12)})\n`);
      else {
        bad++;
        process.stderr.write(`${formatIssues(res.issues)}\n${file}: ${res.issues.length} error${res.issues.length === 1 ? '' : 's'}\n`);
      }
    }
  } finally {
    await functions.close();
  }
  return bad ? 1 : 0;
}

async function start(args: string[]): Promise<number> {
  let config = process.env.TURNPIKE_CONFIG || 'gateway.yaml';
  let watch = true;
  for (let i = 0; i < args.length; i++) {
    if ((args[i] === '-c' || args[i] === '--config') && args[i + 1]) config = args[++i];
    else if (args[i] === '--no-watch') watch = false;
    else if (args[i].startsWith('--config=')) config = args[i].slice(9);
    else { process.stderr.write(`unknown option "${args[i]}"\n${USAGE}\n`); return 2; }
  }
  const file = path.resolve(config);
  let gw: Gateway;
  try {
    gw = await Gateway.start({ config: file, watch });
  } catch (err) {
    if (err instanceof ConfigRejected) {
      process.stderr.write(`${formatIssues(err.issues)}\nturnpike: ${path.relative(process.cwd(), file) || file} is not valid; not starting\n`);
      return 1;
    }
    process.stderr.write(`turnpike: cannot start: ${(err as Error).message}\n`);
    return 1;
  }
  process.on('SIGHUP', () => { void gw.reload('SIGHUP'); });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'shutting down', { signal });
    void gw.close(10_000).then(() => { flushLogs(); process.exit(0); });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return new Promise<number>(() => {});
}
