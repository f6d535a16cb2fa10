// How gateway.yaml is read, shared by the main thread (source.ts) and the
// reload parser (parse-worker.js), which must produce the same data.
// @ts-check

/** Options for yaml's parseDocument. */
export const PARSE_OPTIONS = Object.freeze({ prettyErrors: false, uniqueKeys: true, merge: true });
/** Options for Document.toJS: a bound on alias expansion ("billion laughs"). */
export const TO_JS_OPTIONS = Object.freeze({ maxAliasCount: 100 });
