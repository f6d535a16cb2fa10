// Runs in every function worker before anything else (tinypool's entry included).
// @ts-check
import { getHeapStatistics } from 'node:v8';

// A function must not take the gateway down: whatever could end or signal the
// process is removed before any user code loads.
for (const name of ['exit', 'reallyExit', 'kill', '_kill', 'abort', 'chdir', 'dlopen', 'binding', '_linkedBinding', 'setuid', 'setgid', 'seteuid', 'setegid', 'setgroups', 'initgroups', '_debugProcess', '_startProfilerIdleNotifier']) {
  try {
    Object.defineProperty(process, name, {
      value: () => { throw new Error(`process.${name}() is not available to serverless functions`); },
      writable: false, configurable: false, enumerable: false,
    });
  } catch { /* not defined on this build */ }
}

// tinypool reads process.memoryUsage().heapUsed after every task, only to
// decide on recycling, which the gateway does not use. The full call also reads
// RSS from /proc (~8 µs a task); here heapUsed is refreshed at most every
// 100 ms, and rss is computed only if someone reads it.
const rss = process.memoryUsage.rss.bind(process.memoryUsage);
let heap = getHeapStatistics();
let heapAt = Date.now();
const fast = () => {
  const now = Date.now();
  if (now - heapAt > 100) { heap = getHeapStatistics(); heapAt = now; }
  return {
    heapUsed: heap.used_heap_size, heapTotal: heap.total_heap_size, external: heap.external_memory, arrayBuffers: 0,
    get rss() { return rss(); },
  };
};
fast.rss = rss;
Object.defineProperty(process, 'memoryUsage', { value: fast, writable: false, configurable: false });
