/**
 * Decides when to reload: chokidar watches the config's directory (editors
 * rename temp files over it; Kubernetes swaps a `..data` symlink), filtered to
 * events that can change the file, debounced.
 */
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';

export interface Watcher {
  /** Resolves once the initial scan is done: changes after it are seen. */
  ready: Promise<void>;
  close(): Promise<void>;
}

/** Calls `onChange` once per burst of changes that may affect `file`. */
export function watchConfig(file: string, onChange: () => void, debounceMs = 50): Watcher {
  const abs = path.resolve(file);
  const dir = path.dirname(abs);
  const base = path.basename(abs);
  let timer: NodeJS.Timeout | undefined;
  const fire = () => {
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  };
  const watcher: FSWatcher = watch(dir, {
    ignoreInitial: true,
    depth: 1,
    followSymlinks: false,
    // Both the file itself and Kubernetes' `..data` link (and the dated folder behind it).
    ignored: (p: string) => {
      if (p === dir) return false;
      const top = path.relative(dir, p).split(path.sep)[0];
      return !(top === base || top.startsWith('..'));
    },
    atomic: false,
    awaitWriteFinish: false,
  });
  watcher.on('all', (_event, p) => {
    const top = path.relative(dir, p).split(path.sep)[0];
    if (top === base || top.startsWith('..')) fire();
  });
  watcher.on('error', () => {});
  const ready = new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return {
    ready,
    async close() {
      clearTimeout(timer);
      await watcher.close();
    },
  };
}
