import type { FastifyInstance } from 'fastify';
import type { Metrics } from './metrics.js';

/** Unmatched paths share one label so that scanners cannot blow up the metric's cardinality. */
export const UNMATCHED_ROUTE = '(unmatched)';

export function registerHttpMetrics(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onResponse', async (request, reply) => {
    const labels = {
      method: request.method,
      route: request.routeOptions.url ?? UNMATCHED_ROUTE,
      status_code: String(reply.statusCode),
    };
    metrics.httpRequests.inc(labels);
    metrics.httpRequestDuration.observe(labels, reply.elapsedTime / 1000);
  });
}
