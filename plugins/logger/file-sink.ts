/**
 * Appends log lines to a file, one open stream per path in each thread. The
 * file is reopened when it was rotated away (renamed or deleted: checked by
 * inode at most once a second) and on SIGUSR1, as APISIX's reopen. Writes are
 * async; past `MAX_BUFFERED` bytes waiting for the disk, lines are dropped and
 * counted rather than held without end.
 */
import { createWriteStream, fstat, statSync, type WriteStream } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

const MAX_BUFFERED = 16 << 20;
const CHECK_MS = 1000;
/** Every thread's sinks hear SIGUSR1 through this channel (signals reach the main thread only). */
const REOPEN = new BroadcastChannel('turnpike-file-logger-reopen');
(REOPEN as unknown as { unref?: () => void }).unref?.();

const REPORT_EVERY_MS = 60_000;

export class FileSink {
  readonly path: string;
  dropped = 0;
  private stream: WriteStream | undefined;
  private ino = -1;
  private checkedAt = 0;
  private error: string | undefined;
  private reportedAt = 0;

  constructor(path: string) {
    this.path = path;
  }

  /** The last write error and the drop count, at most once a minute (for the caller to log). */
  report(): { error: string | undefined; dropped: number } | undefined {
    if (this.error === undefined && this.dropped === 0) return undefined;
    const now = Date.now();
    if (now - this.reportedAt < REPORT_EVERY_MS) return undefined;
    this.reportedAt = now;
    const r = { error: this.error, dropped: this.dropped };
    this.error = undefined;
    return r;
  }

  private onError(msg: string): void {
    this.error = msg;
  }

  /** Appends one line (a newline is added); never throws. */
  write(line: string): void {
    const now = Date.now();
    if (now - this.checkedAt >= CHECK_MS) { this.checkedAt = now; this.checkRotated(); }
    const s = this.stream ?? this.open();
    if (!s) { this.dropped++; return; }
    if (s.writableLength > MAX_BUFFERED) { this.dropped++; return; }
    s.write(line + '\n');
  }

  /** Closes the stream; the next write opens the path again. */
  reopen(): void {
    this.stream?.end();
    this.stream = undefined;
    this.ino = -1;
  }

  private open(): WriteStream | undefined {
    try {
      const s = createWriteStream(this.path, { flags: 'a' });
      s.on('error', (err) => { this.onError(`cannot write ${this.path}: ${err.message}`); if (this.stream === s) this.stream = undefined; });
      // The inode of what was opened, not of what the path names by then.
      s.on('open', (fd: number) => fstat(fd, (err, st) => { if (!err && this.stream === s) this.ino = st.ino; }));
      this.stream = s;
      this.ino = -1;
      return s;
    } catch (err) {
      this.onError(`cannot open ${this.path}: ${(err as Error).message}`);
      return undefined;
    }
  }

  private checkRotated(): void {
    if (!this.stream) return;
    // -1 until the stream has opened; then another inode at the path, or none, means rotated.
    if (this.ino === -1) return;
    if (inode(this.path) !== this.ino) this.reopen();
  }
}

function inode(path: string): number {
  try { return statSync(path).ino; } catch { return -2; }
}

const sinks = new Map<string, FileSink>();

/** The sink for `path` in this thread (one stream per file, shared by every instance). */
export function fileSink(path: string): FileSink {
  let s = sinks.get(path);
  if (!s) { s = new FileSink(path); sinks.set(path, s); }
  return s;
}

function reopenAll(): void {
  for (const s of sinks.values()) s.reopen();
}
REOPEN.onmessage = reopenAll;
if (isMainThread) {
  process.on('SIGUSR1', () => { reopenAll(); REOPEN.postMessage('reopen'); });
}
