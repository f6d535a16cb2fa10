/**
 * Every regular expression a config supplies is compiled here, on V8's
 * linear-time engine (the `l` flag): its run time grows with the input, never
 * exponentially, so no pattern such as `^/api/(a+)+$` can stall the event
 * loop. Patterns that need backtracking (backreferences, lookaround) are
 * refused at load, with the place they were written.
 */
import { setFlagsFromString } from 'node:v8';

let linearEngine = false;

/**
 * Compiles `pattern` to run in linear time; `where` names it in the error
 * (`regex_uri[0]`, say) thrown when it is invalid or needs backtracking.
 * `flags` may hold g, m, s (the engine has no i or u; APISIX matches
 * case-sensitively too: write `[Aa]` where case must not matter).
 */
export function compileRegex(pattern: string, where: string, flags = ''): RegExp {
  if (!/^[gms]*$/.test(flags)) throw new Error(`compileRegex: flags "${flags}" are not supported (only g, m, s)`);
  if (!linearEngine) {
    // The engine is in every Node 24 V8 but behind a flag; it only adds the `l` flag.
    setFlagsFromString('--enable-experimental-regexp-engine');
    linearEngine = true;
  }
  try {
    return new RegExp(pattern, flags + 'l');
  } catch (err) {
    try {
      new RegExp(pattern, flags);
    } catch (syntax) {
      throw new Error(`${where} is not a valid regular expression: ${(syntax as Error).message}`, { cause: syntax });
    }
    throw new Error(`${where}: ${JSON.stringify(pattern)} cannot run in linear time (backreferences, lookaround and repetition counts in the hundreds are not supported: a pattern that backtracks lets one request stall the gateway)`, { cause: err });
  }
}
