/**
 * WebSocket upgrades on routes with `enable_websocket: true`: a variant of the
 * normal request path (server.ts handle), not a second one. The same target
 * and host rules, trust rules and forwarding headers, plugins, node choice
 * (balancer, consistent hashing, health, retries on connect failures), access
 * log and metrics; answers that are not a switch (401 from key-auth, a 502)
 * are written as ordinary responses by a ServerResponse on the socket.
 */
import { ServerResponse, STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { serve, type Runtime, type Tunnel } from './server.ts';

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The client's socket, spliced to the upstream's once it switched protocols. */
class ClientTunnel implements Tunnel {
  status?: number;
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly protocol: string;
  constructor(socket: Duplex, head: Buffer, protocol: string) {
    this.socket = socket;
    this.head = head;
    this.protocol = protocol;
  }

  open(status: number, headers: Record<string, string | string[]>, upstream: Duplex, idleMs: number): void {
    const client = this.socket;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
    for (const k in headers) {
      const v = headers[k];
      if (Array.isArray(v)) for (const x of v) head += `${k}: ${x}\r\n`;
      else if (v !== undefined) head += `${k}: ${v}\r\n`;
    }
    client.write(head + '\r\n');
    if (this.head.length) upstream.write(this.head);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    // nginx's proxy_read_timeout for a tunnel (the upstream's timeout.read, else 60 s): every
    // byte either way passes through the client socket, so its idle timer sees both directions.
    (client as Socket).setTimeout(idleMs, () => client.destroy());
    upstream.pipe(client);
    client.pipe(upstream);
  }
}

/** The `upgrade` listener of the proxy server. */
export function createUpgradeHandler(rt: Runtime): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, socket, head) => {
    socket.on('error', () => {});
    // Answers other than a switch go out as normal responses, then the connection closes.
    const res = new ServerResponse(req);
    res.assignSocket(socket as Socket);
    res.shouldKeepAlive = false;
    res.once('finish', () => socket.end());
    const protocol = String(req.headers.upgrade ?? '');
    if (!TOKEN.test(protocol)) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end('{"error":"Upgrade header is not valid","code":"GW_ERR_BAD_REQUEST"}');
      return;
    }
    serve(rt, req, res, new ClientTunnel(socket, head, protocol));
  };
}
