// Imports one user plugin module in a throwaway thread first (plugins.ts):
// a module that loops, throws or ends the process at import does it here,
// where the main thread can time it out and report it, instead of freezing or
// killing the gateway.
// @ts-check
import { parentPort, workerData } from 'node:worker_threads';

const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
try {
  await import(workerData.url);
  port.postMessage({ ok: true });
} catch (err) {
  port.postMessage({ ok: false, message: String(/** @type {Error} */ (err)?.message ?? err) });
}
