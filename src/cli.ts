/**
 * The `turnpike` command line. Each command declares its options once (for
 * node:util parseArgs) with its usage text. Exit codes: 0 ok, 1 invalid
 * config, 2 usage.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { importText } from './config/import/index.ts';
import { formatIssues, loadConfigFile, readConfigText } from './config/load.ts';
import { flushLogs, log } from './log.ts';
import { FunctionPools } from './serverless/pool.ts';
import { ConfigRejected } from './runtime/gateway.ts';
import { Host } from './runtime/supervisor.ts';
import { VERSION } from './version.ts';

type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | undefined>;

interface Command {
  /** One line per form, as shown in the general usage. */
  usage: string;
  /** What the command does, shown by `turnpike <command> --help`. */
  help: string;
  options: Options;
  /** Whether positional arguments are taken. */
  positionals: boolean;
  run(values: Values, positionals: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  start: {
    usage: 'turnpike start [--config|-c FILE] [--no-watch] [--workers N]',
    help: `Serve FILE (default: $TURNPIKE_CONFIG or ./gateway.yaml), reloading it when it
changes (unless --no-watch) and on SIGHUP. SIGTERM/SIGINT drain and exit 0.
An invalid FILE is never served: its errors are printed and the exit code is 1.

  -c, --config FILE   the gateway.yaml to serve
      --no-watch      reload on SIGHUP only
      --workers N     serve from N worker threads (overrides the file's workers: auto | N)`,
    options: { config: { type: 'string', short: 'c' }, 'no-watch': { type: 'boolean' }, workers: { type: 'string' } },
    positionals: false,
    run: (v) => start(v),
  },
  validate: {
    usage: 'turnpike validate FILE...',
    help: `Check each FILE exactly as a reload would; print every error with
file:line:column. Exit 1 if any FILE is invalid.`,
    options: {},
    positionals: true,
    run: (_v, files) => validate(files),
  },
  import: {
    usage: 'turnpike import FILE [--output|-o OUT]',
    help: `Turn a Kong declarative file (kong.yml, with _format_version) or an APISIX
apisix.yaml into a gateway.yaml, written to OUT or stdout. What could not be
carried over is listed with its line on stderr and as comments at the top of
the output; the output always passes \`turnpike validate\`.
Exit 0 when everything was carried over, 1 when something was not, 2 on usage
errors (and on a FILE that is neither format).

  -o, --output OUT    write the gateway.yaml here instead of stdout`,
    options: { output: { type: 'string', short: 'o' } },
    positionals: true,
    run: (v, files) => importFile(v, files),
  },
};

const GENERAL = `usage:
${Object.values(COMMANDS).map((c) => `  ${c.usage}`).join('\n')}
  turnpike --version
  turnpike [COMMAND] --help

Exit codes: 0 ok, 1 invalid config, 2 usage.`;

function usageError(message: string, cmd?: string): number {
  process.stderr.write(`${message}\n${cmd ? `usage: ${COMMANDS[cmd].usage}\n(turnpike ${cmd} --help for more)` : GENERAL}\n`);
  return 2;
}

/** parseArgs' messages, in the CLI's words: the option and what is wrong with it. */
function explain(err: Error & { code?: string }): string {
  // The quoted part is "-c, --config <value>" or "--port": name the long form.
  const quoted = /'([^']*)'/.exec(err.message)?.[1] ?? '';
  const opt = /--[\w-]+/.exec(quoted)?.[0] ?? quoted.split(/[ ,=]/)[0];
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option "${opt}"`;
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && /argument missing/.test(err.message)) return `option "${opt}" needs a value`;
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return `option "${opt}" takes no value`;
  if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `unexpected argument: ${err.message.replace(/^.*?'(.*?)'.*$/s, '"$1"')}`;
  return err.message;
}

/** Runs the CLI; resolves with the exit code (start resolves only on failure to start). */
export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--version' || first === '-v' || first === 'version') {
    process.stdout.write(`turnpike ${VERSION} (node ${process.version})\n`);
    return 0;
  }
  if (first === undefined) return usageError('no command given');
  if (first === '--help' || first === '-h' || first === 'help') {
    const topic = rest[0] && COMMANDS[rest[0]] ? rest[0] : undefined;
    process.stdout.write((topic ? commandHelp(topic) : GENERAL) + '\n');
    return 0;
  }
  const cmd = COMMANDS[first];
  if (!cmd) return usageError(`unknown command "${first}"`);
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({
      args: rest, strict: true, allowPositionals: cmd.positionals,
      options: { ...cmd.options, help: { type: 'boolean', short: 'h' } },
    }) as { values: Values; positionals: string[] };
  } catch (err) {
    return usageError(explain(err as Error & { code?: string }), first);
  }
  if (parsed.values.help) {
    process.stdout.write(commandHelp(first) + '\n');
    return 0;
  }
  return cmd.run(parsed.values, parsed.positionals);
}

function commandHelp(name: string): string {
  const c = COMMANDS[name];
  return `usage: ${c.usage}\n\n${c.help}\n  -h, --help          this text`;
}

async function validate(files: string[]): Promise<number> {
  if (files.length === 0) return usageError('validate needs one or more files', 'validate');
  const functions = new FunctionPools();
  let bad = 0;
  try {
    for (const file of files) {
      const res = await loadConfigFile(path.resolve(file), { functions: (s) => functions.host(s) });
      if (res.warnings.length) process.stderr.write(`${formatIssues(res.warnings)}\n`);
      if (res.ok) process.stdout.write(`${file}: ok (${res.snapshot.routes.length} routes, sha256 ${res.hash.slice(0, 12)}${res.warnings.length ? `, ${res.warnings.length} warning${res.warnings.length === 1 ? '' : 's'}` : ''})\n`);
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

async function importFile(values: Values, files: string[]): Promise<number> {
  if (files.length !== 1) return usageError('import needs exactly one FILE', 'import');
  const read = await readConfigText(path.resolve(files[0]));
  if ('issue' in read) return usageError(`${files[0]}: ${read.issue.message}`, 'import');
  const functions = new FunctionPools();
  try {
    const res = await importText(read.text, files[0], (s) => functions.host(s));
    if (!res.ok) return usageError(res.message, 'import');
    const out = values.output as string | undefined;
    if (out) await writeFile(out, res.output);
    else process.stdout.write(res.output);
    for (const d of res.dropped) process.stderr.write(`${files[0]}:${d.line}: not carried over: ${d.what}: ${d.why}\n`);
    for (const d of res.notes) process.stderr.write(`${files[0]}:${d.line}: note: ${d.what}: ${d.why}\n`);
    process.stderr.write(`${files[0]}: imported as ${res.format === 'kong' ? 'Kong' : 'APISIX'}${out ? ` into ${out}` : ''}; ${res.dropped.length ? `${res.dropped.length} item${res.dropped.length === 1 ? '' : 's'} not carried over` : 'everything carried over'}\n`);
    return res.dropped.length ? 1 : 0;
  } finally {
    await functions.close();
  }
}

async function start(values: Values): Promise<number> {
  const config = (values.config as string | undefined) || process.env.TURNPIKE_CONFIG || 'gateway.yaml';
  const file = path.resolve(config);
  const w = values.workers as string | undefined;
  if (w !== undefined && !/^[1-9]\d{0,3}$/.test(w)) return usageError(`option "--workers" needs a whole number from 1 to 1024, not "${w}"`, 'start');
  let gw: Host;
  try {
    gw = await Host.start({ config: file, watch: values['no-watch'] !== true, workers: w === undefined ? undefined : Math.min(1024, Number(w)) });
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
