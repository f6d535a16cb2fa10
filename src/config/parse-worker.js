// Parses gateway.yaml off the main thread during a reload: on 2 cores, yaml
// takes ~40 ms for 1,000 routes, long enough to show in the p99 of traffic
// served meanwhile. Same rules as the main thread (yaml-read.js); answers the
// data only, and on any problem { ok: false }: the main thread parses again
// to report positions.
// @ts-check
import { parentPort } from 'node:worker_threads';
import { readYaml } from './yaml-read.js';

const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
port.on('message', (/** @type {{ id: number, text: string, env: Record<string, string> }} */ { id, text, env }) => {
  const { problems, data } = readYaml(text, env);
  try {
    port.postMessage(problems.length ? { id, ok: false } : { id, ok: true, data });
  } catch {
    port.postMessage({ id, ok: false });
  }
});
