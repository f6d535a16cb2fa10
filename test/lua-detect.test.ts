/** Lua function sources are told apart from JavaScript ones (compat: reported in the first validate round). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { looksLikeLua } from '../src/config/compat/plugins.ts';

describe('Lua or JavaScript', () => {
  const cases: { desc: string; src: string; want: boolean }[] = [
    { desc: "APISIX's demo", src: 'return function() ngx.log(ngx.ERR, "serverless pre function"); end', want: true },
    { desc: 'local and if … then … end', src: 'return function(conf, ctx)\n  local x = 1\n  if x == 1 then\n    return 200\n  end\nend', want: true },
    { desc: 'Kong PDK', src: 'kong.response.exit(200, "hi")', want: true },
    { desc: 'a then key in an object literal', src: 'return () => { const t = { then: () => 1, other: 2 }; return t.other; }', want: false },
    { desc: 'a then method and .then()', src: 'return async () => { const p = { then(r) { r(1) } }; await Promise.resolve(1).then((v) => v); }', want: false },
    { desc: 'then as a variable', src: 'return () => { let then = 1; then = then + 1; return [then]; }', want: false },
    { desc: 'then in a string', src: 'return () => ({ status: 200, body: "first this, then that" })', want: false },
    { desc: 'a decrement does not hide code as a Lua comment', src: 'return () => { let i = 3; i--; return { status: 200, body: String(i) }; }', want: false },
  ];
  for (const c of cases) it(c.desc, () => assert.equal(looksLikeLua(c.src), c.want));
});
