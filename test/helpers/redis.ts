/**
 * A real redis-server for tests: Debian's binary on a free port with a
 * temporary directory and no persistence, started and stopped by the test
 * itself (never a system service). stop() and start() again keep the port, so a
 * gateway configured with it sees a Redis outage and a recovery.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { closeRedisStores } from '../../plugins/limit/redis.ts';
import assert from 'node:assert/strict';
import { eventually, refusedPort, request, startGateway, startUpstream, type TestGateway, type Upstream } from './harness.ts';

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

/** Starts redis-server (extra `args` appended, e.g. cluster mode) and waits until it answers PING. */
export async function startRedis(args: string[] = []): Promise<TestRedis> {
  const dir = await mkdtemp(path.join(tmpdir(), 'turnpike-redis-'));
  // Below the ephemeral range: no port-0 listener of a parallel test can take it while Redis is down.
  const port = await refusedPort();
  let proc: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...args], { stdio: 'ignore' });
    proc = p;
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

export interface TwoGateways { redis: TestRedis; up: Upstream; a: TestGateway; b: TestGateway }

/**
 * Registers before/after hooks for one Redis, one echo upstream and two gateways
 * on `yaml(redisPort, upstreamPort)`, each with its own Redis clients, as two
 * hosts would be. `prepare` runs on the fresh Redis first (cluster slots, say);
 * `handler` answers for the upstream as in startUpstream.
 */
export function twoGateways(yaml: (redisPort: number, upstreamPort: number) => string, opts: { args?: string[]; prepare?: (r: TestRedis) => Promise<void>; handler?: Parameters<typeof startUpstream>[0] } = {}): TwoGateways {
  const f = {} as TwoGateways;
  before(async () => {
    f.redis = await startRedis(opts.args);
    await opts.prepare?.(f.redis);
    f.up = await startUpstream(opts.handler);
    const text = yaml(f.redis.port, f.up.port);
    f.a = await startGateway(text);
    closeRedisStores();
    f.b = await startGateway(text);
  });
  after(async () => {
    await f.a?.close();
    await f.b?.close();
    closeRedisStores();
    await f.up?.close();
    await f.redis?.close();
  });
  return f;
}

/**
 * Stops the Redis of `f`, checks that `/closed` answers 500 `{"error_msg":"failed
 * to limit <what>"}` and `/open` (allow_degradation) 200 on both gateways, starts
 * Redis again and waits until `/closed` is served (no gateway restart).
 */
export async function checkOutageAndRecovery(f: TwoGateways, what: string): Promise<void> {
  await f.redis.stop();
  for (const gw of [f.a, f.b]) {
    const closed = await request(gw.port, '/closed');
    assert.equal(closed.status, 500);
    assert.equal(closed.body, `{"error_msg":"failed to limit ${what}"}`);
    assert.equal((await request(gw.port, '/open')).status, 200);
  }
  await f.redis.start();
  for (const gw of [f.a, f.b]) await eventually(async () => (await request(gw.port, '/closed')).status === 200, 10_000, 100);
}
