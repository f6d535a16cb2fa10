/** One reload at a time: calls made while one runs fold into a single run after it. */
export class Folded<T> {
  private inflight?: Promise<T>;
  private queued?: Promise<T>;

  /** Runs `task` now, or once after the run in progress (every call meanwhile gets that same run). */
  run(task: () => Promise<T>): Promise<T> {
    if (this.inflight) {
      this.queued ??= this.inflight.then(() => { this.queued = undefined; return this.run(task); });
      return this.queued;
    }
    this.inflight = task().finally(() => { this.inflight = undefined; });
    return this.inflight;
  }
}
