import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, preHandlerHookHandler } from 'fastify';
import { adminPrincipalGuard } from '../audit/admin-guard.js';
import type { RouteAuth } from '../auth/guards.js';
import { accountPrincipal } from '../auth/guards.js';
import { actorOf } from '../auth/principal.js';
import { MAX_CREDITS_PER_OPERATION, type CreditsService } from './credits.service.js';

export interface CreditRouteOptions {
  readonly service: CreditsService;
  /**
   * RL-5: the plan-based machine limit (app.ts's machineLimit), run before every account
   * route; optional so that tests can leave it out.
   */
  readonly rateLimit?: preHandlerHookHandler;
  /** RL-1: balance and ledger reads by people (balance_read.user, 30 a minute); optional for tests. */
  readonly readRateLimit?: preHandlerHookHandler;
  /** RL-1's per-user job-type limits for the reserve route (jobTypeRateLimit), after rateLimit. */
  readonly jobRateLimit?: preHandlerHookHandler;
}

const ACCOUNT: { auth: RouteAuth } = { auth: { allow: ['user', 'apiKey', 'service'] } };
const ADMIN: { auth: RouteAuth } = { auth: { allow: ['admin'] } };

/** Keys and ids: printable, no control characters (ajv compiles patterns with the u flag). */
const PRINTABLE = '^[^\\u0000-\\u001f\\u007f\\uD800-\\uDFFF]+$';
const Credits = Type.Integer({ minimum: 1, maximum: MAX_CREDITS_PER_OPERATION, description: 'Whole credits' });
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);

export const ReserveBody = Type.Object({
  jobId: Type.String({ minLength: 1, maxLength: 128, pattern: PRINTABLE }),
  jobType: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z][a-z0-9_.-]*$' }),
  units: Type.Optional(
    Type.Integer({ minimum: 1, maximum: MAX_CREDITS_PER_OPERATION, description: 'For a priced job type (required there): the count it is priced by, e.g. pages' }),
  ),
  amount: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_CREDITS_PER_OPERATION, description: 'For an unpriced job type only (required there)' })),
  idempotencyKey: Type.String({ minLength: 1, maxLength: 128, pattern: PRINTABLE, description: 'Per account; a retry returns the first reservation' }),
});

export const ReservationSchema = Type.Object({
  id: Type.String(),
  jobId: Type.String(),
  jobType: Type.String(),
  amount: Type.Integer(),
  status: Type.Union([Type.Literal('held'), Type.Literal('confirmed'), Type.Literal('released')]),
  expiresAt: Type.String({ format: 'date-time' }),
});
const ReservationResponse = Type.Object({ reservation: ReservationSchema });
const ReservationParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });

const GrantSchema = Type.Object({
  id: Type.String(),
  source: Type.String(),
  amount: Type.Integer(),
  remaining: Type.Integer(),
  expiresAt: Nullable(Type.String({ format: 'date-time' })),
});
const BalanceResponse = Type.Object({ balance: Type.Integer(), held: Type.Integer(), grants: Type.Array(GrantSchema) });

const LedgerQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ description: 'Clamped to 1..100; default 50' })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 16, pattern: '^[1-9][0-9]*$', description: 'nextCursor of the previous page' })),
});
const LedgerEntrySchema = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  amount: Type.Integer({ description: 'Signed: + into the spendable balance, - out of it (spend: out of what was held)' }),
  grantId: Nullable(Type.String()),
  reservationId: Nullable(Type.String()),
  createdAt: Type.String({ format: 'date-time' }),
});
const LedgerResponse = Type.Object({ items: Type.Array(LedgerEntrySchema), nextCursor: Nullable(Type.String()) });

const AdminGrantParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });
const AdminGrantBody = Type.Object({
  amount: Credits,
  source: Type.Union([Type.Literal('admin'), Type.Literal('promotion'), Type.Literal('purchase'), Type.Literal('refund_reversal')]),
  expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
  reference: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: PRINTABLE })),
});
const AdminGrantResponse = Type.Object({ grant: GrantSchema });

