// @ts-nocheck: plain JavaScript on purpose (see below); tsc would want the types this file must not carry.
/**
 * The baseline: a bare undici proxy with no routing and no plugins, the
 * ceiling a Node gateway on undici can reach. MODE=dispatch (default) uses
 * undici's dispatch API, as Turnpike does; MODE=request uses request() + pipe.
 * Prints its port. Plain JavaScript run by plain node (no loader): the
 * baseline carries no handicap Turnpike does not.
 */
import http from 'node:http';
import { Pool } from 'undici';

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
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
