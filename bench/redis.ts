/** A throwaway redis-server for the redis-policy rows: Debian's binary, a free port, no persistence. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { freePort } from './procs.ts';

/** True when `redis-server` is on PATH (`apt-get install redis-server`). */
export function haveRedis(): boolean {
  try { execFileSync('redis-server', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('error', () => resolve(false));
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d) => { s.destroy(); resolve(d.toString().startsWith('+PONG')); });
  });
}

/** Starts redis-server on a free loopback port, adds it to `children`, and resolves once it answers PING. */
export async function startRedis(children: Set<ChildProcess>): Promise<number> {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  children.add(proc);
  for (let i = 0; !(await ping(port)); i++) {
    if (i > 500 || proc.exitCode !== null) throw new Error('redis-server did not answer PING');
    await new Promise((r) => setTimeout(r, 20));
  }
  return port;
}
