/**
 * Loads an optional peer dependency (express-session, @fastify/session, …) when an adapter is first
 * used, never at import: `import 'koa-session-cluster'` loads no framework but Koa.
 */
import { createRequire } from 'node:module';
import { PeerDependencyError } from '../errors.js';

const ours = createRequire(import.meta.url);

/**
 * The CommonJS module `name`, resolved as npm installs peers (beside this package), and a `require`
 * that resolves from inside it: its own dependencies (cookie-signature for express-session) are the
 * very ones the framework signs with. `usedBy` names the API that needs it, for the error.
 * @throws PeerDependencyError when it is not installed.
 */
export function loadPeer<T>(name: string, usedBy: string): { module: T; require: NodeJS.Require } {
  let path: string;
  try {
    path = ours.resolve(name);
  } catch (err) {
    throw new PeerDependencyError(name, usedBy, { cause: err });
  }
  const own = createRequire(path);
  return { module: own(path) as T, require: own };
}
