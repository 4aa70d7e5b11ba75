import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { AppError, validationError } from '../../errors/app-error.js';
import { asSystem } from '../../platform/database/access.js';
import type { Database, Queryable } from '../../platform/database/database.js';
import { clampPageLimit } from '../../platform/http/pagination.js';
import { adminPrincipalGuard } from '../audit/admin-guard.js';
import type { RouteAuth } from '../auth/guards.js';
import { currentSubscriptionOf } from '../stripe/webhooks/billing-state.repository.js';
import { subscriptionViewOfRow } from './billing.service.js';

/**
 * GET /api/admin/accounts/:id/payments (UI-1, the dashboard's account page): the account's
 * local payments (table `payments`, as the webhook handlers record them), newest first,
 * paginated `{items, nextCursor}`, with the account's current subscription beside them.
 * Read-only; operator admin only (the admin rate limit is added by app.ts for admin-only
 * routes). Amounts are integers of the currency's smallest unit.
 */
export interface AdminPaymentRouteOptions {
  readonly database: Database;
}

const ADMIN: { auth: RouteAuth } = { auth: { allow: ['admin'] } };
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);
const DateTime = Type.String({ format: 'date-time' });

const Params = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$', description: 'The account id' }) });
const Query = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ description: 'Clamped to 1..100 (USE-2); default 50' })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 400, pattern: '^[A-Za-z0-9_-]+$', description: 'nextCursor of the previous page' })),
  },
  { additionalProperties: false },
);

export const AdminPaymentSchema = Type.Object({
  id: Type.String({ description: 'The local payment id (pay_...), what POST /api/admin/refunds takes' }),
  accountId: Type.String(),
  kind: Type.String({ description: 'credit_pack, subscription_invoice or charge' }),
  status: Type.String({ description: 'pending, requires_action, succeeded or failed' }),
  amount: Type.Integer({ description: 'In the smallest unit of the currency (cents)' }),
  currency: Type.String({ description: 'Lower-case ISO code, e.g. usd' }),
  amountRefunded: Type.Integer({ description: 'Refunded so far, in the smallest unit' }),
  creditPackId: Nullable(Type.String()),
  creditsGranted: Type.Integer({ description: 'Credits the purchase granted (0 when none)' }),
  creditGrantId: Nullable(Type.String()),
  creditsReversed: Type.Integer({ description: 'Credits taken back from the grant by refunds so far' }),
  creditsReversalShortfall: Type.Integer({ description: 'Credits refunds should have taken back but had been spent already' }),
  stripePaymentIntentId: Nullable(Type.String()),
  stripeChargeId: Nullable(Type.String()),
  stripeCheckoutSessionId: Nullable(Type.String()),
  stripeInvoiceId: Nullable(Type.String()),
  stripeSubscriptionId: Nullable(Type.String()),
  disputedAt: Nullable(DateTime),
  createdAt: DateTime,
  updatedAt: DateTime,
});

const SubscriptionSchema = Type.Object({
  id: Type.String(),
  status: Type.String(),
  plan: Nullable(Type.String()),
  currentPeriodEnd: Nullable(DateTime),
  cancelAtPeriodEnd: Type.Boolean(),
  trialEnd: Nullable(DateTime),
});

const Response = Type.Object({
  items: Type.Array(AdminPaymentSchema),
  nextCursor: Nullable(Type.String()),
  subscription: Type.Union([SubscriptionSchema, Type.Null()], { description: "The account's newest live subscription, else its newest one, else null" }),
});

interface PaymentRow {
  id: string;
  account_id: string;
  kind: string;
  status: string;
  amount_cents: string | number;
  currency: string;
  amount_refunded_cents: string | number;
  credit_pack_id: string | null;
  credits_granted: string | number;
  credit_grant_id: string | null;
  credits_reversed: string | number;
  credits_reversal_shortfall: string | number;
  stripe_payment_intent_id: string | null;
  stripe_charge_id: string | null;
  stripe_checkout_session_id: string | null;
  stripe_invoice_id: string | null;
  stripe_subscription_id: string | null;
  disputed_at: Date | string | null;
  created_at: Date | string;
  updated_at: Date | string;
  /** created_at with microseconds, for the page cursor. */
  cursor_at: string;
}

const iso = (value: Date | string | null): string | null => (value === null ? null : new Date(value).toISOString());

