/**
 * The one errors module. Every failure the gateway reports carries a stable
 * `code` (for logs, metrics and client bodies) and the HTTP status it maps to.
 */

export const ERRORS = {
  GW_ERR_CONFIG_READ: 500,
  GW_ERR_CONFIG_YAML: 500,
  GW_ERR_CONFIG_ENV: 500,
  GW_ERR_CONFIG_SCHEMA: 500,
  GW_ERR_CONFIG_REF: 500,
  GW_ERR_CONFIG_PLUGIN: 500,
  /** A certificate, key or TLS setting that cannot be served (unparsable, key not matching, expired, no certificate for a TLS listener). */
  GW_ERR_CONFIG_TLS: 500,
  /** A config asks for something Turnpike does not do yet (an APISIX feature, Lua); also the code of config warnings. */
  GW_ERR_CONFIG_UNSUPPORTED: 500,
  GW_ERR_PLUGIN_MODULE: 500,
  GW_ERR_PLUGIN_FAILED: 500,
  GW_ERR_INTERNAL: 500,
  GW_ERR_BAD_REQUEST: 400,
  GW_ERR_METHOD_NOT_ALLOWED: 405,
  GW_ERR_ROUTE_NOT_FOUND: 404,
  GW_ERR_NO_UPSTREAM: 502,
  GW_ERR_UPSTREAM_UNAVAILABLE: 502,
  GW_ERR_UPSTREAM_TIMEOUT: 504,
  GW_ERR_UPSTREAM_BUSY: 503,
  GW_ERR_BODY_TOO_LARGE: 413,
  GW_ERR_CLIENT_TIMEOUT: 408,
  GW_ERR_RESPONSE_TOO_LARGE: 502,
  GW_ERR_FUNCTION_COMPILE: 500,
  GW_ERR_FUNCTION_FAILED: 500,
  GW_ERR_FUNCTION_TIMEOUT: 504,
  GW_ERR_FUNCTION_BUSY: 503,
  GW_ERR_FUNCTIONS_DISABLED: 500,
  GW_ERR_USAGE: 500,
  GW_ERR_SHARED_FULL: 500,
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** A failure with a stable code and the HTTP status a client sees for it. */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = options?.status ?? ERRORS[code];
  }
}

/** What a client is told for a 5xx: fixed words per code; the details go to the error log. */
const PUBLIC_TEXT: Partial<Record<ErrorCode, string>> = {
  GW_ERR_NO_UPSTREAM: 'no upstream',
  GW_ERR_UPSTREAM_UNAVAILABLE: 'upstream unavailable',
  GW_ERR_UPSTREAM_TIMEOUT: 'upstream timed out',
  GW_ERR_RESPONSE_TOO_LARGE: 'upstream response too large',
  GW_ERR_UPSTREAM_BUSY: 'upstream busy, try again',
  GW_ERR_FUNCTION_TIMEOUT: 'function timed out',
  GW_ERR_FUNCTION_BUSY: 'function pool is busy, try again',
};

/** The JSON body a client gets for an error: no stack, no internals. */
export function publicBody(err: GatewayError, requestId?: string): string {
  const text = err.status < 500 ? err.message : PUBLIC_TEXT[err.code] ?? 'internal error';
  return JSON.stringify(requestId ? { error: text, code: err.code, request_id: requestId } : { error: text, code: err.code });
}

/** One problem found in a config file, with the position it points at. */
export interface ConfigIssue {
  code: ErrorCode;
  file: string;
  line: number;
  col: number;
  /** Dotted path inside the document, e.g. `routes[0].service_id`. */
  path: string;
  message: string;
  /** A warning: the file loads, and this says what of it Turnpike ignores. */
  warning?: true;
}

/** `gateway.yaml:12:5: routes[0].service_id: service "x" is not defined` (warnings say `warning:` before the message). */
export function formatIssue(i: ConfigIssue): string {
  return `${i.file}:${i.line}:${i.col}: ${i.path ? i.path + ': ' : ''}${i.warning ? 'warning: ' : ''}${i.message}`;
}
