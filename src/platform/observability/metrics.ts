import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * One registry per app instance (not prom-client's global one), so several instances in
 * one process, as in tests, never share or collide.
 */
export interface Metrics {
  readonly registry: Registry;
  /** Latency per method, route template and status; its _count series is the request count. */
  readonly httpRequestDuration: Histogram<'method' | 'route' | 'status_code'>;
  /** Authentication attempts on protected routes, by credential kind and outcome (ok or the error code). */
  readonly authentications: Counter<'credential' | 'outcome'>;
  /** Credit operations (OPS-2): reserve, confirm, release, grant, sweep_release, expiry, gate; outcome ok or why not. */
  readonly creditOperations: Counter<'operation' | 'outcome'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const httpRequestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests answered, by method, route template and status code: latency, and request count in _count',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const authentications = new Counter({
    name: 'authentications_total',
    help: 'Authentication attempts on protected routes, by credential kind and outcome',
    labelNames: ['credential', 'outcome'] as const,
    registers: [registry],
  });
  const creditOperations = new Counter({
    name: 'credit_operations_total',
    help: 'Credit operations by kind (reserve, confirm, release, grant, sweep_release, expiry, gate) and outcome',
    labelNames: ['operation', 'outcome'] as const,
    registers: [registry],
  });
  return { registry, httpRequestDuration, authentications, creditOperations };
}
