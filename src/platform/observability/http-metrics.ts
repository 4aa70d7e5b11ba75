import type { FastifyInstance } from 'fastify';
import type { Metrics } from './metrics.js';

/** Unmatched paths share one label so that scanners cannot blow up the metric's cardinality. */
export const UNMATCHED_ROUTE = '(unmatched)';

type Observer = { observe(value: number): void };

/**
 * After every response: one histogram observation (labelled by method, route template and
 * status) and one log line. Synchronous and with the labelled series cached, because it
 * runs on every request.
 */
export function registerResponseObservers(app: FastifyInstance, metrics: Metrics): void {
  const series = new Map<string, Observer>();
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    const statusCode = reply.statusCode;
    const key = `${request.method} ${statusCode} ${route}`;
    let observer = series.get(key);
    if (observer === undefined) {
      observer = metrics.httpRequestDuration.labels({ method: request.method, route, status_code: String(statusCode) });
      series.set(key, observer);
    }
    const elapsedMs = reply.elapsedTime;
    observer.observe(elapsedMs / 1000);
    request.log.info({ req: request, res: reply, responseTimeMs: Math.round(elapsedMs * 100) / 100 }, 'request completed');
    done();
  });
}
