/** A throwaway redis-server for the redis-policy rows (test/helpers/redis-server.ts on a free port). */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { launchRedis } from '../test/helpers/redis-server.ts';
import { freePort } from './procs.ts';

/** True when `redis-server` is on PATH (`apt-get install redis-server`). */
export function haveRedis(): boolean {
  try { execFileSync('redis-server', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

/** Starts redis-server on a free loopback port, its process added to `children`; resolves with the port once it answers PING. */
export async function startRedis(children: Set<ChildProcess>): Promise<number> {
  return (await launchRedis(await freePort(), [], (p) => children.add(p))).port;
}
