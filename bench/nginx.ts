/**
 * The fast upstream: nginx from Debian when it is installed (`return 200` with
 * a small body, 64 KiB from a file for /big), run in the foreground from a
 * temp prefix with its own config, so it never touches a system nginx.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

const CANDIDATES = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx'];

/** nginx's path, or undefined when it is not installed (`apt-get install -y nginx`). */
export function findNginx(): string | undefined {
  return CANDIDATES.find((p) => existsSync(p));
}

/** Starts nginx on `port` with its prefix under `dir`; resolves once it accepts connections. */
export async function startNginx(bin: string, dir: string, port: number, children: Set<ChildProcess>): Promise<ChildProcess> {
  await mkdir(path.join(dir, 'logs'), { recursive: true });
  await writeFile(path.join(dir, 'big'), Buffer.alloc(64 * 1024, 'x'));
  await writeFile(path.join(dir, 'nginx.conf'), `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:${port} reuseport;
    default_type application/json;
    location = /big { alias ${dir}/big; }
    location / { return 200 '{"ok":true}\\n'; }
  }
}
`);
  const proc = spawn(bin, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.add(proc);
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`nginx exited ${proc.exitCode} (see ${dir}/logs/error.log)`);
    const up = await new Promise<boolean>((r) => { const s = net.connect(port, '127.0.0.1', () => { s.destroy(); r(true); }); s.once('error', () => r(false)); });
    if (up) return proc;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('nginx did not start listening in 5 s');
}
