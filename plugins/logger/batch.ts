/**
 * APISIX's batch processor: entries gather until `batch_max_size`, or until
 * `inactive_timeout` s pass with no new entry, or `buffer_duration` s after the
 * oldest; a failed batch is retried `max_retry_count` times `retry_delay` s
 * apart, then dropped. Unlike APISIX, what waits is bounded: past
 * `max_pending` entries (a sink down for long) new entries are dropped and
 * counted, so memory stays flat whatever the sink does.
 */
export interface BatchConf {
  batch_max_size: number;
  inactive_timeout: number;
  buffer_duration: number;
  max_retry_count: number;
  retry_delay: number;
  name: string;
}

/** Sends one batch; rejects (or throws) when the sink did not take it. */
export type SendBatch = (entries: readonly unknown[]) => Promise<void>;

export interface BatchStats { sent: number; dropped: number; failedBatches: number }

export class BatchProcessor {
  readonly stats: BatchStats = { sent: 0, dropped: 0, failedBatches: 0 };
  private entries: unknown[] = [];
  private firstAt = 0;
  private lastAt = 0;
  /** One timer at a time: an entry only moves `lastAt`; when the timer fires it flushes or sets itself for what is left. */
  private timer: NodeJS.Timeout | undefined;
  private readonly onTimer = (): void => {
    this.timer = undefined;
    if (this.entries.length === 0) return;
    const now = Date.now();
    if (now >= this.due()) this.flush();
    else this.arm(now);
  };
  /** Entries in batches being sent or retried. */
  private inFlight = 0;
  private readonly conf: BatchConf;
  private readonly send: SendBatch;
  private readonly maxPending: number;
  private readonly onDrop: (n: number, why: string) => void;

  constructor(conf: BatchConf, send: SendBatch, onDrop: (n: number, why: string) => void, maxPending = Math.max(10_000, conf.batch_max_size * 10)) {
    this.conf = conf;
    this.send = send;
    this.onDrop = onDrop;
    this.maxPending = maxPending;
  }

  /** Queues one entry; never throws, never waits. */
  push(entry: unknown): void {
    if (this.entries.length + this.inFlight >= this.maxPending) {
      this.stats.dropped++;
      this.onDrop(1, `over ${this.maxPending} entries waiting for the sink`);
      return;
    }
    const now = Date.now();
    if (this.entries.length === 0) this.firstAt = now;
    this.entries.push(entry);
    if (this.entries.length >= this.conf.batch_max_size) { this.flush(); return; }
    this.lastAt = now;
    if (this.timer === undefined) this.arm(now);
  }

  /** Due at the earlier of: inactive_timeout after the last entry, buffer_duration after the first. */
  private due(): number {
    return Math.min(this.lastAt + this.conf.inactive_timeout * 1000, this.firstAt + this.conf.buffer_duration * 1000);
  }

  private arm(now: number): void {
    this.timer = setTimeout(this.onTimer, Math.max(0, this.due() - now));
    this.timer.unref();
  }

  /** Sends what is queued now. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.entries.length === 0) return;
    const batch = this.entries;
    this.entries = [];
    this.inFlight += batch.length;
    void this.attempt(batch, 0);
  }

  private async attempt(batch: unknown[], tries: number): Promise<void> {
    try {
      await this.send(batch);
      this.stats.sent += batch.length;
      this.inFlight -= batch.length;
    } catch (err) {
      this.stats.failedBatches++;
      if (tries < this.conf.max_retry_count) {
        const t = setTimeout(() => void this.attempt(batch, tries + 1), this.conf.retry_delay * 1000);
        t.unref();
        return;
      }
      this.inFlight -= batch.length;
      this.stats.dropped += batch.length;
      this.onDrop(batch.length, (err as Error)?.message ?? String(err));
    }
  }
}
