#!/usr/bin/env node
// Entry point. In a checkout, Turnpike's TypeScript runs through Node's own
// type stripping; an installed package runs the JavaScript built by
// `npm run build` (Node does not strip types under node_modules). An older
// Node must stop here, before it meets either.
import { existsSync } from 'node:fs';
import { tooOld } from './node-version.js';

const problem = tooOld(process.versions.node);
if (problem) {
  process.stderr.write(problem + '\n');
  process.exit(2);
}
const source = new URL('../src/cli.ts', import.meta.url);
const { main } = await import(existsSync(source) ? source.href : '../dist/src/cli.js');
process.exitCode = await main(process.argv.slice(2));
