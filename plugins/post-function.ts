/**
 * Runs JavaScript functions after every other plugin (Kong form).
 *
 * ```yaml
 * plugins:
 *   post-function:
 *     header_filter:
 *       - "return (conf, ctx) => { ctx.response.headers[\"x-served-by\"] = \"turnpike\" }"
 * ```
 */
import schema from '../schemas/post-function.json' with { type: 'json' };
import { serverlessPlugin } from './serverless/factory.ts';

export default serverlessPlugin('post-function', -1000, 'kong', schema);
