/**
 * A real redis-server: Debian's binary with a temporary directory and no
 * persistence, started and stopped by its user (a test or the bench, never a
 * system service). stop() and start() again keep the port, so a gateway
 * configured with it sees a Redis outage and a recovery. No node:test here:
 * the bench uses it too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface TestRedis {
  port: number;
  /** Stops the server (SIGKILL-free: a clean shutdown, so the port is free at once). */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open, nothing answers. */
  pause(): void;
  /** Undoes pause() (SIGCONT). */
  resume(): void;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('error', () => resolve(false));
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d) => { s.destroy(); resolve(d.toString().startsWith('+PONG')); });
  });
}

/**
 * Starts redis-server on `port` (extra `args` appended, e.g. cluster mode) and
 * waits until it answers PING; `onSpawn` sees each process (the bench kills them on exit).
 */
export async function launchRedis(port: number, args: string[] = [], onSpawn?: (p: ChildProcess) => void): Promise<TestRedis> {
  const dir = await mkdtemp(path.join(tmpdir(), 'turnpike-redis-'));
  let proc: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...args], { stdio: 'ignore' });
    proc = p;
    onSpawn?.(p);
    const exited = new Promise<never>((_, reject) => p.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`))));
    exited.catch(() => {});
    const deadline = Date.now() + 10_000;
    while (!(await ping(port))) {
      if (p.exitCode !== null) await exited;
      if (Date.now() > deadline) throw new Error('redis-server did not answer PING in 10 s');
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    await gone;
  };
  await start();
  return {
    port, start, stop,
    pause: () => { proc?.kill('SIGSTOP'); },
    resume: () => { proc?.kill('SIGCONT'); },
    async close() { proc?.kill('SIGCONT'); await stop(); await rm(dir, { recursive: true, force: true }); },
  };
}
