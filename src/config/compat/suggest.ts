/** "did you mean": the closest known name to a mistyped one. */

/** Edits from a to b; a swap of two neighbours is one edit ("cros" → "cors"), as typos go. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The known name closest to `name` (case, `-` and `_` ignored), if it is close enough to be a typo. */
export function closest(name: string, known: Iterable<string>): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  const n = norm(name);
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(n, norm(k));
    if (d < bestD) { best = k; bestD = d; }
  }
  // A typo is a few edits; a longer distance is another word, and suggesting it misleads.
  return best !== undefined && bestD <= Math.min(3, Math.max(1, Math.floor(n.length / 4))) ? best : undefined;
}

/** ` (did you mean "x"?)`, or nothing. */
export function didYouMean(name: string, known: Iterable<string>): string {
  const c = closest(name, known);
  return c === undefined ? '' : ` (did you mean "${c}"?)`;
}
