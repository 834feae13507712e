/**
 * The status router's routes as a plain Node request handler, for applications that are not Koa
 * (Express, Fastify): a small Koa app of its own serves `<prefix>/status`, `/metrics` and the
 * dashboard, so the status page is the same whatever the framework; other paths go to `next`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import Koa from 'koa';
import type Router from '@koa/router';

/** Connect/Express-style: `next` for requests outside the prefix (answered 404 without one). */
export type StatusHandler = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void;

export function createStatusHandler(router: Router, prefix: string): StatusHandler {
  const app = new Koa();
  app.silent = true;
  app.use(router.routes());
  app.use(router.allowedMethods());
  const serve = app.callback();
  return (req, res, next) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === prefix || path.startsWith(`${prefix}/`)) {
      void serve(req, res);
      return;
    }
    if (next !== undefined) return next();
    res.statusCode = 404;
    res.end();
  };
}