/**
 * Prepaid credits (API.md, Account and Operator): balance, ledger, reserve / confirm /
 * release for account principals (the account always from the principal, ACC-2), and the
 * operator grant.
 */
export async function creditRoutes(fastify: FastifyInstance, options: CreditRouteOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { service } = options;
  const preHandler = options.rateLimit ? [options.rateLimit] : [];
  const readPreHandler = [...preHandler, ...(options.readRateLimit ? [options.readRateLimit] : [])];

  app.get(
    '/api/credits',
    { config: ACCOUNT, preHandler: readPreHandler, schema: { tags: ['credits'], summary: 'Balance, held credits and usable grants', response: { 200: BalanceResponse } } },
    async (request, reply) => {
      const { accountId } = accountPrincipal(request);
      void reply.header('Cache-Control', 'no-store');
      return service.balance(accountId);
    },
  );

  app.get(
    '/api/credits/ledger',
    {
      config: ACCOUNT,
      preHandler: readPreHandler,
      schema: { tags: ['credits'], summary: 'Every credit movement, newest first', querystring: LedgerQuery, response: { 200: LedgerResponse } },
    },
    async (request, reply) => {
      const { accountId } = accountPrincipal(request);
      void reply.header('Cache-Control', 'no-store');
      return service.ledger(accountId, {
        ...(request.query.limit !== undefined ? { limit: request.query.limit } : {}),
        ...(request.query.cursor !== undefined ? { cursor: request.query.cursor } : {}),
      });
    },
  );

  app.post(
    '/api/credits/reservations',
    {
      config: ACCOUNT,
      preHandler: options.jobRateLimit ? [...preHandler, options.jobRateLimit] : preHandler,
      schema: {
        tags: ['credits'],
        summary: 'Hold credits for a job: 201 when held now, 200 when the idempotency key already reserved (nothing more held)',
        body: ReserveBody,
        response: { 200: ReservationResponse, 201: ReservationResponse },
      },
    },
    async (request, reply) => {
      const { accountId } = accountPrincipal(request);
      const result = await service.reserve(accountId, request.body);
      return reply.status(result.replayed ? 200 : 201).send({ reservation: result.reservation });
    },
  );

  app.post(
    '/api/credits/reservations/:id/confirm',
    {
      config: ACCOUNT,
      preHandler,
      schema: { tags: ['credits'], summary: 'Turn a hold into spend', params: ReservationParams, response: { 200: ReservationResponse } },
    },
    async (request) => {
      const { accountId } = accountPrincipal(request);
      return { reservation: await service.confirm(accountId, request.params.id) };
    },
  );

  app.post(
    '/api/credits/reservations/:id/release',
    {
      config: ACCOUNT,
      preHandler,
      schema: { tags: ['credits'], summary: 'Return a hold to its grants', params: ReservationParams, response: { 200: ReservationResponse } },
    },
    async (request) => {
      const { accountId } = accountPrincipal(request);
      return { reservation: await service.release(accountId, request.params.id) };
    },
  );

  app.post(
    '/api/admin/accounts/:id/credits',
    {
      config: ADMIN,
      preHandler: adminPrincipalGuard,
      schema: {
        tags: ['admin'],
        summary: 'Grant credits to an account (audited)',
        params: AdminGrantParams,
        body: AdminGrantBody,
        response: { 201: AdminGrantResponse },
      },
    },
    async (request, reply) => {
      const { amount, source, expiresAt, reference } = request.body;
      const grant = await service.grant(
        request.params.id,
        { amount, source, ...(expiresAt !== undefined ? { expiresAt: new Date(expiresAt) } : {}), ...(reference !== undefined ? { reference } : {}) },
        { ...actorOf(request.principal), ip: request.ip },
      );
      return reply.status(201).send({ grant });
    },
  );
}
