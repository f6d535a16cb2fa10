/**
 * APISIX upstream fields that Turnpike's upstream does not have: dropped with
 * a warning when ignoring them changes nothing a client relies on, refused
 * ("not supported yet") when ignoring them would send traffic somewhere else
 * or in another protocol than the file says.
 */
import type { PathSeg } from '../source.ts';
import { isMap, type Notes } from './notes.ts';

const META = ['desc', 'labels', 'create_time', 'update_time'];

/** Normalises one upstream in place; `at` is its path in the file. */
export function normalizeUpstream(u: unknown, at: PathSeg[], notes: Notes): void {
  if (!isMap(u)) return;
  for (const k of META) delete u[k];
  if (typeof u.scheme === 'string' && ['grpc', 'grpcs', 'tcp', 'udp', 'tls', 'kafka'].includes(u.scheme)) {
    const what = u.scheme.startsWith('grpc') ? 'gRPC proxying' : `scheme "${u.scheme}"`;
    notes.error([...at, 'scheme'], `${what} is not supported yet: Turnpike proxies HTTP and HTTPS upstreams (scheme http or https)`);
    delete u.scheme; // said once, not again by the schema
  }
  if (u.discovery_type !== undefined || u.service_name !== undefined) {
    notes.error([...at, u.discovery_type !== undefined ? 'discovery_type' : 'service_name'], 'service discovery is not supported yet: list the nodes');
    delete u.discovery_type;
    delete u.service_name;
    u.nodes ??= { 'discovery.invalid:80': 1 };
  }
  if (u.type === 'ewma') {
    notes.warn([...at, 'type'], 'balancer "ewma" is not implemented: least_conn is used instead');
    u.type = 'least_conn';
  }
  if (u.hash_on === 'vars_combinations') notes.error([...at, 'hash_on'], 'hash_on "vars_combinations" is not supported yet: use vars, header, cookie or consumer');
  if (u.retry_timeout !== undefined) {
    notes.warn([...at, 'retry_timeout'], 'retry_timeout is not implemented: retries are bounded by "retries" and each try by "timeout"', true);
    delete u.retry_timeout;
  }
  if (isMap(u.keepalive_pool) && u.keepalive_pool.requests !== undefined) {
    notes.warn([...at, 'keepalive_pool', 'requests'], 'keepalive_pool.requests is not implemented: connections are reused until idle_timeout', true);
    delete u.keepalive_pool.requests;
  }
  if (Array.isArray(u.nodes)) {
    u.nodes.forEach((n, i) => {
      if (!isMap(n)) return;
      for (const k of ['priority', 'metadata'] as const) {
        if (n[k] === undefined) continue;
        notes.warn([...at, 'nodes', i, k], `node ${k} is not implemented: ignored`, true);
        delete n[k];
      }
    });
  }
  if (isMap(u.checks)) checks(u.checks, [...at, 'checks'], notes);
}

/**
 * APISIX writes passive checks as `passive: {healthy, unhealthy}`; Turnpike's
 * are flat (what ejects a node, and for how long). Active checks keep
 * APISIX's form.
 */
function checks(c: Record<string, unknown>, at: PathSeg[], notes: Notes): void {
  const p = c.passive;
  if (!isMap(p) || (p.healthy === undefined && p.unhealthy === undefined && p.type === undefined)) return;
  const flat: Record<string, unknown> = {};
  const un = isMap(p.unhealthy) ? p.unhealthy : {};
  if (un.http_failures !== undefined) flat.http_failures = un.http_failures;
  if (un.http_statuses !== undefined) flat.http_statuses = un.http_statuses;
  const tcp = typeof un.tcp_failures === 'number' ? un.tcp_failures : typeof un.timeouts === 'number' ? un.timeouts : undefined;
  if (tcp !== undefined) flat.tcp_failures = tcp;
  if (p.healthy !== undefined) notes.warn([...at, 'passive', 'healthy'], 'checks.passive.healthy is not implemented: an ejected node gets traffic again after ejection_seconds', true);
  c.passive = flat;
}
