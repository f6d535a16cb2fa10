/** Turnpike's version: package.json's, the one definition. */
import pkg from '../package.json' with { type: 'json' };

export const VERSION: string = pkg.version;
