// @ts-nocheck: plain JavaScript on purpose (see below); tsc would want the types this file must not carry.
/**
 * The baseline: a bare undici proxy with no routing and no plugins, the
 * ceiling a Node gateway on undici can reach. MODE=dispatch (default) uses
 * undici's dispatch API, as Turnpike does; MODE=request uses request() + pipe.
 * Prints its port. Plain JavaScript run by plain node (no loader): the
 * baseline carries no handicap Turnpike does not.
 *
 * THREADS=N serves from N worker threads, each with its own listener on one
 * port (reusePort), as Turnpike's workers do: the control for what more
 * event loops cost on this machine, whatever the gateway does.
 */
import http from 'node:http';
import net from 'node:net';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Pool } from 'undici';

const threads = Number(process.env.THREADS ?? 0);
if (isMainThread && threads > 0) {
  // Holds the port while the threads bind it; closed before the port is printed, so it takes no connection.
  const hold = net.createServer();
  await new Promise((r) => hold.listen({ port: 0, host: '127.0.0.1', reusePort: true }, r));
  const port = hold.address().port;
  const ready = [];
  for (let i = 0; i < threads; i++) {
    const w = new Worker(new URL(import.meta.url), { workerData: { port } });
    ready.push(new Promise((r) => w.once('message', r)));
  }
  await Promise.all(ready);
  hold.close();
  process.stdout.write(`${port}\n`);
  process.on('SIGTERM', () => process.exit(0));
} else {
  serve(isMainThread ? Number(process.env.PORT ?? 0) : workerData.port);
}

function serve(listenPort) {
  const target = process.env.TARGET;
  const mode = process.env.MODE ?? 'dispatch';
  const pool = new Pool(target, { connections: 128, pipelining: 1 });
  const strip = (h) => {
    delete h.connection;
    delete h['keep-alive'];
    delete h['transfer-encoding'];
    return h;
  };

  const server = http.createServer((req, res) => {
    const headers = strip({ ...req.headers });
    const body = req.method === 'GET' || req.method === 'HEAD' ? null : req;
    if (mode === 'request') {
      pool.request({ path: req.url, method: req.method, headers, body })
        .then(({ statusCode, headers: h, body: b }) => {
          res.writeHead(statusCode, strip(h));
          // A client that leaves mid-body must free the upstream connection.
          res.once('close', () => { if (!res.writableFinished) b.destroy(); });
          b.pipe(res);
        })
        .catch(() => { res.writeHead(502); res.end(); });
      return;
    }
    pool.dispatch({ path: req.url, method: req.method, headers, body }, {
      // Its presence also tells undici this handler uses the current API. A client
      // that leaves mid-body must free the upstream connection, or a paused one
      // waits for a 'drain' that never comes and the pool runs dry.
      onRequestStart(c) { res.once('close', () => { if (!res.writableFinished) c.abort(new Error('client gone')); }); },
      onResponseStart(_c, statusCode, h) { res.writeHead(statusCode, strip(h)); },
      onResponseData(c, chunk) { if (!res.write(chunk)) { c.pause(); res.once('drain', () => c.resume()); } },
      onResponseEnd() { res.end(); },
      onResponseError() { if (!res.headersSent) res.writeHead(502); res.end(); },
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen({ port: listenPort, host: '127.0.0.1', reusePort: !isMainThread }, () => {
    if (isMainThread) process.stdout.write(`${server.address().port}\n`);
    else parentPort.postMessage('ready');
  });
  if (isMainThread) process.on('SIGTERM', () => process.exit(0));
}
