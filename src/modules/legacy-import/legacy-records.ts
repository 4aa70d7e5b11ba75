import { createHash } from 'node:crypto';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { ValidateFunction } from 'ajv';
import { createValidatorCompiler, fieldProblems } from '../../platform/http/validation.js';
import { ARGON2_OPTIONS } from '../auth/passwords.js';
import { normaliseEmail } from '../accounts/accounts.repository.js';
import { ACCOUNT_PLANS } from '../accounts/admin-accounts.routes.js';
import { MAX_CREDITS_PER_OPERATION } from '../credits/credits.service.js';
import type { PaymentKind, PaymentStatus, SubscriptionStatus } from '../stripe/webhooks/billing-state.repository.js';

/**
 * The legacy format (docs/legacy-import.md): what one line of users.jsonl,
 * subscriptions.jsonl or payments.jsonl must hold, and the pure checks that turn a parsed
 * line into a record the import can write, or into the field and reason it is refused for.
 */

export type LegacyKind = 'user' | 'subscription' | 'payment';

/** In the order they are imported: subscriptions and payments name users. */
export const LEGACY_KINDS: readonly LegacyKind[] = ['user', 'subscription', 'payment'];

export const LEGACY_FILES: Readonly<Record<LegacyKind, string>> = {
  user: 'users.jsonl',
  subscription: 'subscriptions.jsonl',
  payment: 'payments.jsonl',
};

const LEGACY_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const LegacyId = Type.String({ pattern: LEGACY_ID.source });
/** A time as text; checked in code, so the message can say what is wanted. */
const Time = Type.String({ maxLength: 40 });
const nullable = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));
const stripeId = (prefix: string) => Type.String({ pattern: `^${prefix}_[A-Za-z0-9_]{1,250}$` });
const Cents = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

const UserSchema = Type.Object({
  id: LegacyId,
  email: Type.String({ format: 'email', maxLength: 254 }),
  name: nullable(Type.String({ minLength: 1, maxLength: 200 })),
  /** The legacy id of the user whose account this user joins as a member; absent for an account's owner. */
  owner_id: nullable(LegacyId),
  password_hash: nullable(Type.String({ maxLength: 512 })),
  stripe_customer_id: nullable(stripeId('cus')),
  credits: nullable(Type.Integer({ minimum: 0, maximum: MAX_CREDITS_PER_OPERATION })),
  credits_expire_at: nullable(Time),
  created_at: nullable(Time),
});

const SUBSCRIPTION_STATUSES = ['incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused'] as const;

const SubscriptionSchema = Type.Object({
  id: LegacyId,
  user_id: LegacyId,
  stripe_subscription_id: stripeId('sub'),
  status: Type.Union(SUBSCRIPTION_STATUSES.map((status) => Type.Literal(status))),
  plan: nullable(Type.Union(ACCOUNT_PLANS.map((plan) => Type.Literal(plan)))),
  stripe_price_id: nullable(stripeId('price')),
  current_period_start: nullable(Time),
  current_period_end: nullable(Time),
  cancel_at_period_end: nullable(Type.Boolean()),
  cancel_at: nullable(Time),
  canceled_at: nullable(Time),
  ended_at: nullable(Time),
  trial_end: nullable(Time),
  created_at: Time,
});

const PAYMENT_KINDS = ['credit_pack', 'subscription_invoice', 'charge'] as const;
const PAYMENT_STATUSES = ['pending', 'requires_action', 'succeeded', 'failed'] as const;

