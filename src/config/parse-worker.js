// Parses gateway.yaml off the main thread during a reload: on 2 cores, yaml
// takes ~40 ms for 1,000 routes, long enough to show in the p99 of traffic
// served meanwhile. Answers the data only; on any YAML error it answers
// { ok: false } and the main thread parses again to report positions.
// @ts-check
import { parentPort } from 'node:worker_threads';
import { parseDocument } from 'yaml';
import { PARSE_OPTIONS, TO_JS_OPTIONS } from './yaml-options.js';

const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
port.on('message', (/** @type {{ id: number, text: string }} */ { id, text }) => {
  let reply;
  try {
    const doc = parseDocument(text, { ...PARSE_OPTIONS });
    reply = doc.errors.length ? { id, ok: false } : { id, ok: true, data: doc.toJS({ ...TO_JS_OPTIONS }) };
  } catch {
    reply = { id, ok: false };
  }
  try {
    port.postMessage(reply);
  } catch {
    port.postMessage({ id, ok: false });
  }
});
