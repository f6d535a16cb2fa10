/**
 * file-logger (APISIX priority 399): one JSON line per request, appended to
 * `path` in the log phase, after the response is sent, so it never slows or
 * fails a request. The file is reopened when rotated away (logrotate's rename
 * or delete, noticed within a second) and on SIGUSR1, as APISIX's reopen.
 * Lines wait for the disk in a bounded buffer (16 MiB per file): past it they
 * are dropped and the count logged, never held without end.
 *
 * ```yaml
 * plugins:
 *   file-logger:
 *     path: logs/access.jsonl
 *     log_format: { host: $host, client_ip: $remote_addr, status: $status }
 * ```
 */
import path from 'node:path';
import schema from '../schemas/file-logger.json' with { type: 'json' };
import { definePlugin, type Phase } from '../src/plugin.ts';
import { compileLogFormat, logEntry, type LogConf, type LogFormat } from './logger/entry.ts';
import { fileSink, type FileSink } from './logger/file-sink.ts';
import { dropCounter } from './logger/dropped.ts';

interface Conf extends LogConf { path: string }
/** The sink is reached through a function: the state is frozen at load, the sink is not. */
interface State { conf: Conf; format: LogFormat | undefined; sink: () => FileSink; dropped: (n: number) => void }

export default definePlugin<Conf, State>({
  name: 'file-logger',
  version: '1.0.0',
  priority: 399,
  schema,
  init(conf, api) {
    const sink = fileSink(path.resolve(conf.path));
    return { conf, format: compileLogFormat(conf.log_format), sink: () => sink, dropped: dropCounter(api.metrics, 'file-logger') };
  },
  requestBody: (s) => (s.conf.include_req_body ? s.conf.max_req_body_bytes : 0),
  activePhases: (s): Phase[] => (s.conf.include_resp_body ? ['body_filter', 'log'] : ['log']),
  phases: {
    // Declared so that include_resp_body buffers the response for the log phase.
    body_filter() {},
    log(s, ctx) {
      const sink = s.sink();
      const before = sink.dropped;
      sink.write(JSON.stringify(logEntry(s.conf, s.format, ctx)));
      if (sink.dropped > before) s.dropped(sink.dropped - before);
      const trouble = sink.report();
      if (trouble) ctx.log.error('file-logger cannot keep up with its file', { path: sink.path, error: trouble.error, dropped_lines: trouble.dropped });
    },
  },
});
