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
  /** Verified Stripe webhook deliveries, by event type. */
  readonly webhookReceived: Counter<'type'>;
  /**
   * What became of each verified delivery, by event type and outcome: processed, ignored,
   * refused, duplicate, failed (answered 5xx) or dead_lettered.
   */
  readonly webhookEvents: Counter<'type' | 'outcome'>;
  /** Deliveries refused before any processing (400): bad or missing signature, stale or future timestamp. */
  readonly webhookRejected: Counter<'reason'>;
  /** From verification to the answer, by event type and outcome. */
  readonly webhookProcessingDuration: Histogram<'type' | 'outcome'>;
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
  const webhookReceived = new Counter({
    name: 'stripe_webhook_received_total',
    help: 'Verified Stripe webhook deliveries, by event type',
    labelNames: ['type'] as const,
    registers: [registry],
  });
  const webhookEvents = new Counter({
    name: 'stripe_webhook_events_total',
    help: 'Verified Stripe webhook deliveries by event type and outcome (processed, ignored, refused, duplicate, failed, dead_lettered)',
    labelNames: ['type', 'outcome'] as const,
    registers: [registry],
  });
  const webhookRejected = new Counter({
    name: 'stripe_webhook_rejected_total',
    help: 'Stripe webhook deliveries refused with 400 before processing, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const webhookProcessingDuration = new Histogram({
    name: 'stripe_webhook_processing_seconds',
    help: 'Stripe webhook processing time from verification to the answer, by event type and outcome',
    labelNames: ['type', 'outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return { registry, httpRequestDuration, authentications, creditOperations, webhookReceived, webhookEvents, webhookRejected, webhookProcessingDuration };
}
