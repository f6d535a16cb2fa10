#!/usr/bin/env node
// Entry point: loads the TypeScript sources through tsx (user plugins may be .ts too).
import { register } from 'tsx/esm/api';

register();
// tsx turns source maps on; Node then scans every generated function (ajv's and the
// router's, at each reload) for a source-map comment. Reloads matter more here.
process.setSourceMapsEnabled(false);
const { main } = await import('../src/cli.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;
