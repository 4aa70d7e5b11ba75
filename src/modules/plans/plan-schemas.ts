import { Type, type Static } from '@sinclair/typebox';

/** Plan ids: upper-case words (FREE, STARTER, PRO_ANNUAL). The migration checks the same. */
export const PLAN_ID_PATTERN = '^[A-Z][A-Z0-9_]{1,31}$';
/** Feature names: lower-case words (api_calls_per_day). */
export const FEATURE_NAME_PATTERN = '^[a-z][a-z0-9_]{0,63}$';
/** Job types priced in credits (story, book). The migration checks the same. */
export const JOB_TYPE_PATTERN = '^[a-z][a-z0-9_]{0,63}$';
/** What one unit of a job is (story, page). */
export const UNIT_PATTERN = '^[a-z][a-z0-9_]{0,31}$';
export const MAX_FEATURES_PER_PLAN = 50;
/** Largest finite limit: far beyond any real plan, far inside the safe integer range. */
export const MAX_LIMIT = 1_000_000_000_000;
/** $10,000,000 in cents: a guard against a misplaced decimal point, not a business rule. */
export const MAX_PRICE_CENTS = 1_000_000_000;
export const MAX_REQUESTS_PER_MINUTE = 100_000_000;
export const MAX_CREDITS_PER_UNIT = 1_000_000_000;

const Limit = Type.Union([Type.Integer({ minimum: 0, maximum: MAX_LIMIT }), Type.Null()], {
  description: 'A whole number >= 0, or null for unlimited',
});

/** One feature, by kind (TIER-1); the shape plan-features.ts's `Feature` describes. */
export const FeatureSchema = Type.Union([
  Type.Object({ kind: Type.Literal('boolean'), enabled: Type.Boolean() }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('static'), limit: Limit }, { additionalProperties: false }),
  Type.Object(
    { kind: Type.Literal('metered'), limit: Limit, period: Type.Union([Type.Literal('day'), Type.Literal('month')]) },
    { additionalProperties: false },
  ),
  Type.Object({ kind: Type.Literal('concurrency'), limit: Limit }, { additionalProperties: false }),
]);

export const FeaturesSchema = Type.Record(Type.String({ pattern: FEATURE_NAME_PATTERN }), FeatureSchema, {
  maxProperties: MAX_FEATURES_PER_PLAN,
  additionalProperties: false,
  description: `Feature name (${FEATURE_NAME_PATTERN}) -> definition; at most ${MAX_FEATURES_PER_PLAN}`,
});

export const PlanIdSchema = Type.String({ pattern: PLAN_ID_PATTERN });
export const PlanNameSchema = Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });
export const PriceCentsSchema = Type.Integer({ minimum: 0, maximum: MAX_PRICE_CENTS });
/** ISO 4217, lower case as Stripe writes it. */
export const CurrencySchema = Type.String({ pattern: '^[a-z]{3}$' });
export const IntervalSchema = Type.Union([Type.Literal('month'), Type.Literal('year')]);
export const RequestsPerMinuteSchema = Type.Union([Type.Integer({ minimum: 1, maximum: MAX_REQUESTS_PER_MINUTE }), Type.Null()], {
  description: 'RL-5 per-account limit on machine routes; null = unlimited',
});
export const PositionSchema = Type.Integer({ minimum: 0, maximum: 1_000_000 });

/** A plan as the catalogue file defines it. */
export const CataloguePlanSchema = Type.Object(
  {
    id: PlanIdSchema,
    name: PlanNameSchema,
    priceCents: PriceCentsSchema,
    currency: CurrencySchema,
    interval: IntervalSchema,
    requestsPerMinute: RequestsPerMinuteSchema,
    features: FeaturesSchema,
  },
  { additionalProperties: false },
);
export type CataloguePlan = Static<typeof CataloguePlanSchema>;

export const CatalogueFileSchema = Type.Object(
  {
    version: Type.Integer({ minimum: 1 }),
    note: Type.Optional(Type.String()),
    plans: Type.Array(CataloguePlanSchema, { minItems: 1, maxItems: 100 }),
  },
  { additionalProperties: false },
);
export type CatalogueFile = Static<typeof CatalogueFileSchema>;
