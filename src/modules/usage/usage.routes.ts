import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { validationError } from '../../errors/app-error.js';
import { rateLimit, type RateLimitHook } from '../../platform/rate-limit/hooks.js';
import { byAccount, byPerson } from '../../platform/rate-limit/keys.js';
import type { RateLimiter } from '../../platform/rate-limit/limiter.js';
import { adminPrincipalGuard } from '../audit/admin-guard.js';
import type { RouteAuth } from '../auth/guards.js';
import { accountPrincipal } from '../auth/guards.js';
import { actorOf } from '../auth/principal.js';
import { DEFAULT_RETENTION_DAYS, MAX_DAILY_DAYS, MAX_RETENTION_DAYS, type UsageService } from './usage.service.js';

export interface UsageRouteOptions {
  readonly service: UsageService;
  /** deps.rateLimiting.limiter: POST is limited per account (usage_report.account, RL-1: 60/hour, a batch counts once). */
  readonly limiter: RateLimiter;
  /**
   * RL-5: the plan-based per-account limit for account keys and services on machine
   * routes (machineRateLimit(limiter, {planRequestsPerMinute})), once the plans module
   * provides requests_per_minute. Runs on POST and GET before the route's own limits.
   */
  readonly machineRateLimit?: RateLimitHook;
}

const ACCOUNT: { auth: RouteAuth } = { auth: { allow: ['user', 'apiKey', 'service'] } };
const ADMIN: { auth: RouteAuth } = { auth: { allow: ['admin'] } };

/** Text that PostgreSQL can store: no NUL, no unpaired surrogate (ajv compiles patterns with the u flag). */
const STORABLE = '^[^\\u0000\\uD800-\\uDFFF]*$';
/** Keys and ids: printable, no control characters. */
const PRINTABLE = '^[^\\u0000-\\u001f\\u007f\\uD800-\\uDFFF]+$';

export const MAX_BATCH_EVENTS = 1000;
export const MAX_METADATA_KEYS = 20;

const MetadataValue = Type.Union([Type.String({ maxLength: 256, pattern: STORABLE }), Type.Number(), Type.Boolean()]);

export const UsageEventSchema = Type.Object({
  idempotencyKey: Type.String({ minLength: 1, maxLength: 128, pattern: PRINTABLE, description: 'Unique per account; a replay is counted once' }),
  jobId: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: PRINTABLE })),
  jobType: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z][a-z0-9_.-]*$' }),
  quantity: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Default 1' })),
  description: Type.Optional(Type.String({ maxLength: 500, pattern: STORABLE })),
  metadata: Type.Optional(
    Type.Record(Type.String(), MetadataValue, {
      maxProperties: MAX_METADATA_KEYS,
      description: 'Internal only, never returned; keys must be in USAGE_METADATA_KEYS',
    }),
  ),
});

const ReportBody = Type.Object({
  events: Type.Array(UsageEventSchema, { minItems: 1, maxItems: MAX_BATCH_EVENTS }),
});

const ReportResponse = Type.Object({ accepted: Type.Integer(), duplicates: Type.Integer() });

const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);

/** USE-3: exactly these fields; the response schema drops anything else. */
export const UsageReportSchema = Type.Object({
  id: Type.String(),
  jobId: Nullable(Type.String()),
  jobType: Type.String(),
  creditsUsed: Type.Integer(),
  status: Type.String(),
  description: Nullable(Type.String()),
  createdAt: Type.String({ format: 'date-time' }),
});

const ListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ description: 'Clamped to 1..100 (USE-2); default 50' })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 400, pattern: '^[A-Za-z0-9_-]+$', description: 'nextCursor of the previous page' })),
});

const ListResponse = Type.Object({ items: Type.Array(UsageReportSchema), nextCursor: Nullable(Type.String()) });

const DailyQuery = Type.Object({
  days: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_DAILY_DAYS, description: 'How many UTC days up to today; default 30' })),
});
export const DailyUsageSchema = Type.Object({
  from: Type.String({ format: 'date' }),
  to: Type.String({ format: 'date' }),
  days: Type.Array(
    Type.Object({
      day: Type.String({ format: 'date' }),
      reports: Type.Integer(),
      quantity: Type.Integer(),
      counters: Type.Record(Type.String(), Type.Integer(), { description: 'Entitlement counters whose period starts this day (daily metered features)' }),
    }),
  ),
});

