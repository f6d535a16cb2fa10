/**
 * One worker thread of the host: a Gateway serving on the shared port
 * (reusePort), compiling each config the main thread hands it, committing it
 * only when told (every worker compiled it), and bumping a heartbeat the main
 * thread's watchdog reads.
 */
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { checkedNodes } from '../health/state.ts';
import { flushLogs, setLogSink } from '../log.ts';
import { SabSharedState } from '../shared/sab.ts';
import { ConfigRejected, Gateway } from './gateway.ts';
import { workerMetrics } from './metrics-host.ts';
import { BEAT_MS, LOG_BATCH_MS, STAT_CONNECTIONS, STAT_HEAP, STAT_PARSES, STATS_ROW, type FromWorker, type ToWorker, type WorkerInit } from './worker-protocol.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
const send = (m: FromWorker) => port.postMessage(m);
// Lines batched per message: at 10k req/s, one message per event-loop turn cost 3% of the worker's time.
setLogSink((chunk) => send({ type: 'log', chunk }), { delayMs: LOG_BATCH_MS });

const row = new Float64Array(init.stats, init.index * STATS_ROW * 8, STATS_ROW);
const beats = new Int32Array(init.beats);
setInterval(() => {
  Atomics.add(beats, init.index, 1);
  row[STAT_HEAP] = getHeapStatistics().total_heap_size;
}, BEAT_MS);

let rejectNext = false;
let gw: Gateway;
try {
  gw = await Gateway.start({
    config: init.config, env: init.env, watch: false,
    worker: { index: init.index, shared: new SabSharedState(init.shared), counters: row, ports: init.ports, ticketKeys: init.ticketKeys, source: init.source, workers: init.workers, onParse: () => { row[STAT_PARSES]++; } },
  });
} catch (err) {
  send(err instanceof ConfigRejected ? { type: 'failed', issues: err.issues } : { type: 'failed', issues: [], message: (err as Error).message });
  process.exit(1);
}
row[STAT_CONNECTIONS] = 0;
gw.connections.on('connection', (socket: import('node:net').Socket) => {
  row[STAT_CONNECTIONS]++;
  socket.once('close', () => { row[STAT_CONNECTIONS]--; });
});
send({ type: 'started', port: gw.port, ports: gw.ports, hash: gw.snapshot().hash, tls: gw.tlsView() });
// The first worker runs the host's active probes and tells the main thread which nodes /status explains.
const healthNodes = () => { if (init.index === 0) send({ type: 'health-nodes', nodes: checkedNodes(gw.snapshot()) }); };
healthNodes();

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'prepare':
      if (rejectNext) {
        rejectNext = false;
        send({ type: 'prepared', seq: m.seq, ok: false, hash: '', issues: [{ code: 'GW_ERR_CONFIG_PLUGIN', file: init.config, line: 0, col: 0, path: '', message: `worker ${init.index} rejected the config (test hook)` }] });
        return;
      }
      void gw.prepare(m.source).then((res) => send({ type: 'prepared', seq: m.seq, ok: res.ok, hash: res.hash, issues: res.ok ? [] : res.issues }));
      return;
    case 'commit':
      gw.commit();
      send({ type: 'committed', seq: m.seq, hash: gw.snapshot().hash, tls: gw.tlsView() });
      healthNodes();
      return;
    case 'abort':
      gw.abort();
      return;
    case 'metrics':
      void workerMetrics(gw.registry).then((data) => send({ type: 'metrics', seq: m.seq, data }), () => send({ type: 'metrics', seq: m.seq, data: [] }));
      return;
    case 'drain':
      void gw.close(m.graceMs).then(() => { flushLogs(); send({ type: 'drained' }); });
      return;
    case 'hook':
      if (!init.testHooks) return;
      if (m.hook === 'reject') rejectNext = true;
      else if (m.hook === 'crash') setImmediate(() => { throw new Error(`worker ${init.index} crashed (test hook)`); });
      // Blocks at once, in this handler: a message queued behind the hook (a metrics request) must find the loop blocked.
      else if (m.hook === 'block') for (;;);
  }
});
