/**
 * Parse, the first stage of a load: text to data that keeps its positions,
 * `${{VAR}}` substituted. Every problem becomes a positioned issue.
 */
import { interpolate } from './interpolate.ts';
import type { IssueList } from './issues.ts';
import { offsetPosition, parseSource, sourceWithData, type ParsedSource } from './source.ts';

export interface ParseOptions {
  env: Readonly<Record<string, string | undefined>>;
  /** Parses YAML elsewhere (another thread); undefined when the text has errors or that failed. */
  parse?: (text: string) => Promise<{ data: unknown } | undefined>;
}

/** The parsed source, or undefined with the reasons added to `issues`. */
export async function parseConfig(text: string, issues: IssueList, opts: ParseOptions): Promise<ParsedSource | undefined> {
  if (!/^\s*[^\s#]/m.test(text)) {
    issues.at('GW_ERR_CONFIG_YAML', 1, 1, 'file is empty: a gateway needs at least one route');
    return undefined;
  }
  const { text: expanded, missing } = interpolate(text, opts.env);
  for (const m of missing) {
    const pos = offsetPosition(text, m.offset);
    issues.at('GW_ERR_CONFIG_ENV', pos.line, pos.col, `environment variable ${m.name} is not set and has no default (write \${{${m.name}:=default}} to give one)`);
  }
  const yamlText = missing.length ? text : expanded;
  const parsed = opts.parse && !missing.length ? await opts.parse(yamlText) : undefined;
  const src = parsed ? sourceWithData(yamlText, parsed.data) : parseSource(yamlText);
  for (const e of src.yamlErrors) issues.at('GW_ERR_CONFIG_YAML', e.line, e.col, `YAML: ${e.message}`);
  issues.placeWith(src);
  return issues.size ? undefined : src;
}
