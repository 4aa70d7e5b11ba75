import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { asSystem } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import type { Metrics } from '../../platform/observability/metrics.js';
import type { AdminAccountsService } from '../accounts/admin-accounts.routes.js';
import { ApiKeySchema, IdString } from '../api-keys/api-keys.routes.js';
import { UsageReportSchema } from '../usage/usage.routes.js';
import type { ApiKeyService } from '../api-keys/api-keys.service.js';
import { listAuditEntries } from '../audit/audit.service.js';
import type { CreditsService } from '../credits/credits.service.js';
import type { UsageService } from '../usage/usage.service.js';

/**
 * Read routes of the operator dashboard (UI-1): one account's whole picture in one
 * request (the dashboard's page load stays within the operator rate limit), and a small
 * summary of this instance's metrics. Changes go through the existing operator routes.
 */
export interface OperatorRouteOptions {
  readonly database: Database;
  readonly accounts: AdminAccountsService;
  readonly credits: CreditsService;
  readonly apiKeys: ApiKeyService;
  readonly usage: UsageService;
  readonly metrics: Metrics;
  /** Seconds this process has run (process.uptime). */
  readonly uptimeSeconds: () => number;
}

const ADMIN = { auth: { allow: ['admin'] } } as const;
const PAGE = 50;

const Params = Type.Object({ id: IdString });

/** The first page of each list; later pages through the lists' own routes. */
const OverviewResponse = Type.Object({
  account: Type.Object({ id: Type.String(), name: Type.Union([Type.String(), Type.Null()]), plan: Type.String(), status: Type.String(), createdAt: Type.String() }),
  users: Type.Array(
    Type.Object({ id: Type.String(), email: Type.Union([Type.String(), Type.Null()]), name: Type.Union([Type.String(), Type.Null()]), role: Type.String(), status: Type.String(), createdAt: Type.String() }),
  ),
  // The shapes of GET /api/credits and /api/credits/ledger (credits.routes.ts).
  credits: Type.Object({ balance: Type.Integer(), held: Type.Integer(), grants: Type.Array(Type.Unknown()) }),
  ledger: Type.Object({ items: Type.Array(Type.Unknown()), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
  keys: Type.Object({ items: Type.Array(ApiKeySchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
  usage: Type.Object({
    recent: Type.Array(UsageReportSchema),
    daily: Type.Array(Type.Object({ day: Type.String(), reports: Type.Integer(), quantity: Type.Integer(), counters: Type.Record(Type.String(), Type.Integer()) })),
  }),
  // Audit entries as GET /api/admin/audit reads them, without the IP.
  audit: Type.Object({ items: Type.Array(Type.Unknown()), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
});

const Count = Type.Integer({ minimum: 0 });
const SummaryResponse = Type.Object({
  instance: Type.Object({ uptimeSeconds: Count, residentMemoryBytes: Type.Union([Count, Type.Null()]) }),
  requests: Type.Object({ total: Count, byStatusClass: Type.Record(Type.String(), Count) }),
  authentications: Type.Object({ ok: Count, failed: Count }),
  rateLimitHits: Count,
  creditOperations: Type.Record(Type.String(), Count),
});

function valuesOf(metrics: MetricObjectWithValues<MetricValue<string>>[], name: string): MetricValue<string>[] {
  return metrics.find((metric) => metric.name === name)?.values ?? [];
}

/** Counters are whole numbers; a histogram's _count too. */
function whole(value: number): number {
  return Math.max(0, Math.round(value));
}

export async function operatorRoutes(fastify: FastifyInstance, options: OperatorRouteOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.get(
    '/api/admin/accounts/:id/overview',
    {
      config: ADMIN,
      schema: {
        tags: ['admin'],
        summary: "An account's plan, status, people, credits and ledger, keys, usage and audit entries (first pages)",
        params: Params,
        response: { 200: OverviewResponse },
      },
    },
    async (request, reply) => {
      const accountId = request.params.id;
      const account = await options.accounts.get(accountId);
      const { rows: users } = await asSystem(options.database, (tx) =>
        tx.query<{ id: string; email: string | null; name: string | null; role: string; status: string; created_at: Date }>(
          `SELECT id, email, name, role, status, created_at FROM users WHERE account_id = $1 ORDER BY created_at, id`,
          [accountId],
        ),
      );
      const [credits, ledger, keys, recent, daily, audit] = await Promise.all([
        options.credits.balance(accountId),
        options.credits.ledger(accountId, { limit: PAGE }),
        options.apiKeys.list(accountId, { limit: PAGE }),
        options.usage.list(accountId, { limit: 20 }),
        options.usage.daily(accountId, 30),
        asSystem(options.database, (tx) => listAuditEntries(tx, { accountId, limit: PAGE })),
      ]);
      void reply.header('Cache-Control', 'no-store');
      return {
        account,
        users: users.map((user) => ({ id: user.id, email: user.email, name: user.name, role: user.role, status: user.status, createdAt: new Date(user.created_at).toISOString() })),
        credits,
        ledger,
        keys,
        usage: { recent: recent.items, daily: daily.days },
        audit: {
          items: audit.items.map((entry) => ({
            id: entry.id,
            at: entry.at,
            event: entry.event,
            actorType: entry.actorType,
            actorId: entry.actorId,
            subjectType: entry.subjectType,
            subjectId: entry.subjectId,
            metadata: entry.metadata,
          })),
          nextCursor: audit.nextCursor,
        },
      };
    },
  );

  app.get(
    '/api/admin/summary',
    {
      config: ADMIN,
      schema: { tags: ['admin'], summary: "This instance's request, authentication, rate-limit and credit counters", response: { 200: SummaryResponse } },
    },
    async (_request, reply) => {
      const metrics = await options.metrics.registry.getMetricsAsJSON();
      const byStatusClass: Record<string, number> = {};
      let total = 0;
      for (const value of valuesOf(metrics, 'http_request_duration_seconds')) {
        // A histogram's values carry the series name (_bucket, _sum, _count).
        if ((value as { metricName?: string }).metricName !== 'http_request_duration_seconds_count') continue;
        const statusClass = `${String(value.labels.status_code ?? '0').charAt(0)}xx`;
        byStatusClass[statusClass] = (byStatusClass[statusClass] ?? 0) + whole(value.value);
        total += whole(value.value);
      }
      let ok = 0;
      let failed = 0;
      for (const value of valuesOf(metrics, 'authentications_total')) {
        if (value.labels.outcome === 'ok') ok += whole(value.value);
        else failed += whole(value.value);
      }
      const rateLimitHits = valuesOf(metrics, 'rate_limit_hits_total').reduce((sum, value) => sum + whole(value.value), 0);
      const creditOperations: Record<string, number> = {};
      for (const value of valuesOf(metrics, 'credit_operations_total')) {
        const operation = String(value.labels.operation ?? 'unknown');
        creditOperations[operation] = (creditOperations[operation] ?? 0) + whole(value.value);
      }
      const memory = valuesOf(metrics, 'process_resident_memory_bytes')[0]?.value;
      void reply.header('Cache-Control', 'no-store');
      return {
        instance: { uptimeSeconds: whole(options.uptimeSeconds()), residentMemoryBytes: memory === undefined ? null : whole(memory) },
        requests: { total, byStatusClass },
        authentications: { ok, failed },
        rateLimitHits,
        creditOperations,
      };
    },
  );
}
