/** The benchmark's upstream: as fast as node:http gets. `/big*` answers 64 KiB. Prints its port. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const small = Buffer.from('{"ok":true}\n');
const big = Buffer.alloc(64 * 1024, 'x');
const server = http.createServer((req, res) => {
  const body = req.url!.startsWith('/big') ? big : small;
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
