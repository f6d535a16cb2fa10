/**
 * Runs JavaScript functions at the end of a phase (APISIX form).
 *
 * ```yaml
 * plugins:
 *   serverless-post-function:
 *     phase: log
 *     functions:
 *       - "return (conf, ctx) => ctx.log.info(`status ${ctx.response.status}`)"
 * ```
 */
import schema from '../schemas/serverless-post-function.json' with { type: 'json' };
import { serverlessPlugin } from './serverless/factory.ts';

export default serverlessPlugin('serverless-post-function', -2000, 'apisix', schema);