const PaymentSchema = Type.Object({
  id: LegacyId,
  user_id: LegacyId,
  kind: nullable(Type.Union(PAYMENT_KINDS.map((kind) => Type.Literal(kind)))),
  amount_cents: Cents,
  currency: Type.String({ pattern: '^[A-Za-z]{3}$' }),
  status: Type.Union(PAYMENT_STATUSES.map((status) => Type.Literal(status))),
  amount_refunded_cents: nullable(Cents),
  stripe_payment_intent_id: nullable(stripeId('pi')),
  stripe_charge_id: nullable(stripeId('ch')),
  stripe_invoice_id: nullable(stripeId('in')),
  stripe_checkout_session_id: nullable(stripeId('cs')),
  stripe_subscription_id: nullable(stripeId('sub')),
  credit_pack_id: nullable(Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' })),
  created_at: Time,
});

export interface LegacyUser {
  readonly kind: 'user';
  readonly id: string;
  readonly email: string;
  readonly name: string | null;
  readonly ownerId: string | null;
  /** The legacy hash when it is an argon2id hash at least as strong as ours, else null. */
  readonly passwordHash: string | null;
  /** True when the record had a password hash that is not kept (the user resets their password). */
  readonly passwordDropped: boolean;
  readonly stripeCustomerId: string | null;
  readonly credits: number;
  readonly creditsExpireAt: Date | null;
  readonly createdAt: Date | null;
}

export interface LegacySubscription {
  readonly kind: 'subscription';
  readonly id: string;
  readonly userId: string;
  readonly stripeSubscriptionId: string;
  readonly status: SubscriptionStatus;
  readonly plan: string | null;
  readonly stripePriceId: string | null;
  readonly currentPeriodStart: Date | null;
  readonly currentPeriodEnd: Date | null;
  readonly cancelAtPeriodEnd: boolean;
  readonly cancelAt: Date | null;
  readonly canceledAt: Date | null;
  readonly endedAt: Date | null;
  readonly trialEnd: Date | null;
  readonly createdAt: Date;
}

export interface LegacyPayment {
  readonly kind: 'payment';
  readonly id: string;
  readonly userId: string;
  readonly paymentKind: PaymentKind;
  readonly amountCents: number;
  readonly currency: string;
  readonly status: PaymentStatus;
  readonly amountRefundedCents: number;
  readonly stripePaymentIntentId: string | null;
  readonly stripeChargeId: string | null;
  readonly stripeInvoiceId: string | null;
  readonly stripeCheckoutSessionId: string | null;
  readonly stripeSubscriptionId: string | null;
  readonly creditPackId: string | null;
  readonly createdAt: Date;
}

export type LegacyRecord = LegacyUser | LegacySubscription | LegacyPayment;

export type ParsedRecord =
  | { readonly ok: true; readonly record: LegacyRecord; readonly fingerprint: string }
  | { readonly ok: false; readonly legacyId: string | null; readonly field: string | null; readonly message: string };

/** A record refused for one field: thrown inside the checks, turned into a ParsedRecord. */
export class RecordProblem extends Error {
  constructor(
    readonly field: string | null,
    message: string,
  ) {
    super(message);
    this.name = 'RecordProblem';
  }
}

const compile = createValidatorCompiler();
const validators: Record<LegacyKind, ValidateFunction> = {
  user: compile({ schema: UserSchema, httpPart: 'body', method: 'POST', url: '(legacy users)' }) as ValidateFunction,
  subscription: compile({ schema: SubscriptionSchema, httpPart: 'body', method: 'POST', url: '(legacy subscriptions)' }) as ValidateFunction,
  payment: compile({ schema: PaymentSchema, httpPart: 'body', method: 'POST', url: '(legacy payments)' }) as ValidateFunction,
};

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$/;

function time(value: string | null | undefined, field: string): Date | null {
  if (value === undefined || value === null) return null;
  const at = new Date(value);
  if (!ISO_TIME.test(value) || Number.isNaN(at.getTime())) {
    throw new RecordProblem(field, 'must be an ISO 8601 time with a zone, e.g. 2024-01-31T12:00:00Z');
  }
  return at;
}

function requiredTime(value: string, field: string): Date {
  return time(value, field) as Date;
}

const ARGON2ID_PHC = /^\$argon2id\$v=19\$m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,3})\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}$/;

/**
 * Whether a legacy password hash can stand in our users table: only an argon2id hash
 * (PHC string, version 19) with at least our parameters (AUTH-1). Anything weaker
 * (bcrypt, SHA, an argon2id with less memory) is never stored as if it were ours.
 */
export function isKeepablePasswordHash(hash: string): boolean {
  const match = ARGON2ID_PHC.exec(hash);
  if (!match) return false;
  const [memory, time, lanes] = [Number(match[1]), Number(match[2]), Number(match[3])];
  return memory >= ARGON2_OPTIONS.memoryCost && time >= ARGON2_OPTIONS.timeCost && lanes >= ARGON2_OPTIONS.parallelism;
}

/** The record without null-valued fields, keys sorted: equal records have equal digests however they were written. */
export function fingerprintOf(value: Readonly<Record<string, unknown>>): string {
  const canonical = Object.keys(value)
    .filter((key) => value[key] !== null)
    .sort()
    .map((key) => [key, value[key]]);
  return createHash('sha256').update(JSON.stringify(canonical), 'utf8').digest('hex');
}

