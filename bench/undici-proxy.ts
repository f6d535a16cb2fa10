/**
 * The baseline: a bare undici proxy with no routing and no plugins, the
 * ceiling a Node gateway on undici can reach. Prints its port.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const target = process.env.TARGET!;
const pool = new Pool(target, { connections: 128, pipelining: 1 });
const server = http.createServer((req, res) => {
  const headers = { ...req.headers };
  delete headers.connection;
  delete headers['keep-alive'];
  pool.request({ path: req.url!, method: req.method as 'GET', headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req })
    .then(({ statusCode, headers: h, body }) => {
      delete h.connection;
      delete h['keep-alive'];
      delete h['transfer-encoding'];
      res.writeHead(statusCode, h as http.OutgoingHttpHeaders);
      body.pipe(res);
    })
    .catch(() => { res.writeHead(502); res.end(); });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
