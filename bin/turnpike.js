#!/usr/bin/env node
// Entry point. Turnpike's TypeScript runs through Node's own type stripping
// (Node 24+), so an older Node must stop here, before it meets a .ts import.
const NEEDED = 24;
const major = Number(process.versions.node.split('.')[0]);
if (major < NEEDED) {
  process.stderr.write(`turnpike: Node ${process.versions.node} found, Node ${NEEDED} or later needed: run it as \`npx turnpike …\` or \`npm start\` after \`npm ci\` (they use the bundled Node 24), or install Node ${NEEDED}\n`);
  process.exit(2);
}
const { main } = await import('../src/cli.ts');
process.exitCode = await main(process.argv.slice(2));
