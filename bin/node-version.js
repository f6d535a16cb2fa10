// The Node version check, in plain JavaScript that any Node can parse, so an
// old Node prints one line instead of a syntax error from the TypeScript.
// @ts-check

/** The oldest Node major Turnpike runs on (type stripping, reusePort, --permission). */
export const NEEDED_MAJOR = 24;

/**
 * The one line to print when `version` (as in process.versions.node) is too
 * old, or undefined when it will do.
 * @param {string} version
 * @returns {string | undefined}
 */
export function tooOld(version) {
  const major = Number(String(version).split('.')[0]);
  if (Number.isInteger(major) && major >= NEEDED_MAJOR) return undefined;
  return `turnpike: Node ${version} found, Node ${NEEDED_MAJOR} or later needed: run it as \`npx turnpike …\` or \`npm start\` after \`npm ci\` (they use the bundled Node ${NEEDED_MAJOR}), or install Node ${NEEDED_MAJOR}`;
}