const OlderThanDays = Type.Integer({ minimum: 1, maximum: MAX_RETENTION_DAYS, description: `Default ${DEFAULT_RETENTION_DAYS}` });
const CleanupQuery = Type.Object({ olderThanDays: Type.Optional(OlderThanDays) });
const CleanupBody = Type.Object({ olderThanDays: Type.Optional(OlderThanDays) });
const CleanupResponse = Type.Object({ deleted: Type.Integer() });

/** Usage reads by people are per user (RL-1 balance/usage reads); keys and services fall under RL-5's machine limit. */

/** Optional-body routes: no body at all means `{}`; a body that is present is validated strictly. */
async function emptyBodyIsEmptyObject(request: FastifyRequest): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}

/**
 * Usage reporting (USE-1..5): POST and GET /api/usage for account principals (the
 * account always from the principal, ACC-2), DELETE /api/usage/cleanup for operators.
 */
export async function usageRoutes(fastify: FastifyInstance, options: UsageRouteOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { service, limiter } = options;
  const machine = options.machineRateLimit ? [options.machineRateLimit] : [];
  const reportLimit = rateLimit(limiter, 'usage_report.account', byAccount);
  const readLimit = rateLimit(limiter, 'balance_read.user', byPerson);

  app.post(
    '/api/usage',
    {
      config: ACCOUNT,
      preHandler: [...machine, reportLimit],
      schema: {
        tags: ['usage'],
        summary: 'Report usage events (1-1000); each idempotency key is counted once per account',
        body: ReportBody,
        response: { 202: ReportResponse },
      },
    },
    async (request, reply) => {
      const { accountId } = accountPrincipal(request);
      const result = await service.report(accountId, request.body.events);
      return reply.status(202).send(result);
    },
  );

  app.get(
    '/api/usage',
    {
      config: ACCOUNT,
      preHandler: [...machine, readLimit],
      schema: {
        tags: ['usage'],
        summary: "The account's usage reports, newest first",
        querystring: ListQuery,
        response: { 200: ListResponse },
      },
    },
    async (request, reply) => {
      const { accountId } = accountPrincipal(request);
      const page = await service.list(accountId, {
        ...(request.query.limit !== undefined ? { limit: request.query.limit } : {}),
        ...(request.query.cursor !== undefined ? { cursor: request.query.cursor } : {}),
      });
      void reply.header('Cache-Control', 'no-store');
      return page;
    },
  );

  app.get(
    '/api/usage/daily',
    {
      config: ACCOUNT,
      preHandler: [...machine, readLimit],
      schema: {
        tags: ['usage'],
        summary: "The account's usage per UTC day over the last `days` days, oldest first, every day present",
        querystring: DailyQuery,
        response: { 200: DailyUsageSchema },
      },
    },
    async (request, reply) => {
      const { accountId } = accountPrincipal(request);
      void reply.header('Cache-Control', 'no-store');
      return service.daily(accountId, request.query.days ?? 30);
    },
  );

  app.delete(
    '/api/usage/cleanup',
    {
      config: ADMIN,
      preValidation: emptyBodyIsEmptyObject,
      preHandler: adminPrincipalGuard,
      schema: {
        tags: ['admin'],
        summary: `Delete usage reports older than olderThanDays (default ${DEFAULT_RETENTION_DAYS}) of every account`,
        querystring: CleanupQuery,
        body: CleanupBody,
        response: { 200: CleanupResponse },
      },
    },
    async (request) => {
      const fromQuery = request.query.olderThanDays;
      const fromBody = request.body.olderThanDays;
      if (fromQuery !== undefined && fromBody !== undefined && fromQuery !== fromBody) {
        throw validationError([{ field: 'olderThanDays', message: 'differs between the query and the body' }]);
      }
      const result = await service.cleanup(fromBody ?? fromQuery ?? DEFAULT_RETENTION_DAYS, {
        ...actorOf(request.principal),
        ip: request.ip,
      });
      return { deleted: result.deleted };
    },
  );
}
