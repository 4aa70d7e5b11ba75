import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { asSystem } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import type { RouteAuth } from '../auth/guards.js';
import type { AdminGuard } from './admin-guard.js';
import type { Alerter } from './alerts.js';
import { CURSOR_PATTERN, listAuditEntries, type AuditEntry } from './audit.service.js';
import { verifyAuditChain } from './audit.verify.js';

export interface AuditRouteOptions {
  readonly database: Database;
  /**
   * The operator admin guard (KEY-3), run as the routes' preHandler: adminPrincipalGuard
   * behind the authentication hook, or adminTokenGuard(config.secrets.adminApiToken).
   */
  readonly requireAdmin: AdminGuard;
  /** Runs before requireAdmin, e.g. rateLimit(limiter, 'admin.ip', byIp) (RL-1: 10/hour per IP). */
  readonly rateLimit?: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  /** When given, a broken chain found by GET /api/admin/audit/verify raises an alert. */
  readonly alerter?: Alerter;
}

/** Operator routes: the authentication hook (auth/authenticate.ts) admits only the admin principal. */
const ADMIN_ONLY: { auth: RouteAuth } = { auth: { allow: ['admin'] } };

const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);

export const AuditEntrySchema = Type.Object({
  id: Type.String(),
  at: Type.String({ format: 'date-time' }),
  event: Type.String(),
  actorType: Type.String(),
  actorId: Nullable(Type.String()),
  subjectType: Nullable(Type.String()),
  subjectId: Nullable(Type.String()),
  ip: Nullable(Type.String()),
  metadata: Type.Record(Type.String(), Type.Unknown()),
});

const ListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ description: 'Page size, clamped to 1..100 (default 50)' })),
  cursor: Type.Optional(Type.String({ pattern: CURSOR_PATTERN, description: 'nextCursor of the previous page' })),
});

const ListResponse = Type.Object({
  items: Type.Array(AuditEntrySchema),
  nextCursor: Nullable(Type.String()),
});

const VerifyResponse = Type.Union([
  Type.Object({ valid: Type.Literal(true), checked: Type.Integer() }),
  Type.Object({ valid: Type.Literal(false), brokenAt: Type.String() }),
]);

function apiShape(entry: AuditEntry): AuditEntry {
  return {
    id: entry.id,
    at: entry.at,
    event: entry.event,
    actorType: entry.actorType,
    actorId: entry.actorId,
    subjectType: entry.subjectType,
    subjectId: entry.subjectId,
    ip: entry.ip,
    metadata: entry.metadata,
  };
}

/** GET /api/admin/audit and GET /api/admin/audit/verify (operator admin only). */
export async function auditRoutes(fastify: FastifyInstance, options: AuditRouteOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const preHandler = options.rateLimit ? [options.rateLimit, options.requireAdmin] : [options.requireAdmin];

  app.get(
    '/api/admin/audit',
    {
      config: ADMIN_ONLY,
      preHandler,
      schema: {
        tags: ['admin'],
        summary: 'Audit entries, newest first',
        querystring: ListQuery,
        response: { 200: ListResponse },
      },
    },
    async (request, reply) => {
      const page = await asSystem(options.database, (tx) =>
        listAuditEntries(tx, {
          ...(request.query.limit !== undefined ? { limit: request.query.limit } : {}),
          ...(request.query.cursor !== undefined ? { cursor: request.query.cursor } : {}),
        }),
      );
      void reply.header('Cache-Control', 'no-store');
      return { items: page.items.map(apiShape), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/api/admin/audit/verify',
    {
      config: ADMIN_ONLY,
      preHandler,
      schema: {
        tags: ['admin'],
        summary: 'Recomputes the audit hash chain and names the first broken entry',
        response: { 200: VerifyResponse },
      },
    },
    async (request, reply) => {
      const result = await verifyAuditChain(options.database);
      void reply.header('Cache-Control', 'no-store');
      if (result.valid) return { valid: true as const, checked: result.checked };
      request.log.error({ brokenAt: result.brokenAt, reason: result.reason }, 'audit chain broken');
      options.alerter?.alert('audit_chain_broken', 'the audit hash chain does not verify', {
        brokenAt: result.brokenAt,
        reason: result.reason,
      });
      return { valid: false as const, brokenAt: result.brokenAt };
    },
  );
}
