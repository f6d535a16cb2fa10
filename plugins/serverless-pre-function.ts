/**
 * Runs JavaScript functions at the start of a phase (APISIX form).
 *
 * ```yaml
 * plugins:
 *   serverless-pre-function:
 *     phase: rewrite
 *     functions:
 *       - |
 *         return function (conf, ctx) {
 *           ctx.request.headers["x-seen-by"] = "turnpike";
 *         }
 * ```
 */
import schema from '../schemas/serverless-pre-function.json' with { type: 'json' };
import { serverlessPlugin } from './serverless/factory.ts';

export default serverlessPlugin('serverless-pre-function', 10000, 'apisix', schema);
