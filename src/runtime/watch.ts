/**
 * Decides when to reload. Two sources, either enough on its own:
 * - events: fs.watch on the config's directory (editors rename a temp file
 *   over the file, which may itself be a symlink; Kubernetes swaps a `..data`
 *   symlink), filtered to names that can change the file, debounced;
 * - a safety net: every `pollMs` a stat of the file (through any symlinks) and
 *   of the link itself; a signature that differs from the last one seen, and
 *   is the same at the next check (so a file being written is not read
 *   half-way), triggers a reload too. An event that never came costs at most
 *   two poll periods, never a silently stale config.
 * The reload compares the content hash, so a change seen by both sources
 * reloads once.
 */
import { watch, type FSWatcher } from 'node:fs';
import { lstat, stat } from 'node:fs/promises';
import path from 'node:path';

export interface Watcher {
  /** Resolves once watching has started: changes after it are seen. */
  ready: Promise<void>;
  close(): Promise<void>;
}

/** Default period of the safety-net check, in ms. */
export const DEFAULT_POLL_MS = 2000;

/** Identity, size and times of the file and of the link that may point at it. */
async function signature(file: string): Promise<string> {
  const sig = (s: { dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number }) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  const [target, link] = await Promise.all([stat(file).then(sig, () => 'missing'), lstat(file).then(sig, () => 'missing')]);
  return `${target}|${link}`;
}

/** Calls `onChange` once per burst of changes that may affect `file`, with what noticed it. */
export function watchConfig(file: string, onChange: (reason: string) => void, debounceMs = 50, pollMs = DEFAULT_POLL_MS): Watcher {
  const abs = path.resolve(file);
  const dir = path.dirname(abs);
  const base = path.basename(abs);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let last = '';
  let pending = '';
  const fire = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      last = await signature(abs); // what this reload will read: the poll need not see it again
      if (!closed) onChange('file changed');
    }, debounceMs);
  };
  let fsw: FSWatcher | undefined;
  const start = () => {
    try {
      fsw = watch(dir, { persistent: false }, (_event, name) => {
        const top = name ? String(name).split(path.sep)[0] : undefined;
        if (top === undefined || top === base || top.startsWith('..')) fire();
      });
      // The directory went away (replaced or unmounted): the poll keeps watching; try again on its next turn.
      fsw.on('error', () => { fsw?.close(); fsw = undefined; });
    } catch {
      fsw = undefined;
    }
  };
  start();
  const poll = setInterval(async () => {
    if (!fsw) start();
    const now = await signature(abs);
    if (closed || now === last) return;
    if (now !== pending) { pending = now; return; } // changed since the last check: wait until it holds still
    last = now;
    clearTimeout(timer);
    onChange('periodic check');
  }, pollMs);
  poll.unref();
  const ready = signature(abs).then((s) => { last = s; });
  return {
    ready,
    async close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(poll);
      fsw?.close();
    },
  };
}
