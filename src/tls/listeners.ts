/**
 * The proxy listeners of one gateway (one worker): plain HTTP/1.1, TLS, or
 * TLS with HTTP/2 through ALPN, all feeding the one request path. TLS
 * listeners pick the certificate per handshake from the snapshot in force
 * (SNICallback), so a reload or a renewed certificate applies to the next
 * handshake and connections already open keep theirs.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { constants } from 'node:crypto';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { ListenerSpec, Snapshot } from '../snapshot.ts';
import { EdgeH2Request, EdgeH2Response } from './h2.ts';
import { HandshakeLog, secureChecks } from './handshake.ts';
import { peekClientHello, pairHint } from './peek.ts';
import { tlsKey } from './sni.ts';

/** What every listener hands its traffic to (the request path and its companions). */
export interface EdgeHandlers {
  request(req: IncomingMessage, res: ServerResponse): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  connect(req: IncomingMessage, socket: Duplex): void;
  clientError(err: Error, socket: Duplex): void;
}

/** A TLS socket's Node internals the SNICallback sets per certificate entry (as nginx's ssl_verify_client per server). */
interface SniSocket {
  _requestCert?: boolean;
  _rejectUnauthorized?: boolean;
  _handle?: { setVerifyMode?(request: boolean, reject: boolean): void };
  remoteAddress?: string;
  /** The raw TCP socket under the TLS one (peek.ts hints by it). */
  _parent?: Socket;
}

/** Concurrent streams per HTTP/2 connection (nginx's http2_max_concurrent_streams). */
const H2_MAX_STREAMS = 128;

type AnyServer = http.Server | https.Server | http2.Http2SecureServer;

/** The listeners of one gateway. */
export class Listeners {
  readonly servers: AnyServer[] = [];
  readonly specs: readonly ListenerSpec[];
  private readonly current: () => Snapshot;
  private readonly ticketKeys: Buffer;
  private readonly handshakes = new HandshakeLog();
  /** Per HTTP/2 listener: its sessions and HTTP/1.1 sockets, ended by close(). */
  private readonly h2Conns = new Set<http2.ServerHttp2Session | Socket>();

  constructor(specs: readonly ListenerSpec[], handlers: EdgeHandlers, current: () => Snapshot, ticketKeys: Buffer) {
    this.specs = specs;
    this.current = current;
    this.ticketKeys = ticketKeys;
    for (const spec of specs) this.servers.push(this.create(spec, handlers));
  }

