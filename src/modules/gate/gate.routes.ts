import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../errors/app-error.js';
import type { RouteAuth } from '../auth/guards.js';
import { accountPrincipal } from '../auth/guards.js';
import { ReserveBody, ReservationSchema } from '../credits/credits.routes.js';
import { CheckBody, EntitlementAnswerSchema } from '../entitlements/entitlements.routes.js';
import type { GateService } from './gate.service.js';

export interface GateRouteOptions {
  readonly service: GateService;
  /**
   * The route's rate limit (RL-5 per plan for keys and services, per user for people, plus
   * the job-type limits). A RATE_LIMITED refusal becomes an answer with reason
   * RATE_LIMITED (and Retry-After), not a 429: the caller asked a question.
   */
  readonly rateLimit?: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
}

const ACCOUNT: { auth: RouteAuth } = { auth: { allow: ['user', 'apiKey', 'service'] } };

const GateBody = Type.Object({
  feature: CheckBody.properties.feature,
  track: CheckBody.properties.track,
  credits: Type.Optional(ReserveBody),
});

const GateResponse = Type.Object({
  allowed: Type.Boolean(),
  reason: Type.Optional(
    Type.Union([Type.Literal('RATE_LIMITED'), Type.Literal('NOT_ENTITLED'), Type.Literal('LIMIT_REACHED'), Type.Literal('INSUFFICIENT_CREDITS')]),
  ),
  entitlement: Type.Union([EntitlementAnswerSchema, Type.Null()]),
  reservation: Type.Optional(ReservationSchema),
});

/** POST /api/gate (API.md): rate limit + entitlement (+ track) + credit reservation, all or nothing. */
export async function gateRoutes(fastify: FastifyInstance, options: GateRouteOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.post(
    '/api/gate',
    {
      config: ACCOUNT,
      schema: {
        tags: ['gate'],
        summary: 'One call before a paid action: rate limit, entitlement (tracked when asked) and credit hold, all or nothing',
        body: GateBody,
        response: { 200: GateResponse },
      },
    },
    async (request, reply) => {
      const { accountId } = accountPrincipal(request);
      if (options.rateLimit) {
        try {
          await options.rateLimit(request, reply);
        } catch (error) {
          if (!(error instanceof AppError) || error.code !== 'RATE_LIMITED') throw error;
          if (error.headers) void reply.headers(error.headers);
          return { allowed: false, reason: 'RATE_LIMITED' as const, entitlement: null };
        }
      }
      return options.service.pass(accountId, request.body);
    },
  );
}
