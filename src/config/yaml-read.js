// How gateway.yaml text becomes data, shared by the main thread (source.ts)
// and the reload parser (parse-worker.js), which must follow the same rules:
// YAML errors, aliases without an anchor, aliases that contain themselves or
// expand past a bound, and `${{VAR}}` substituted inside parsed scalars (so a
// value is always exactly one scalar, whatever characters it holds), then
// APISIX's `$env://NAME` references.
// Never throws: every problem comes back with its character offset.
// @ts-check
import { isAlias, isCollection, isPair, isScalar, parseDocument } from 'yaml';

/** Options for yaml's parseDocument. */
// logLevel 'error': yaml's warnings (a mapping used as a key) would go to process.emitWarning, unpositioned; the checks report them at their line.
export const PARSE_OPTIONS = Object.freeze({ prettyErrors: false, uniqueKeys: true, merge: true, logLevel: 'error' });

/**
 * The most values a document may have once every alias is expanded: bounds
 * "billion laughs" bombs by what they would cost to walk (schema checks visit
 * every expanded value), while a 10,000-route file that reuses anchors in
 * every route stays far below it.
 */
export const MAX_EXPANDED_VALUES = 1_000_000;

/** `${{NAME}}` or `${{NAME:=default}}` (APISIX's syntax); JavaScript's `${name}` never matches. */
const VAR = /\$\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::=([^}\n]*))?\}\}/g;
const NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/;

/**
 * @typedef {{ offset: number, message: string, env?: boolean }} Problem
 * @typedef {Readonly<Record<string, string | undefined>>} Env
 * @typedef {{ doc: import('yaml').Document | undefined, problems: Problem[], data?: unknown, original: (offset: number) => number }} ReadResult
 * @typedef {{ name: string, dflt: string | undefined, at: number, len: number, from: number, to: number }} Token
 */

/**
 * Parses `text`: the document (for positions), its problems, and its data
 * when there are none.
 * @param {string} text
 * @param {Env} env
 * @returns {ReadResult}
 */
export function readYaml(text, env) {
  let doc;
  // `${{VAR}}` is masked before parsing (a `{` would end a plain value in a flow
  // mapping) and substituted inside the parsed values, never into the text.
  const { masked, tokens, original, marker } = mask(text);
  try {
    doc = parseDocument(masked, PARSE_OPTIONS);
    const at = (/** @type {Problem[]} */ problems) => problems.map((p) => ({ ...p, offset: original(p.offset) }));
    if (doc.errors.length) return { doc, original, problems: at(doc.errors.map((e) => ({ offset: e.pos[0], message: e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '') }))) };
    const missing = substitute(doc.contents, tokens, marker, env);
    if (missing.length) return { doc, original, problems: missing };
    const refs = secretRefs(doc.contents, env);
    if (refs.length) return { doc, original, problems: at(refs) };
    const alias = expandAliases(doc.contents);
    if (alias) return { doc, original, problems: at([alias]) };
    return { doc, original, problems: [], data: doc.toJS({ maxAliasCount: -1 }) };
  } catch (err) {
    // A last resort (a nesting deep enough to exhaust the stack, say): an error at the top, never a throw.
    return { doc, original, problems: [{ offset: 0, message: `cannot be read: ${/** @type {Error} */ (err)?.message ?? err}` }] };
  }
}

/**
 * The text with each `${{VAR}}` replaced by a marker (a private-use character
 * the text does not hold, the token's number, the character again), the
 * tokens, and a map from offsets in the masked text to offsets in `text`.
 * @param {string} text
 */
function mask(text) {
  let code = 0xe000;
  while (text.includes(String.fromCharCode(code))) code++;
  const m = String.fromCharCode(code);
  /** @type {Token[]} */ const tokens = [];
  let delta = 0;
  const masked = text.replace(VAR, (whole, name, dflt, offset) => {
    const tok = `${m}${tokens.length.toString(36)}${m}`;
    tokens.push({ name, dflt, at: offset, len: whole.length, from: offset - delta, to: offset - delta + tok.length });
    delta += whole.length - tok.length;
    return tok;
  });
  /** @param {number} offset */
  const original = (offset) => {
    let lo = 0, hi = tokens.length - 1, best = -1;
    while (lo <= hi) { const mid = (lo + hi) >> 1; if (tokens[mid].from <= offset) { best = mid; lo = mid + 1; } else hi = mid - 1; }
    if (best < 0) return offset;
    const t = tokens[best];
    return offset < t.to ? t.at : t.at + t.len + (offset - t.to);
  };
  return { masked, tokens, original, marker: new RegExp(`${m}([0-9a-z]+)${m}`, 'g') };
}

/**
 * Puts each alias's node in its place, after `${{VAR}}` substitution (so a
 * value is never substituted twice): yaml's own alias lookup scans every
 * anchor and alias before it, quadratic in a file that reuses an anchor
 * 10,000 times (24 s against 0.5 s without aliases). Stops at the first alias
 * with no anchor before it, inside its own anchor, or that makes the expanded
 * document pass MAX_EXPANDED_VALUES, and answers that problem.
 * @param {unknown} root
 * @returns {Problem | undefined}
 */
