/** A host with worker threads on a temp gateway.yaml, for the workers tests. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Host, type HostOptions } from '../../src/runtime/supervisor.ts';
import { request } from './harness.ts';

/** A gateway.yaml with one mocked route /x answering `body`. */
export const yaml = (body: string) => `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nroutes:\n  - id: r\n    uri: /x\n    plugins:\n      mocking: { response_example: "${body}" }\n`;

export interface Status { hash: string; parses: number; worker_restarts: number; last_reload_ok: boolean; workers: { index: number; hash: string; requests: number; parses: number; restarts: number; heap: { total_mb: number; young_generation_limit_mb: number } }[] }

/** Starts a host (2 workers, test hooks on) on yaml(body). */
export async function startHost(body: string, opts: Partial<HostOptions> = {}): Promise<{ host: Host; file: string; dir: string; status(): Promise<Status>; close(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'turnpike-workers-'));
  const file = path.join(dir, 'gateway.yaml');
  await writeFile(file, yaml(body));
  const host = await Host.start({ config: file, env: {}, watch: false, workers: 2, testHooks: true, ...opts });
  return {
    host, file, dir,
    status: async () => JSON.parse((await request(host.adminPort!, '/status')).body) as Status,
    close: async () => { await host.close(500); await rm(dir, { recursive: true, force: true }); },
  };
}

/** `n` requests to /x, each on a fresh connection (so the kernel spreads them), 10 at a time. */
export async function bodies(port: number, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i += 10) {
    const batch = await Promise.all(Array.from({ length: Math.min(10, n - i) }, () => request(port, '/x')));
    out.push(...batch.map((r) => `${r.status} ${r.body}`));
  }
  return out;
}