  private create(spec: ListenerSpec, h: EdgeHandlers): AnyServer {
    const snap = this.current();
    // requestTimeout 0 (no bound on a whole upload: client_body_timeout bounds the
    // gaps instead) with headersTimeout set on its own: left unset, Node derives it
    // from requestTimeout and 0 turns the header bound off. Expired connections
    // are swept every second instead of every 30 s; apply() sets the config's values.
    const httpOpts = { keepAliveTimeout: 65_000, headersTimeout: 10_000, requestTimeout: 0, connectionsCheckingInterval: 1000 };
    if (!spec.tls) return this.wire(http.createServer(httpOpts, h.request), h);
    const tlsOpts = { ...this.baseOptions(spec, snap), SNICallback: this.sniCallback(spec), handshakeTimeout: snap.limits.headerTimeoutMs };
    if (!spec.http2) {
      const s = https.createServer({ ...httpOpts, ...tlsOpts }, h.request);
      return this.secure(this.wire(s, h), spec);
    }
    const s = http2.createSecureServer({
      ...tlsOpts, allowHTTP1: true, settings: { maxConcurrentStreams: H2_MAX_STREAMS },
      Http2ServerRequest: EdgeH2Request, Http2ServerResponse: EdgeH2Response as unknown as typeof http2.Http2ServerResponse<EdgeH2Request>,
    }, h.request as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
    // HTTP/1.1 connections on this port use these, as an http.Server's do.
    Object.assign(s, { headersTimeout: httpOpts.headersTimeout, requestTimeout: 0, connectionsCheckingInterval: 1000, keepAliveTimeout: httpOpts.keepAliveTimeout });
    s.on('session', (session) => { this.h2Conns.add(session); session.once('close', () => this.h2Conns.delete(session)); });
    s.on('secureConnection', (socket: TLSSocket) => {
      if (socket.alpnProtocol === 'h2') return;
      this.h2Conns.add(socket);
      socket.once('close', () => this.h2Conns.delete(socket));
    });
    return this.secure(this.wire(s, h), spec);
  }

  /** Upgrade, CONNECT and parse errors go where the plain listener's go. */
  private wire<T extends AnyServer>(s: T, h: EdgeHandlers): T {
    const srv = s as unknown as http.Server;
    srv.on('upgrade', h.upgrade);
    srv.on('clientError', h.clientError);
    srv.on('connect', (req: IncomingMessage, socketOrRes: Duplex | http2.Http2ServerResponse) => {
      // An HTTP/2 CONNECT stream comes with a response, not a socket: the same 405.
      if (socketOrRes instanceof http2.Http2ServerResponse) {
        socketOrRes.writeHead(405, { 'content-type': 'application/json' });
        socketOrRes.end('{"error":"CONNECT is not supported: this gateway is not a forward proxy","code":"GW_ERR_METHOD_NOT_ALLOWED"}');
        return;
      }
      h.connect(req, socketOrRes);
    });
    return s;
  }

  /** Handshake failures logged (once per client address a minute), and the entry's rules checked once the handshake is done. */
  private secure<T extends AnyServer>(s: T, spec: ListenerSpec): T {
    this.peekWhenNeeded(s, spec);
    s.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      const why = !socket.servername && !this.current().ssls.defaultEntry ? 'no SNI and no default certificate' : err.message;
      this.handshakes.failed(socket.remoteAddress, spec.port, why);
    });
    s.on('secureConnection', (socket: TLSSocket) => {
      const why = secureChecks(socket, this.current().ssls);
      if (why) { this.handshakes.failed(socket.remoteAddress, spec.port, why); socket.destroy(); }
    });
    return s;
  }

  /**
   * Puts a ClientHello read in front of TLS, only while some entry picked by
   * SNI holds RSA and ECDSA pairs (otherwise connections go straight to TLS,
   * as before): TLS's own connection listener runs once the hello is in.
   */
  private peekWhenNeeded(s: AnyServer, spec: ListenerSpec): void {
    const srv = s as unknown as Server;
    const tlsListeners = srv.listeners('connection') as ((socket: Socket) => void)[];
    srv.removeAllListeners('connection');
    const toTls = (socket: Socket) => { for (const l of tlsListeners) l.call(srv, socket); };
    const tls13 = spec.maxVersion === 'TLSv1.3';
    srv.on('connection', (socket: Socket) => {
      const snap = this.current();
      if (!snap.ssls.picksByKind) { toTls(socket); return; }
      peekClientHello(socket, tls13, snap.limits.headerTimeoutMs, toTls, () => this.handshakes.failed(socket.remoteAddress, spec.port, 'TLS handshake timeout'));
    });
  }

  /**
   * The listener's own context: its protocols and ciphers, the shared ticket
   * keys, and the default certificate (clients with no SNI). No client
   * renegotiation. No session tickets while some entry wants client
   * certificates: a resumed session skips the certificate step, so one made
   * for a name without mTLS could otherwise be resumed under a name with it.
   */
  private baseOptions(spec: ListenerSpec, snap: Snapshot): https.ServerOptions {
    const def = snap.ssls.defaultEntry;
    return {
      minVersion: spec.minVersion, maxVersion: spec.maxVersion, ciphers: spec.ciphers, honorCipherOrder: true,
      secureOptions: constants.SSL_OP_NO_RENEGOTIATION | (snap.ssls.hasMtls ? constants.SSL_OP_NO_TICKET : 0),
      ticketKeys: this.ticketKeys, ...(def?.options ?? {}),
      requestCert: def?.client !== undefined, rejectUnauthorized: def?.client !== undefined,
    };
  }

  /** Picks the entry's context for the server name, and asks for a client certificate only where the entry wants one. */
  private sniCallback(spec: ListenerSpec): (servername: string, cb: (err: Error | null, ctx?: import('node:tls').SecureContext) => void) => void {
    const key = tlsKey(spec);
    const current = this.current;
    const handshakes = this.handshakes;
    return function (this: SniSocket, servername, cb) {
      const entry = current().ssls.lookup(servername);
      if (!entry) {
        handshakes.failed(this.remoteAddress, spec.port, `no certificate for SNI "${servername.slice(0, 255)}"`);
        cb(new Error('no certificate for this server name'));
        return;
      }
      const mtls = entry.client !== undefined;
      // Fail closed: without the hook, an mTLS entry would be served unverified.
      if (typeof this._handle?.setVerifyMode !== 'function') { cb(new Error('client certificate verification is not available')); return; }
      this._requestCert = mtls;
      this._rejectUnauthorized = mtls;
      this._handle.setVerifyMode(mtls, mtls);
      // The default entry is the listener's own context already, with every certificate/key pair in it (a switched-to context serves only one).
      // An entry with RSA and ECDSA: the pair the ClientHello accepts (peek.ts); not read or not understood: the first pair.
      const kind = entry.byKind ? pairHint(this._parent) : undefined;
      cb(null, entry.isDefault ? undefined : kind ? entry.byKind![kind].get(key) : entry.contexts.get(key));
    };
  }

  /** Binds every listener; `ports` (the first worker's, for reusePort) replaces the specs' ports. */
  async listen(ports: readonly number[] | undefined, reusePort: boolean): Promise<void> {
    for (let i = 0; i < this.servers.length; i++) {
      const s = this.servers[i] as Server;
      const spec = this.specs[i];
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen({ port: ports?.[i] ?? spec.port, host: spec.host, reusePort }, () => { s.off('error', reject); resolve(); });
      });
    }
  }

  /** The bound ports, in listener order. */
  ports(): number[] {
    return this.servers.map((s) => ((s as Server).address() as AddressInfo | null)?.port ?? 0);
  }

  /** A new snapshot: its limits, and the TLS listeners' own context (default certificate, ciphers, client CA). */
  apply(snap: Snapshot): void {
    this.servers.forEach((s, i) => {
      const srv = s as http.Server;
      srv.headersTimeout = snap.limits.headerTimeoutMs;
      srv.keepAliveTimeout = snap.limits.keepAliveMs;
      const spec = this.specs[i];
      if (!spec.tls) return;
      const opts = this.baseOptions(spec, snap);
      (s as https.Server).setSecureContext(opts);
      Object.assign(s, { requestCert: opts.requestCert, rejectUnauthorized: opts.rejectUnauthorized });
    });
  }

  /** Stops accepting, lets requests in flight finish for up to `graceMs`, then ends what is left; `onForce` runs then too. */
  async close(graceMs: number, onForce: () => void): Promise<void> {
    const closed = Promise.all(this.servers.map((s) => new Promise<void>((resolve) => ((s as Server).listening ? (s as Server).close(() => resolve()) : resolve()))));
    for (const s of this.servers) (s as http.Server).closeIdleConnections?.();
    for (const c of this.h2Conns) if ('goaway' in c) c.close();
    const timer = setTimeout(() => {
      for (const s of this.servers) (s as http.Server).closeAllConnections?.();
      for (const c of this.h2Conns) c.destroy();
      onForce();
    }, graceMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
  }
}