function expandAliases(root) {
  /** @type {Map<string, object>} */ const anchors = new Map();
  /** @type {Map<object, number>} */ const sizes = new Map();
  /** @type {Set<object>} */ const open = new Set();
  let total = 0;
  /** @type {Problem | undefined} */ let problem;
  /** @param {any} node */
  const resolved = (node) => (isAlias(node) ? anchors.get(node.source) ?? node : node);
  /** @param {any} node @returns {number} */
  const walk = (node) => {
    if (problem || node == null) return 0;
    if (isAlias(node)) {
      const at = node.range?.[0] ?? 0;
      const target = anchors.get(node.source);
      if (!target) problem = { offset: at, message: `alias *${node.source} has no anchor &${node.source} before it (a value that starts with * must be quoted: "*${node.source}")` };
      else if (open.has(target)) problem = { offset: at, message: `alias *${node.source} is inside the value it refers to` };
      else {
        const n = sizes.get(target) ?? 1;
        total += n;
        if (total > MAX_EXPANDED_VALUES) problem = { offset: at, message: `aliases expand the document past ${MAX_EXPANDED_VALUES.toLocaleString('en')} values (*${node.source} alone adds ${n.toLocaleString('en')})` };
        return n;
      }
      return 0;
    }
    if (node.anchor) { anchors.set(node.anchor, node); open.add(node); }
    let n = 1;
    total += 1;
    if (isCollection(node)) {
      const items = /** @type {any[]} */ (node.items);
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        if (isPair(item)) {
          n += walk(item.key);
          item.key = resolved(item.key);
          n += walk(item.value);
          item.value = resolved(item.value);
        } else {
          n += walk(item);
          items[i] = resolved(item);
        }
      }
    }
    if (node.anchor) { open.delete(node); sizes.set(node, n); }
    return n;
  };
  walk(root);
  return problem;
}

/**
 * Replaces the masked `${{VAR}}` tokens in every scalar (keys too). A plain
 * scalar that is one whole `${{VAR}}` takes a number or true/false when the
 * value reads as one, as if written there; anything else is a string holding
 * the value verbatim, whatever characters it holds.
 * @param {unknown} root
 * @param {Token[]} tokens
 * @param {RegExp} marker
 * @param {Env} env
 * @returns {Problem[]}
 */
function substitute(root, tokens, marker, env) {
  /** @type {Problem[]} */ const missing = [];
  if (!tokens.length) return missing;
  /** @param {any} node */
  const walk = (node) => {
    if (isCollection(node)) {
      for (const item of node.items) { if (isPair(item)) { walk(item.key); walk(item.value); } else walk(item); }
      return;
    }
    if (!isScalar(node) || typeof node.value !== 'string') return;
    const raw = node.value;
    let count = 0;
    const out = raw.replace(marker, (whole, n) => {
      const t = tokens[parseInt(n, 36)];
      count++;
      const v = t ? env[t.name] ?? t.dflt : undefined;
      if (t && v === undefined) missing.push({ offset: t.at, message: `environment variable ${t.name} is not set and has no default (write \${{${t.name}:=default}} to give one)`, env: true });
      return v ?? whole;
    });
    if (!count) return;
    const whole = node.type === 'PLAIN' && count === 1 && raw.replace(marker, '') === '';
    node.value = whole && NUMBER.test(out) ? Number(out) : whole && (out === 'true' || out === 'false') ? out === 'true' : out;
  };
  walk(root);
  return missing;
}

/** APISIX's secret references, a whole value: `$env://NAME` or `$env://NAME/key` (a key of the JSON in NAME), `$secret://…`. */
const REF = /^\$(env|secret):\/\/(.*)$/;
const ENV_REF = /^([A-Za-z_][A-Za-z0-9_]*)(?:\/(.+))?$/;
const ENV_REF_NAMES = /\$env:\/\/([A-Za-z_][A-Za-z0-9_]*)/g;

/**
 * Puts each `$env://NAME` value (APISIX's secret reference, a whole scalar) in
 * place from `env`, as APISIX resolves them in plugin configs. An unset
 * variable, a missing JSON key, or a `$secret://` reference (a secret manager,
 * which Turnpike does not have) is a problem at the value: never the literal
 * text used as a key or password.
 * @param {unknown} root
 * @param {Env} env
 * @returns {Problem[]}
 */
function secretRefs(root, env) {
  /** @type {Problem[]} */ const problems = [];
  /** @param {any} node */
  const walk = (node) => {
    if (isCollection(node)) {
      for (const item of node.items) { if (isPair(item)) walk(item.value); else walk(item); }
      return;
    }
    if (!isScalar(node) || typeof node.value !== 'string' || !node.value.startsWith('$')) return;
    const m = REF.exec(node.value);
    if (!m) return;
    const at = node.range?.[0] ?? 0;
    if (m[1] === 'secret') { problems.push({ offset: at, message: `${node.value}: secret managers ($secret://) are not supported: use $env://NAME or \${{NAME}}`, env: true }); return; }
    const e = ENV_REF.exec(m[2]);
    const v = e ? env[e[1]] : undefined;
    if (!e) problems.push({ offset: at, message: `${node.value} is not $env://NAME or $env://NAME/key`, env: true });
    else if (v === undefined) problems.push({ offset: at, message: `environment variable ${e[1]} is not set (${node.value})`, env: true });
    else if (e[2] === undefined) node.value = v;
    else {
      let json;
      try { json = JSON.parse(v); } catch { json = undefined; }
      const x = json && typeof json === 'object' ? json[e[2]] : undefined;
      if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') node.value = String(x);
      else problems.push({ offset: at, message: `environment variable ${e[1]} has no "${e[2]}" (${node.value} reads a key of the JSON object it holds)`, env: true });
    }
  };
  walk(root);
  return problems;
}

/**
 * Only the variables `text` names: what a parse elsewhere needs to be sent.
 * @param {string} text @param {Env} env @returns {Record<string, string>}
 */
export function referencedEnv(text, env) {
  /** @type {Record<string, string>} */ const out = {};
  for (const m of text.matchAll(VAR)) { const v = env[m[1]]; if (v !== undefined) out[m[1]] = v; }
  for (const m of text.matchAll(ENV_REF_NAMES)) { const v = env[m[1]]; if (v !== undefined) out[m[1]] = v; }
  return out;
}
