/** The admin /status endpoint names the runtime: Turnpike's version and Node's. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request, startGateway, type TestGateway } from './helpers/harness.ts';

describe('admin /status', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway('listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nroutes:\n  - { id: hi, uri: /hi, plugins: { mocking: { response_example: hi } } }\n');
  });
  after(() => gw.close());

  it('shows the Turnpike version from package.json and the Node version it runs on', async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
    const s = JSON.parse((await request(gw.adminPort!, '/status')).body);
    assert.equal(s.turnpike, pkg.version);
    assert.equal(s.node, process.version);
    assert.match(s.node, /^v(2[4-9]|[3-9]\d)\./);
  });
});
