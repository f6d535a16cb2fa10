/**
 * The reload parser's thread (parse-worker.js). Any trouble with it (it
 * cannot start, dies, or takes too long) answers undefined, and the caller
 * parses on the main thread as before: it only ever saves time.
 */
import { Worker } from 'node:worker_threads';
import { referencedEnv, type Env } from './yaml-read.js';

const FILE = new URL('./parse-worker.js', import.meta.url);
const TIMEOUT_MS = 10_000;

interface Answer { id: number; ok: boolean; data?: unknown }

export class ParseThread {
  private worker: Worker | undefined;
  private seq = 0;
  private waiting = new Map<number, (a: Answer | undefined) => void>();

  /** The YAML text's data (`${{VAR}}` from `env`), parsed on the thread; undefined when it has problems or the thread failed. */
  async parse(text: string, env: Env = {}): Promise<{ data: unknown } | undefined> {
    const w = this.start();
    if (!w) return undefined;
    const id = ++this.seq;
    const answer = await new Promise<Answer | undefined>((resolve) => {
      const timer = setTimeout(() => { this.waiting.delete(id); resolve(undefined); }, TIMEOUT_MS);
      this.waiting.set(id, (a) => { clearTimeout(timer); resolve(a); });
      w.ref();
      w.postMessage({ id, text, env: referencedEnv(text, env) });
    });
    if (this.waiting.size === 0) this.worker?.unref();
    return answer?.ok ? { data: answer.data } : undefined;
  }

  private start(): Worker | undefined {
    if (this.worker) return this.worker;
    try {
      const w = new Worker(FILE, { env: {} });
      w.on('message', (a: Answer) => {
        const done = this.waiting.get(a.id);
        this.waiting.delete(a.id);
        done?.(a);
      });
      const gone = () => {
        if (this.worker === w) this.worker = undefined;
        for (const done of this.waiting.values()) done(undefined);
        this.waiting.clear();
      };
      w.on('error', gone);
      w.on('exit', gone);
      w.unref();
      this.worker = w;
      return w;
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }
}
