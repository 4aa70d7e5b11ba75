import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Clock } from '../../platform/clock.js';
import type { Database } from '../../platform/database/database.js';
import { actorFrom } from '../api-keys/api-keys.routes.js';
import type { PlanCatalogue } from './plan-catalogue.js';
import type { Plan } from './plan-features.js';
import {
  CurrencySchema,
  FeaturesSchema,
  IntervalSchema,
  JOB_TYPE_PATTERN,
  MAX_CREDITS_PER_UNIT,
  PLAN_ID_PATTERN,
  PlanNameSchema,
  PositionSchema,
  PriceCentsSchema,
  RequestsPerMinuteSchema,
  UNIT_PATTERN,
} from './plan-schemas.js';
import { PlanAdminService } from './plans.service.js';

const Nullable = <T extends ReturnType<typeof Type.Integer>>(schema: T) => Type.Union([schema, Type.Null()]);

/** How features read in answers (the request schema is the strict, kind-specific one). */
const FeatureView = Type.Object({
  kind: Type.String(),
  enabled: Type.Optional(Type.Boolean()),
  limit: Type.Optional(Nullable(Type.Integer())),
  period: Type.Optional(Type.String()),
});

/** API.md: plans read {id, name, features, priceCents, currency, interval}; plus their RL-5 limit and updatedAt. */
const PlanView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  features: Type.Record(Type.String(), FeatureView),
  priceCents: Type.Integer(),
  currency: Type.String(),
  interval: Type.String(),
  requestsPerMinute: Nullable(Type.Integer()),
  updatedAt: Type.String({ format: 'date-time' }),
});

const JobPriceView = Type.Object({
  jobType: Type.String(),
  creditsPerUnit: Type.Integer(),
  unit: Type.String(),
  updatedAt: Type.String({ format: 'date-time' }),
});

const CreditPackView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  credits: Type.Integer(),
  priceCents: Type.Integer(),
  currency: Type.String(),
});

const PricingView = Type.Object({
  plans: Type.Array(PlanView),
  jobCosts: Type.Array(JobPriceView),
  creditPacks: Type.Array(CreditPackView),
});

const PlanParams = Type.Object({ id: Type.String({ pattern: PLAN_ID_PATTERN, description: 'Plan id, e.g. PRO' }) });
const PlanBody = Type.Object(
  {
    name: Type.Optional(PlanNameSchema),
    priceCents: Type.Optional(PriceCentsSchema),
    currency: Type.Optional(CurrencySchema),
    interval: Type.Optional(IntervalSchema),
    requestsPerMinute: Type.Optional(RequestsPerMinuteSchema),
    features: Type.Optional(FeaturesSchema),
    position: Type.Optional(PositionSchema),
  },
  { minProperties: 1, additionalProperties: false },
);

const JobTypeParams = Type.Object({ jobType: Type.String({ pattern: JOB_TYPE_PATTERN }) });
const JobPriceBody = Type.Object(
  {
    creditsPerUnit: Type.Integer({ minimum: 1, maximum: MAX_CREDITS_PER_UNIT }),
    unit: Type.Optional(Type.String({ pattern: UNIT_PATTERN })),
  },
  { additionalProperties: false },
);

const ADMIN = { auth: { allow: ['admin'] } } as const;

export interface PlanRouteOptions {
  readonly catalogue: PlanCatalogue;
  readonly database: Database;
  readonly clock: Clock;
}

function planView(plan: Plan): Static<typeof PlanView> {
  return {
    id: plan.id,
    name: plan.name,
    features: plan.features as Static<typeof PlanView>['features'],
    priceCents: plan.priceCents,
    currency: plan.currency,
    interval: plan.interval,
    requestsPerMinute: plan.requestsPerMinute,
    updatedAt: plan.updatedAt,
  };
}

/**
 * The public price list (GET /api/pricing) and the operator's catalogue changes
 * (PUT /api/admin/plans/:id, PUT /api/admin/pricing/:jobType), audited (TIER-5).
 */
export async function planRoutes(app: FastifyInstance, options: PlanRouteOptions): Promise<void> {
  const { catalogue } = options;
  const service = new PlanAdminService({ database: options.database, clock: options.clock, catalogue });

  app.get(
    '/api/pricing',
    {
      schema: {
        tags: ['pricing'],
        summary: 'Public price list: plans, credit job costs and credit packs',
        response: { 200: PricingView },
      },
    },
    async (_request, reply) => {
      const snapshot = await catalogue.snapshot();
      // Public and the same for everyone; short, so an operator's change shows within a minute.
      reply.header('Cache-Control', 'public, max-age=60');
      return {
        plans: snapshot.plans.map(planView),
        jobCosts: snapshot.jobPrices,
        creditPacks: snapshot.creditPacks,
      };
    },
  );

  app.put<{ Params: Static<typeof PlanParams>; Body: Static<typeof PlanBody> }>(
    '/api/admin/plans/:id',
    {
      config: ADMIN,
      schema: {
        tags: ['admin'],
        summary: 'Change a plan (absent fields keep their value; features replaces the whole map), or create it with every field',
        params: PlanParams,
        body: PlanBody,
        response: { 200: Type.Object({ plan: PlanView }), 201: Type.Object({ plan: PlanView }) },
      },
    },
    async (request, reply) => {
      const { plan, created } = await service.putPlan(request.params.id, request.body, actorFrom(request));
      return reply.status(created ? 201 : 200).send({ plan: planView(plan) });
    },
  );

  app.put<{ Params: Static<typeof JobTypeParams>; Body: Static<typeof JobPriceBody> }>(
    '/api/admin/pricing/:jobType',
    {
      config: ADMIN,
      schema: {
        tags: ['admin'],
        summary: 'Set what one unit of a job type costs in credits (a new job type needs its unit)',
        params: JobTypeParams,
        body: JobPriceBody,
        response: { 200: Type.Object({ jobCost: JobPriceView }), 201: Type.Object({ jobCost: JobPriceView }) },
      },
    },
    async (request, reply) => {
      const { jobPrice, created } = await service.putJobPrice(request.params.jobType, request.body, actorFrom(request));
      return reply.status(created ? 201 : 200).send({ jobCost: jobPrice });
    },
  );
}
