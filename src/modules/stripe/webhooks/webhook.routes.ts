import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, onRequestHookHandler } from 'fastify';
import { adminPrincipalGuard } from '../../audit/admin-guard.js';
import type { RouteAuth } from '../../auth/guards.js';
import { actorOf } from '../../auth/principal.js';
import type { WebhookService } from './webhook.service.js';

export interface WebhookRouteOptions {
  readonly service: WebhookService;
  /** RL-1's `webhooks.ip` (100 a minute per sender IP), run before the body is read. */
  readonly rateLimit?: onRequestHookHandler;
}

const ADMIN: { auth: RouteAuth } = { auth: { allow: ['admin'] } };
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);

const IntakeResponse = Type.Object({
  received: Type.Literal(true),
  outcome: Type.String({ description: 'processed, ignored, refused, duplicate or dead_lettered' }),
});

const DeadLetter = Type.Object({
  eventId: Type.String(),
  type: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  livemode: Type.Boolean(),
  accountId: Nullable(Type.String()),
  status: Type.String(),
  attempts: Type.Integer(),
  lastErrorCode: Nullable(Type.String()),
  receivedAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});
const DeadLetterQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ description: 'Clamped to 1..100; default 50' })),
  cursor: Type.Optional(Type.String({ minLength: 5, maxLength: 255, pattern: '^evt_[A-Za-z0-9_]+$', description: 'nextCursor of the previous page' })),
});
const DeadLetterList = Type.Object({ items: Type.Array(DeadLetter), nextCursor: Nullable(Type.String()) });
const ReplayParams = Type.Object({ eventId: Type.String({ minLength: 5, maxLength: 255, pattern: '^evt_[A-Za-z0-9_]+$' }) });
const ReplayResponse = Type.Object({ event: DeadLetter, outcome: Type.String() });

/**
 * POST /api/webhooks/stripe (WH-1..9). In its own plugin scope, so that its JSON content
 * type keeps the raw bytes (the signature is over them) instead of the app's parser; the
 * body limit stays the app's (BODY_LIMIT_BYTES, 1 MB by default). Out of the general
 * per-IP limit: the route has its own policy.
 */
export async function stripeWebhookRoutes(app: FastifyInstance, options: WebhookRouteOptions): Promise<void> {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.post(
    '/api/webhooks/stripe',
    {
      config: { rateLimit: { general: false } },
      ...(options.rateLimit ? { onRequest: options.rateLimit } : {}),
      schema: {
        tags: ['stripe'],
        summary: 'Stripe webhook endpoint: raw body with Stripe-Signature; 200 processed or duplicate, 400 bad signature or stale timestamp, 5xx transient',
        response: { 200: IntakeResponse },
      },
    },
    async (request) => {
      const result = await options.service.receive({
        rawBody: Buffer.isBuffer(request.body) ? request.body : undefined,
        signature: request.headers['stripe-signature'],
        ip: request.ip,
        requestId: request.id,
      });
      return { received: true as const, outcome: result.outcome };
    },
  );
}

/** GET /api/admin/webhooks/dead-letters and POST /api/admin/webhooks/:eventId/replay (operator admin only). */
export async function webhookAdminRoutes(fastify: FastifyInstance, options: { readonly service: WebhookService }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/api/admin/webhooks/dead-letters',
    {
      config: ADMIN,
      preHandler: adminPrincipalGuard,
      schema: { tags: ['stripe'], summary: 'Stripe events that failed WEBHOOK_MAX_ATTEMPTS times', querystring: DeadLetterQuery, response: { 200: DeadLetterList } },
    },
    async (request, reply) => {
      void reply.header('Cache-Control', 'no-store');
      return options.service.deadLetters({
        ...(request.query.limit !== undefined ? { limit: request.query.limit } : {}),
        ...(request.query.cursor !== undefined ? { cursor: request.query.cursor } : {}),
      });
    },
  );
  app.post(
    '/api/admin/webhooks/:eventId/replay',
    {
      config: ADMIN,
      preHandler: adminPrincipalGuard,
      schema: { tags: ['stripe'], summary: 'Replay one dead-lettered Stripe event (fetched again from Stripe), once', params: ReplayParams, response: { 200: ReplayResponse } },
    },
    async (request) => options.service.replay(request.params.eventId, { ...actorOf(request.principal), ip: request.ip }),
  );
}
