/** Ports and helper processes shared by the bench scripts. */
import { spawn, type ChildProcess } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** A loopback port free right now (the bench runs alone, so nothing takes it meanwhile). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** How node runs a bench helper: plain JavaScript with no loader, TypeScript through tsx. */
export function helperArgs(file: string): string[] {
  return file.endsWith('.js') ? [path.join(HERE, file)] : ['--import', 'tsx', path.join(HERE, file)];
}

/** Starts a bench helper (`upstream.ts`, `undici-proxy.js`) that prints its port on its first line; adds it to `children`. */
export function spawnHelper(file: string, env: Record<string, string>, children: Set<ChildProcess>): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, helperArgs(file), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(proc);
  return new Promise((resolve, reject) => {
    proc.stdout!.once('data', (d) => { proc.stdout!.resume(); resolve({ proc, port: Number(String(d).trim()) }); });
    proc.once('exit', (c) => reject(new Error(`${file} exited ${c}`)));
  });
}
