import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { rateLimit } from '../../platform/rate-limit/hooks.js';
import { byUser } from '../../platform/rate-limit/keys.js';
import type { RateLimiter } from '../../platform/rate-limit/limiter.js';
import type { RouteAuth } from '../auth/guards.js';
import { accountPrincipal } from '../auth/guards.js';
import { actorOf } from '../auth/principal.js';
import type { BillingActor, BillingService } from './billing.service.js';

export interface BillingRouteOptions {
  readonly service: BillingService;
  readonly limiter: RateLimiter;
}

/** Reading: any account principal. Changing what is charged: the account's owner, signed in (CSRF on cookies). */
const ACCOUNT: { auth: RouteAuth } = { auth: { allow: ['user', 'apiKey', 'service'] } };
const OWNER: { auth: RouteAuth } = { auth: { allow: ['user'], ownerOnly: true } };

const PLAN_ID = '^[A-Z][A-Z0-9_]{1,31}$';
const PRINTABLE = '^[^\\u0000-\\u001f\\u007f\\uD800-\\uDFFF]+$';
const PlanField = Type.String({ minLength: 2, maxLength: 32, pattern: PLAN_ID, description: 'A plan id of the catalogue, e.g. PRO' });

const CheckoutBody = Type.Object(
  {
    plan: Type.Optional(PlanField),
    creditPack: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: PRINTABLE, description: 'A credit pack id of the catalogue' })),
  },
  { description: 'Exactly one of plan and creditPack' },
);
const ChangePlanBody = Type.Object({ plan: PlanField });
/** No fields; a body that is present must be an empty object. */
const EmptyBody = Type.Object({});
const emptyBodyByDefault = async (request: FastifyRequest): Promise<void> => {
  if (request.body === undefined || request.body === null) request.body = {};
};
const CheckoutResponse = Type.Object({ url: Type.String(), sessionId: Type.String() });
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);
const SubscriptionSchema = Type.Object({
  id: Type.String(),
  status: Type.String({ description: "Stripe's: trialing, active, past_due, canceled, unpaid, incomplete, incomplete_expired, paused" }),
  plan: Nullable(Type.String()),
  currentPeriodEnd: Nullable(Type.String({ format: 'date-time' })),
  cancelAtPeriodEnd: Type.Boolean(),
  trialEnd: Nullable(Type.String({ format: 'date-time' })),
});
const SubscriptionResponse = Type.Object({ subscription: Type.Union([SubscriptionSchema, Type.Null()]) });
const ChangedResponse = Type.Object({ subscription: SubscriptionSchema });

function actorFrom(request: FastifyRequest): BillingActor {
  const principal = accountPrincipal(request);
  const { actorType, actorId } = actorOf(principal);
  return {
    accountId: principal.accountId,
    userId: principal.kind === 'user' || principal.kind === 'service' ? principal.userId : null,
    actorType,
    actorId,
    ip: request.ip,
  };
}

/** PAY-2..5 (API.md "Billing"): the account's subscription, checkout, cancel, resume, plan change. */
export async function billingRoutes(app: FastifyInstance, options: BillingRouteOptions): Promise<void> {
  const { service, limiter } = options;
  const billingLimit = rateLimit(limiter, 'billing.user', byUser);
  const checkoutLimit = rateLimit(limiter, 'checkout.user', byUser);
  const cancelLimit = rateLimit(limiter, 'cancel.user', byUser);

  app.get(
    '/api/billing/subscription',
    {
      config: ACCOUNT,
      preHandler: billingLimit,
      schema: {
        tags: ['billing'],
        summary: "The account's current subscription, or null",
        description: 'As last stored from Stripe (webhooks): its newest live subscription, else its newest one.',
        response: { 200: SubscriptionResponse },
      },
    },
    async (request) => ({ subscription: await service.currentSubscription(accountPrincipal(request).accountId) }),
  );

  app.post<{ Body: Static<typeof CheckoutBody> }>(
    '/api/billing/checkout',
    {
      config: OWNER,
      preHandler: checkoutLimit,
      schema: {
        tags: ['billing'],
        summary: 'A hosted checkout page for a plan or a credit pack (PAY-2)',
        description:
          'Exactly one of `plan` (a subscription; the plan\'s trial at the first subscription, promotion codes allowed) and `creditPack` (a one-time payment). The plan or the credits change only when Stripe confirms the payment (webhook). 403 OWNER_EXEMPT for owner and test accounts, before any call to Stripe; 409 when a plan is asked for while a subscription is live (change its plan instead).',
        body: CheckoutBody,
        response: { 200: CheckoutResponse },
      },
    },
    // The Idempotency-Key layer has claimed the header's key by now (it runs before the handler).
    async (request) => service.createCheckout(actorFrom(request), request.body, request.idempotencyClaim?.key),
  );

  app.post(
    '/api/billing/cancel',
    {
      config: OWNER,
      preValidation: emptyBodyByDefault,
      preHandler: cancelLimit,
      schema: {
        tags: ['billing'],
        summary: 'Cancel at the end of the current period (PAY-4)',
        description: 'Access stays until currentPeriodEnd, then the account moves to FREE. Repeating it answers the same. 404 without a subscription, 409 when it has ended.',
        body: EmptyBody,
        response: { 200: ChangedResponse },
      },
    },
    async (request) => service.cancel(actorFrom(request)),
  );

  app.post(
    '/api/billing/resume',
    {
      config: OWNER,
      preValidation: emptyBodyByDefault,
      preHandler: cancelLimit,
      schema: {
        tags: ['billing'],
        summary: 'Undo a scheduled cancellation before the period ends (PAY-4)',
        description: '409 when no cancellation is scheduled or the subscription has ended; 404 without a subscription.',
        body: EmptyBody,
        response: { 200: ChangedResponse },
      },
    },
    async (request) => service.resume(actorFrom(request)),
  );

  app.post<{ Body: Static<typeof ChangePlanBody> }>(
    '/api/billing/change-plan',
    {
      config: OWNER,
      preHandler: billingLimit,
      schema: {
        tags: ['billing'],
        summary: "Move the subscription to another plan, prorated (PAY-5)",
        description: "The item's price changes at Stripe with create_prorations (the difference is on the next invoice); the local plan follows from the webhook. 409 when already on that plan.",
        body: ChangePlanBody,
        response: { 200: ChangedResponse },
      },
    },
    async (request) => service.changePlan(actorFrom(request), request.body.plan),
  );
}