function toUser(value: Static<typeof UserSchema>): LegacyUser {
  const ownerId = value.owner_id ?? null;
  if (ownerId !== null) {
    if (ownerId === value.id) throw new RecordProblem('owner_id', 'must name another user');
    for (const field of ['credits', 'credits_expire_at', 'stripe_customer_id'] as const) {
      if (value[field] !== undefined && value[field] !== null) throw new RecordProblem(field, 'belongs on the account owner\u2019s record, not a member\u2019s');
    }
  }
  const credits = value.credits ?? 0;
  const creditsExpireAt = time(value.credits_expire_at, 'credits_expire_at');
  if (creditsExpireAt !== null && credits === 0) throw new RecordProblem('credits_expire_at', 'is only allowed with credits');
  const legacyHash = value.password_hash ?? null;
  const kept = legacyHash !== null && isKeepablePasswordHash(legacyHash);
  return {
    kind: 'user',
    id: value.id,
    email: normaliseEmail(value.email),
    name: value.name ?? null,
    ownerId,
    passwordHash: kept ? legacyHash : null,
    passwordDropped: legacyHash !== null && !kept,
    stripeCustomerId: value.stripe_customer_id ?? null,
    credits,
    creditsExpireAt,
    createdAt: time(value.created_at, 'created_at'),
  };
}

function toSubscription(value: Static<typeof SubscriptionSchema>): LegacySubscription {
  const currentPeriodStart = time(value.current_period_start, 'current_period_start');
  const currentPeriodEnd = time(value.current_period_end, 'current_period_end');
  if (currentPeriodStart && currentPeriodEnd && currentPeriodEnd < currentPeriodStart) {
    throw new RecordProblem('current_period_end', 'must not be before current_period_start');
  }
  return {
    kind: 'subscription',
    id: value.id,
    userId: value.user_id,
    stripeSubscriptionId: value.stripe_subscription_id,
    status: value.status,
    plan: value.plan ?? null,
    stripePriceId: value.stripe_price_id ?? null,
    currentPeriodStart,
    currentPeriodEnd,
    cancelAtPeriodEnd: value.cancel_at_period_end ?? false,
    cancelAt: time(value.cancel_at, 'cancel_at'),
    canceledAt: time(value.canceled_at, 'canceled_at'),
    endedAt: time(value.ended_at, 'ended_at'),
    trialEnd: time(value.trial_end, 'trial_end'),
    createdAt: requiredTime(value.created_at, 'created_at'),
  };
}

function toPayment(value: Static<typeof PaymentSchema>): LegacyPayment {
  const amountRefundedCents = value.amount_refunded_cents ?? 0;
  if (amountRefundedCents > value.amount_cents) throw new RecordProblem('amount_refunded_cents', 'must not exceed amount_cents');
  const paymentKind = value.kind ?? 'charge';
  if (value.credit_pack_id !== undefined && value.credit_pack_id !== null && paymentKind !== 'credit_pack') {
    throw new RecordProblem('credit_pack_id', 'is only allowed on a payment of kind credit_pack');
  }
  return {
    kind: 'payment',
    id: value.id,
    userId: value.user_id,
    paymentKind,
    amountCents: value.amount_cents,
    currency: value.currency.toLowerCase(),
    status: value.status,
    amountRefundedCents,
    stripePaymentIntentId: value.stripe_payment_intent_id ?? null,
    stripeChargeId: value.stripe_charge_id ?? null,
    stripeInvoiceId: value.stripe_invoice_id ?? null,
    stripeCheckoutSessionId: value.stripe_checkout_session_id ?? null,
    stripeSubscriptionId: value.stripe_subscription_id ?? null,
    creditPackId: value.credit_pack_id ?? null,
    createdAt: requiredTime(value.created_at, 'created_at'),
  };
}

/**
 * One parsed line of a legacy file as a record of `kind`, or the first problem with it:
 * unknown and missing fields, wrong types (no coercion: "12" is not 12, 12.5 is no
 * amount of cents), bad emails, ids and times.
 */
export function parseLegacyRecord(kind: LegacyKind, value: unknown): ParsedRecord {
  const legacyId =
    typeof value === 'object' && value !== null && typeof (value as { id?: unknown }).id === 'string' && LEGACY_ID.test((value as { id: string }).id)
      ? (value as { id: string }).id
      : null;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, legacyId, field: null, message: 'must be a JSON object' };
  }
  const validate = validators[kind];
  if (!validate(value)) {
    const problem = fieldProblems(validate.errors ?? [], 'body')[0];
    return { ok: false, legacyId, field: problem && problem.field !== 'body' ? problem.field : null, message: problem?.message ?? 'is invalid' };
  }
  try {
    const record =
      kind === 'user'
        ? toUser(value as Static<typeof UserSchema>)
        : kind === 'subscription'
          ? toSubscription(value as Static<typeof SubscriptionSchema>)
          : toPayment(value as Static<typeof PaymentSchema>);
    return { ok: true, record, fingerprint: fingerprintOf(value as Record<string, unknown>) };
  } catch (error) {
    if (error instanceof RecordProblem) return { ok: false, legacyId, field: error.field, message: error.message };
    throw error;
  }
}
