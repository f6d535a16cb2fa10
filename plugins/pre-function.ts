/**
 * Runs JavaScript functions before every other plugin (Kong form).
 *
 * ```yaml
 * plugins:
 *   pre-function:
 *     functions:
 *       - |
 *         return function (conf, ctx) {
 *           const name = ctx.request.query.name ?? "Serverless Functions";
 *           return { status: 200, body: `Hello ${name}!` };
 *         }
 * ```
 */
import schema from '../schemas/pre-function.json' with { type: 'json' };
import { serverlessPlugin } from './serverless/factory.ts';

export default serverlessPlugin('pre-function', 1000000, 'kong', schema);
