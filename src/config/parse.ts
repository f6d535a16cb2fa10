/**
 * Parse, the first stage of a load: text to data that keeps its positions,
 * `${{VAR}}` substituted inside parsed values (yaml-read.js). Every problem
 * becomes a positioned issue.
 */
import type { IssueList } from './issues.ts';
import { parseSource, sourceWithData, type ParsedSource } from './source.ts';
import type { Env } from './yaml-read.js';

export interface ParseOptions {
  env: Env;
  /** Parses YAML elsewhere (another thread); undefined when the text has problems or that failed. */
  parse?: (text: string, env: Env) => Promise<{ data: unknown } | undefined>;
}

/** The parsed source, or undefined with the reasons added to `issues`. */
export async function parseConfig(text: string, issues: IssueList, opts: ParseOptions): Promise<ParsedSource | undefined> {
  if (!/^\s*[^\s#]/m.test(text)) {
    issues.at('GW_ERR_CONFIG_YAML', 1, 1, 'file is empty: a gateway needs at least one route');
    return undefined;
  }
  const parsed = opts.parse ? await opts.parse(text, opts.env) : undefined;
  const src = parsed ? sourceWithData(text, parsed.data, opts.env) : parseSource(text, opts.env);
  for (const e of src.yamlErrors) issues.at(e.env ? 'GW_ERR_CONFIG_ENV' : 'GW_ERR_CONFIG_YAML', e.line, e.col, e.env ? e.message : `YAML: ${e.message}`);
  issues.placeWith(src);
  return issues.size ? undefined : src;
}
