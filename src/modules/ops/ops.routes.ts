import { createHash, timingSafeEqual } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../../errors/app-error.js';
import type { Metrics } from '../../platform/observability/metrics.js';
import { runReadiness, type ReadinessCheck } from './readiness.js';

export interface OpsRouteDependencies {
  readonly metrics: Metrics;
  readonly metricsToken: string | undefined;
  readonly readinessChecks: readonly ReadinessCheck[];
  readonly readinessTimeoutMs: number;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Constant-time comparison of a presented secret with the expected one, whatever their lengths. */
export function secretMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  return timingSafeEqual(digest(presented), digest(expected));
}

function bearerToken(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^Bearer ([^\s]+)$/.exec(header);
  return match?.[1];
}

const CheckState = Type.Union([Type.Literal('ok'), Type.Literal('skipped'), Type.Literal('failed')]);

export async function opsRoutes(app: FastifyInstance, deps: OpsRouteDependencies): Promise<void> {
  app.get(
    '/health',
    {
      schema: {
        tags: ['operations'],
        summary: 'Liveness: the process is up and serving',
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/ready',
    {
      schema: {
        tags: ['operations'],
        summary: 'Readiness: database, Stripe and disk; 503 names the failing check',
        response: {
          200: Type.Object({ status: Type.Literal('ok'), checks: Type.Record(Type.String(), CheckState) }),
          503: Type.Object({ status: Type.Literal('unavailable'), checks: Type.Record(Type.String(), CheckState) }),
        },
      },
    },
    async (request, reply) => {
      const report = await runReadiness(deps.readinessChecks, deps.readinessTimeoutMs, (name, error) =>
        request.log.warn({ check: name, err: error }, 'readiness check failed'),
      );
      return reply.status(report.status === 'ok' ? 200 : 503).send(report);
    },
  );

  app.get(
    '/metrics',
    { schema: { tags: ['operations'], summary: 'Prometheus metrics (Bearer METRICS_TOKEN when set)', hide: false } },
    async (request, reply) => {
      if (deps.metricsToken !== undefined && !secretMatches(bearerToken(request.headers.authorization), deps.metricsToken)) {
        throw new AppError('UNAUTHENTICATED', 'Metrics require the metrics token', undefined, {
          'WWW-Authenticate': 'Bearer realm="metrics"',
        });
      }
      const body = await deps.metrics.registry.metrics();
      return reply.header('Content-Type', deps.metrics.registry.contentType).header('Cache-Control', 'no-store').send(body);
    },
  );
}
