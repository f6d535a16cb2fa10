import { parseDocument } from 'yaml';
const n = 10000;
const a = `routes:\n  - { id: r0, uri: /r0, plugins: &p { mocking: { response_example: shared } } }\n${Array.from({ length: n }, (_, i) => `  - { id: r${i+1}, uri: /r${i+1}, plugins: *p }\n`).join('')}`;
const b = `routes:\n${Array.from({ length: n }, (_, i) => `  - { id: r${i+1}, uri: /r${i+1}, plugins: { mocking: { response_example: shared } } }\n`).join('')}`;
for (const [k, t] of [['noalias', b], ['alias', a]]) {
let t0 = performance.now();
const d = parseDocument(t);
console.log(k, 'parse', performance.now() - t0); t0 = performance.now();
d.toJS({ maxAliasCount: -1 });
console.log(k, 'toJS', performance.now() - t0);
}
