/**
 * Watches the certificate and key files of `ssls` the way gateway.yaml is
 * watched (watch.ts: the directory's events and the periodic safety net):
 * a renewed file triggers a reload, which reads it, checks it, and swaps the
 * certificates in for new handshakes, or rejects it and keeps the old ones.
 */
import { watchConfig, type Watcher } from '../runtime/watch.ts';

/** The reason a reload gives when a certificate file changed. */
export const CERT_FILE_CHANGED = 'certificate file changed';

/** One watcher per file named by the config in force or the last one tried. */
export class FileWatchers {
  private readonly watchers = new Map<string, Watcher>();
  private readonly onChange: () => void;
  private readonly debounceMs?: number;
  private readonly pollMs?: number;
  private closed = false;

  constructor(onChange: () => void, debounceMs?: number, pollMs?: number) {
    this.onChange = onChange;
    this.debounceMs = debounceMs;
    this.pollMs = pollMs;
  }

  /** Watches exactly `paths` (absolute) from now on. */
  async sync(paths: Iterable<string>): Promise<void> {
    if (this.closed) return;
    const want = new Set(paths);
    for (const [p, w] of this.watchers) if (!want.has(p)) { this.watchers.delete(p); void w.close(); }
    const started: Promise<void>[] = [];
    for (const p of want) {
      if (this.watchers.has(p)) continue;
      const w = watchConfig(p, () => this.onChange(), this.debounceMs, this.pollMs);
      this.watchers.set(p, w);
      started.push(w.ready);
    }
    await Promise.all(started);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.watchers.values()].map((w) => w.close()));
    this.watchers.clear();
  }
}
