/**
 * The one factory behind the four serverless plugins. APISIX's form runs
 * `functions` in one `phase`; Kong's runs `functions` in access or per-phase
 * arrays. Either way a function is `return function (conf, ctx) { ... }`.
 */
import { createHash } from 'node:crypto';
import { definePlugin, type FunctionHost, type FunctionProgram, type FunctionSource, type Phase, type PluginDef } from '../../src/plugin.ts';

export interface ServerlessConf {
  phase?: Phase;
  functions?: string[];
  rewrite?: string[];
  access?: string[];
  before_proxy?: string[];
  header_filter?: string[];
  body_filter?: string[];
  log?: string[];
  timeout_ms?: number;
  body?: boolean;
  max_body_bytes?: number;
}

interface State {
  /** Per phase, the call it makes: functions, conf (the instance's settings, sources left out) and limits, fixed at load. */
  byPhase: Partial<Record<Phase, FunctionProgram>>;
  body: number;
  host: FunctionHost;
  functionIds: string[];
}

const KONG_PHASES: Phase[] = ['rewrite', 'access', 'before_proxy', 'header_filter', 'body_filter', 'log'];

function sourcesByPhase(conf: ServerlessConf, form: 'apisix' | 'kong'): Partial<Record<Phase, string[]>> {
  if (form === 'apisix') return { [conf.phase ?? 'access']: conf.functions ?? [] };
  const out: Partial<Record<Phase, string[]>> = {};
  for (const p of KONG_PHASES) if (conf[p]?.length) out[p] = [...conf[p]!];
  if (conf.functions?.length) out.access = [...conf.functions, ...(out.access ?? [])];
  return out;
}

function handler(phase: Phase) {
  return (s: State, ctx: Parameters<NonNullable<PluginDef['phases']['access']>>[1]) => {
    const program = s.byPhase[phase];
    if (program === undefined) return undefined;
    return s.host.run(program, ctx);
  };
}

/** Builds one of the four serverless plugins. */
export function serverlessPlugin(name: string, priority: number, form: 'apisix' | 'kong', schema: Record<string, unknown>): PluginDef<ServerlessConf, State> {
  return definePlugin<ServerlessConf, State>({
    name,
    version: '1.0.0',
    priority,
    schema,
    canReply: true,
    check(conf) {
      if (form === 'kong' && !conf.functions?.length && !KONG_PHASES.some((p) => conf[p]?.length)) {
        return `needs "functions" or at least one of ${KONG_PHASES.join(', ')}`;
      }
      return undefined;
    },
    async init(conf, api) {
      if (!api.functions.enabled) throw new Error('serverless functions are disabled in this gateway (serverless.enabled: false)');
      const sources: Partial<Record<Phase, FunctionSource[]>> = {};
      const all: FunctionSource[] = [];
      for (const [phase, list] of Object.entries(sourcesByPhase(conf, form)) as [Phase, string[]][]) {
        sources[phase] = list.map((source, i) => {
          const id = createHash('sha256').update(`${api.scope}\0${name}\0${phase}\0${i}\0${source}`).digest('base64url').slice(0, 22);
          const f = Object.freeze({ id, source, label: `${api.where} ${name} ${phase}[${i}]` });
          all.push(f);
          return f;
        });
      }
      const problems = await api.functions.check(all);
      if (problems.length) throw new Error(problems.join('\n'));
      const { functions: _f, ...rest } = conf;
      const shown: Record<string, unknown> = { ...rest };
      for (const p of KONG_PHASES) delete shown[p];
      const body = conf.body ? conf.max_body_bytes ?? 1 << 20 : 0;
      const opts = { timeoutMs: conf.timeout_ms ?? api.functions.defaultTimeoutMs, withBody: body > 0 };
      const byPhase: State['byPhase'] = {};
      for (const [phase, fns] of Object.entries(sources) as [Phase, FunctionSource[]][]) byPhase[phase] = api.functions.prepare(fns, shown, phase, opts);
      return { byPhase, body, host: api.functions, functionIds: all.map((f) => f.id) };
    },
    requestBody: (s) => s.body,
    activePhases: (s) => Object.keys(s.byPhase) as Phase[],
    phases: {
      rewrite: handler('rewrite'),
      access: handler('access'),
      before_proxy: handler('before_proxy'),
      header_filter: handler('header_filter'),
      body_filter: handler('body_filter'),
      log: handler('log'),
    },
  });
}
