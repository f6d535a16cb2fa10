/**
 * Admission to one node's connections, so that slow clients cannot starve it
 * for everyone: at most `size` exchanges at once (undici then never queues
 * unbounded behind them), of which streamed uploads may hold only half (a
 * client that trickles its body holds its connection for as long as it
 * likes). The rest wait in a FIFO for at most `waitMs`, then get 503.
 */
import { GatewayError } from '../errors.ts';

/** A request waiting for a connection. */
export interface Waiter {
  /** Called when it holds a slot. */
  admitted(): void;
  /** Called when the wait ran out (503). */
  expired(err: GatewayError): void;
}

interface Queued { waiter: Waiter; upload: boolean; timer: NodeJS.Timeout }

/** One node's slots. */
export class Slots {
  busy = 0;
  uploads = 0;
  private queue: Queued[] = [];
  readonly size: number;
  readonly uploadShare: number;
  readonly origin: string;
  constructor(origin: string, size: number) {
    this.origin = origin;
    this.size = size;
    this.uploadShare = Math.max(1, Math.floor(size / 2));
  }

  private fits(upload: boolean): boolean {
    return this.busy < this.size && (!upload || this.uploads < this.uploadShare);
  }

  private take(upload: boolean): void {
    this.busy++;
    if (upload) this.uploads++;
  }

  /**
   * Takes a slot now (true), or queues `waiter` (false) until one frees or
   * `waitMs` pass. A request that finds others queued joins the queue
   * behind them, unless it fits where they do not (a GET behind uploads).
   */
  acquire(upload: boolean, waiter: Waiter, waitMs: number): boolean {
    // FIFO among requests of a kind; a GET does not queue behind uploads that cannot fit.
    if (this.fits(upload) && (this.queue.length === 0 || !this.queue.some((q) => q.upload === upload))) {
      this.take(upload);
      return true;
    }
    const entry: Queued = { waiter, upload, timer: setTimeout(() => this.expire(entry, waitMs), waitMs) };
    this.queue.push(entry);
    return false;
  }

  /** Gives back a slot taken by acquire (or by admission from the queue). */
  release(upload: boolean): void {
    this.busy--;
    if (upload) this.uploads--;
    for (let i = 0; i < this.queue.length && this.busy < this.size; i++) {
      const q = this.queue[i];
      if (!this.fits(q.upload)) continue;
      this.queue.splice(i--, 1);
      clearTimeout(q.timer);
      this.take(q.upload);
      q.waiter.admitted();
    }
  }

  /** Drops `waiter` from the queue (its client left). */
  cancel(waiter: Waiter): void {
    const i = this.queue.findIndex((q) => q.waiter === waiter);
    if (i < 0) return;
    clearTimeout(this.queue[i].timer);
    this.queue.splice(i, 1);
  }

  private expire(entry: Queued, waitMs: number): void {
    const i = this.queue.indexOf(entry);
    if (i < 0) return;
    this.queue.splice(i, 1);
    entry.waiter.expired(new GatewayError('GW_ERR_UPSTREAM_BUSY', `every connection to upstream ${this.origin} stayed busy for ${waitMs / 1000}s`));
  }

  /** For /status. */
  usage(): { size: number; in_use: number; uploads: number; queued: number } {
    return { size: this.size, in_use: this.busy, uploads: this.uploads, queued: this.queue.length };
  }
}