/** bigint columns come back as strings; they are checked to fit a safe integer. */
function whole(value: string | number): number {
  const number = Number(value);
  if (!Number.isSafeInteger(number)) throw new Error(`a payment amount beyond a safe integer: ${String(value)}`);
  return number;
}

/** The page cursor: base64url of `<created_at with microseconds>|<payment id>` of the last item shown. */
export function encodePaymentCursor(at: string, id: string): string {
  return Buffer.from(`${at}|${id}`, 'utf8').toString('base64url');
}

const CURSOR_TEXT = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)\|(pay_[A-Za-z0-9_-]{1,124})$/;

export function decodePaymentCursor(cursor: string): { at: string; id: string } {
  const match = CURSOR_TEXT.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match?.[1] || !match[2] || Number.isNaN(Date.parse(match[1]))) {
    throw validationError([{ field: 'query.cursor', message: 'is not a valid cursor' }]);
  }
  return { at: match[1], id: match[2] };
}

function paymentView(row: PaymentRow) {
  return {
    id: row.id,
    accountId: row.account_id,
    kind: row.kind,
    status: row.status,
    amount: whole(row.amount_cents),
    currency: row.currency,
    amountRefunded: whole(row.amount_refunded_cents),
    creditPackId: row.credit_pack_id,
    creditsGranted: whole(row.credits_granted),
    creditGrantId: row.credit_grant_id,
    creditsReversed: whole(row.credits_reversed),
    creditsReversalShortfall: whole(row.credits_reversal_shortfall),
    stripePaymentIntentId: row.stripe_payment_intent_id,
    stripeChargeId: row.stripe_charge_id,
    stripeCheckoutSessionId: row.stripe_checkout_session_id,
    stripeInvoiceId: row.stripe_invoice_id,
    stripeSubscriptionId: row.stripe_subscription_id,
    disputedAt: iso(row.disputed_at),
    createdAt: iso(row.created_at) as string,
    updatedAt: iso(row.updated_at) as string,
  };
}

/** The same view GET /api/billing/subscription answers: the newest live subscription, else the newest. */
async function currentSubscription(tx: Queryable, accountId: string) {
  const row = await currentSubscriptionOf(tx, accountId);
  return row ? subscriptionViewOfRow(row) : null;
}

export async function adminPaymentRoutes(fastify: FastifyInstance, options: AdminPaymentRouteOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/api/admin/accounts/:id/payments',
    {
      config: ADMIN,
      preHandler: adminPrincipalGuard,
      schema: {
        tags: ['admin'],
        summary: "An account's payments, newest first, with its current subscription (the dashboard's account page)",
        description:
          'The payments recorded locally from Stripe (credit packs, subscription invoices, charges): amounts and refunded amounts in the smallest unit, the credits a pack granted, and the ids to refund with (POST /api/admin/refunds). 404 for an unknown account; 400 for a bad cursor.',
        params: Params,
        querystring: Query,
        response: { 200: Response },
      },
    },
    async (request, reply) => {
      const accountId = request.params.id;
      const limit = clampPageLimit(request.query.limit);
      const after = request.query.cursor !== undefined ? decodePaymentCursor(request.query.cursor) : undefined;
      const answer = await asSystem(options.database, async (tx) => {
        const { rows: accounts } = await tx.query<{ id: string }>('SELECT id FROM accounts WHERE id = $1', [accountId]);
        if (accounts.length === 0) throw new AppError('NOT_FOUND', 'Account not found');
        const { rows } = await tx.query<PaymentRow>(
          `SELECT id, account_id, kind, status, amount_cents, currency, amount_refunded_cents, credit_pack_id, credits_granted,
                  credit_grant_id, credits_reversed, credits_reversal_shortfall, stripe_payment_intent_id, stripe_charge_id, stripe_checkout_session_id, stripe_invoice_id,
                  stripe_subscription_id, disputed_at, created_at, updated_at,
                  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at
             FROM payments
            WHERE account_id = $1
              AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::text))
            ORDER BY created_at DESC, id DESC
            LIMIT $4`,
          [accountId, after?.at ?? null, after?.id ?? null, limit + 1],
        );
        const page = rows.slice(0, limit);
        const last = page[page.length - 1];
        return {
          items: page.map(paymentView),
          nextCursor: rows.length > limit && last ? encodePaymentCursor(last.cursor_at, last.id) : null,
          subscription: await currentSubscription(tx, accountId),
        };
      });
      void reply.header('Cache-Control', 'no-store');
      return answer;
    },
  );
}
