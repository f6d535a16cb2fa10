#!/usr/bin/env node
// Entry point: loads the TypeScript sources through tsx (user plugins may be .ts too).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;
