/**
 * Reads a connection's ClientHello before TLS starts, when some `ssls` entry
 * picked by SNI holds RSA and ECDSA pairs: the SNICallback then hands the
 * context with the pair the client accepts. The bytes go back onto the
 * socket (Node's TLSSocket replays what a socket has buffered), so the
 * handshake sees the same stream. Bounded by MAX_CLIENT_HELLO_BYTES and the
 * handshake timeout.
 */
import type { Socket } from 'node:net';
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from './client-hello.ts';

/** Which pair a peeked connection's client accepts; absent: not peeked or not understood (the entry's first pair). */
const hints = new WeakMap<Socket, 'ec' | 'rsa'>();

/** The pair kind read from this raw socket's ClientHello, if any. */
export function pairHint(raw: Socket | undefined): 'ec' | 'rsa' | undefined {
  return raw ? hints.get(raw) : undefined;
}

/**
 * Buffers the ClientHello, then calls `next(socket)` with the bytes put back.
 * Unparsable input goes to `next` as well (TLS answers it as it would have).
 * A client that stalls past `timeoutMs` or leaves is destroyed, `onTimeout` told.
 */
export function peekClientHello(socket: Socket, tls13: boolean, timeoutMs: number, next: (s: Socket) => void, onTimeout: () => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  // One buffer for parsing (no concat per chunk: a client sending a byte at a time costs linear time), re-parsed only once `need` bytes are in.
  let acc: Buffer | undefined;
  let need = 5;
  const finish = () => {
    socket.off('data', onData);
    socket.off('end', gone);
    socket.off('error', gone);
    clearTimeout(timer);
    socket.pause();
    socket.unshift(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    next(socket);
  };
  const onData = (chunk: Buffer) => {
    chunks.push(chunk);
    if (size + chunk.length > MAX_CLIENT_HELLO_BYTES) { size += chunk.length; finish(); return; }
    acc ??= Buffer.allocUnsafe(MAX_CLIENT_HELLO_BYTES);
    chunk.copy(acc, size);
    size += chunk.length;
    if (size < need) return;
    const r = parseClientHello(acc.subarray(0, size), tls13);
    if (r.state === 'more') { need = r.need; return; }
    if (r.state === 'done') hints.set(socket, r.ecdsa ? 'ec' : 'rsa');
    finish();
  };
  const gone = () => { clearTimeout(timer); socket.destroy(); };
  const timer = setTimeout(() => { onTimeout(); gone(); }, timeoutMs);
  timer.unref();
  socket.on('data', onData);
  socket.once('end', gone);
  socket.once('error', gone);
}
