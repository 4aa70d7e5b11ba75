import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { validationError } from '../../errors/app-error.js';
import { adminPrincipalGuard } from '../audit/admin-guard.js';
import type { RouteAuth } from '../auth/guards.js';
import { actorOf } from '../auth/principal.js';
import type { ReconciliationService } from './reconciliation.service.js';
import type { RefundsService } from './refunds.service.js';

export interface BillingAdminRouteOptions {
  readonly refunds: RefundsService;
  readonly reconciliation: ReconciliationService;
}

const ADMIN: { auth: RouteAuth } = { auth: { allow: ['admin'] } };
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);

const RefundBody = Type.Object(
  {
    paymentId: Type.String({ minLength: 1, maxLength: 128, pattern: '^pay_[A-Za-z0-9_-]+$', description: 'The local payment id (pay_...)' }),
    amount: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100_000_000_000, description: 'Cents to refund (at most what is left); absent: a full refund of what is left' }),
    ),
    reason: Type.String({
      minLength: 1,
      maxLength: 200,
      pattern: '^[^\\u0000-\\u001f\\u007f]+$',
      description: "Short text; Stripe's own reasons (duplicate, fraudulent, requested_by_customer) are passed on to Stripe",
    }),
  },
  { additionalProperties: false },
);
const RefundHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_.:-]+$' })),
});
const Refund = Type.Object({
  id: Type.String(),
  paymentId: Type.String(),
  accountId: Type.String(),
  amount: Type.Integer({ description: 'cents' }),
  currency: Type.String(),
  full: Type.Boolean(),
  reason: Type.String(),
  status: Type.String({ description: 'requested (not yet accepted by Stripe), then Stripe refund status: pending, requires_action, succeeded, failed, canceled' }),
  stripeRefundId: Nullable(Type.String()),
  createdAt: Type.String({ format: 'date-time' }),
});

const Values = Type.Union([Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()])), Type.Null()]);
const Discrepancy = Type.Object({
  kind: Type.String(),
  objectType: Type.String(),
  objectId: Type.String(),
  accountId: Nullable(Type.String()),
  local: Values,
  stripe: Values,
  resolution: Type.String({ description: 'repaired, failed (retried on the next run) or reported' }),
  errorCode: Nullable(Type.String()),
});
const Report = Type.Object({
  id: Type.String(),
  trigger: Type.String(),
  status: Type.String(),
  startedAt: Type.String({ format: 'date-time' }),
  finishedAt: Nullable(Type.String({ format: 'date-time' })),
  customersChecked: Type.Integer(),
  discrepancies: Type.Integer(),
  repaired: Type.Integer(),
  failed: Type.Integer(),
  errorCode: Nullable(Type.String()),
  summary: Type.Record(Type.String(), Type.Integer()),
  items: Type.Array(Discrepancy),
});
const ReportQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ description: 'Clamped to 1..100; default 20' })),
  cursor: Type.Optional(Type.String({ minLength: 5, maxLength: 64, pattern: '^rcn_[A-Za-z0-9_-]+$', description: 'nextCursor of the previous page' })),
});

/**
 * POST /api/admin/refunds (PAY-7), GET /api/admin/reconciliation and POST
 * /api/admin/reconciliation/run (PAY-8): operator admin only, under the admin rate limit.
 */
export async function billingAdminRoutes(fastify: FastifyInstance, options: BillingAdminRouteOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.post(
    '/api/admin/refunds',
    {
      config: ADMIN,
      preHandler: adminPrincipalGuard,
      schema: {
        tags: ['billing'],
        summary:
          'Refund a payment in full or in part (PAY-7). Idempotent: the Idempotency-Key header, or without it the request itself, names the refund; a retry makes no second Stripe refund and answers the same. 404 unknown payment, 409 nothing left to refund, 400 amount beyond what is left, 422 key reused with another body.',
        body: RefundBody,
        headers: RefundHeaders,
        response: { 201: Type.Object({ refund: Refund }) },
      },
    },
    async (request, reply) => {
      const key = request.headers['idempotency-key'];
      const refund = await options.refunds.refund(
        {
          paymentId: request.body.paymentId,
          reason: request.body.reason,
          ...(request.body.amount !== undefined ? { amount: request.body.amount } : {}),
          ...(typeof key === 'string' ? { idempotencyKey: key } : {}),
        },
        { ...actorOf(request.principal), ip: request.ip },
      );
      return reply.status(201).header('Cache-Control', 'no-store').send({ refund });
    },
  );
  app.get(
    '/api/admin/reconciliation',
    {
      config: ADMIN,
      preHandler: adminPrincipalGuard,
      schema: {
        tags: ['billing'],
        summary: 'Reconciliation reports, newest first, each with its discrepancies (PAY-8)',
        querystring: ReportQuery,
        response: { 200: Type.Object({ items: Type.Array(Report), nextCursor: Nullable(Type.String()) }) },
      },
    },
    async (request, reply) => {
      void reply.header('Cache-Control', 'no-store');
      return options.reconciliation.list({
        ...(request.query.limit !== undefined ? { limit: request.query.limit } : {}),
        ...(request.query.cursor !== undefined ? { cursor: request.query.cursor } : {}),
      });
    },
  );
  app.post(
    '/api/admin/reconciliation/run',
    {
      config: ADMIN,
      preHandler: adminPrincipalGuard,
      schema: {
        tags: ['billing'],
        summary: 'Run a reconciliation with Stripe now and answer its report (PAY-8); 409 while one is running',
        response: { 200: Report },
      },
    },
    async (request, reply) => {
      // No body, or an empty JSON object (the dashboard sends one); nothing else.
      const body: unknown = request.body;
      if (body !== undefined && body !== null) {
        const extra = typeof body === 'object' && !Array.isArray(body) ? Object.keys(body)[0] : '(body)';
        if (extra !== undefined) throw validationError([{ field: extra, message: 'is not an allowed property (the run takes no parameters)' }]);
      }
      void reply.header('Cache-Control', 'no-store');
      return options.reconciliation.run('admin', { ...actorOf(request.principal), ip: request.ip });
    },
  );
}
