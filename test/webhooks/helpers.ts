import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import Stripe from 'stripe';
import { insertAccount } from '../../src/modules/accounts/accounts.repository.js';
import type { Clock } from '../../src/platform/clock.js';
import { APPLICATION_ROLE, asSystem } from '../../src/platform/database/access.js';
import type { Database } from '../../src/platform/database/database.js';
import { newId } from '../../src/platform/ids.js';
import { CREDIT_PACK_METADATA_KEY, ACCOUNT_METADATA_KEY } from '../../src/modules/stripe/webhooks/stripe-conventions.js';
import type { StripeGateway } from '../../src/modules/stripe/gateway.js';
import type { TestApp } from '../helpers/app.js';

export { testWebhookSecret } from '../stripe/helpers.js';

/** Admin routes (dead letters, replay) are limited to 10 an hour per IP by default; tests call them more. */
export const WEBHOOK_TEST_RATE_LIMITS = JSON.stringify({ 'admin.ip': { limit: 1_000, windowSeconds: 3600 }, 'webhooks.ip': { limit: 10_000, windowSeconds: 60 } });

/** A Stripe-Signature header for `payload` signed with `secret` at `timestampSeconds` (Stripe's own test helper). */
export function signatureFor(payload: string, secret: string, timestampSeconds: number): string {
  return Stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp: timestampSeconds });
}

/** A Stripe event around `object`, shaped like the ones Stripe (and the sandbox) sends. */
export function eventOf(type: string, object: Record<string, unknown>, options: { id?: string; createdSeconds?: number } = {}): Stripe.Event {
  return {
    id: options.id ?? `evt_test${newId('event').slice(4).replace(/[^A-Za-z0-9]/g, '')}`,
    object: 'event',
    api_version: Stripe.API_VERSION,
    created: options.createdSeconds ?? 1_767_225_600,
    data: { object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  } as unknown as Stripe.Event;
}

/** POSTs a signed delivery to the app through inject(). */
export async function deliver(testApp: TestApp, payload: string, signature: string | undefined) {
  return testApp.app.inject({
    method: 'POST',
    url: '/api/webhooks/stripe',
    headers: { 'content-type': 'application/json; charset=utf-8', ...(signature !== undefined ? { 'stripe-signature': signature } : {}) },
    payload,
  });
}

export async function newAccount(database: Database, clock: Clock, stripeCustomerId?: string): Promise<string> {
  const id = newId('account');
  await asSystem(database, async (tx) => {
    await insertAccount(tx, { id, name: null, plan: 'FREE', at: clock.now() });
    if (stripeCustomerId) await tx.query('UPDATE accounts SET stripe_customer_id = $2 WHERE id = $1', [id, stripeCustomerId]);
  });
  return id;
}

export interface InboxRowView {
  id: string;
  type: string;
  status: string;
  reason: string | null;
  attempts: number;
  account_id: string | null;
}

export async function inboxRow(database: Database, eventId: string): Promise<InboxRowView | undefined> {
  const { rows } = await asSystem(database, (tx) =>
    tx.query<InboxRowView>('SELECT id, type, status, reason, attempts, account_id FROM stripe_events WHERE id = $1', [eventId]),
  );
  return rows[0];
}

export async function countRows(database: Database, sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await asSystem(database, (tx) => tx.query<{ count: number }>(sql, params));
  return Number(rows[0]?.count ?? 0);
}

export async function auditEvents(database: Database, event: string): Promise<Array<{ account_id: string | null; metadata: Record<string, unknown> }>> {
  const { rows } = await asSystem(database, (tx) =>
    tx.query<{ account_id: string | null; metadata: Record<string, unknown> }>('SELECT account_id, metadata FROM audit_log WHERE event = $1 ORDER BY seq', [event]),
  );
  return rows;
}

export async function purchasedCredits(database: Database, accountId: string): Promise<number[]> {
  const { rows } = await asSystem(database, (tx) =>
    tx.query<{ amount: number }>(`SELECT amount FROM credit_grants WHERE account_id = $1 AND source = 'purchase' ORDER BY created_at`, [accountId]),
  );
  return rows.map((row) => row.amount);
}

/** A credit pack in the catalogue (none ship by default). */
export async function addCreditPack(testApp: TestApp, pack: { id: string; credits: number; priceCents: number; currency: string }): Promise<void> {
  await asSystem(testApp.deps.database, (tx) =>
    tx.query('INSERT INTO credit_packs (id, name, credits, price_cents, currency) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING', [
      pack.id,
      `${pack.credits} credits`,
      pack.credits,
      pack.priceCents,
      pack.currency,
    ]),
  );
  testApp.deps.plans.invalidate();
}

/**
 * A credit-pack checkout session in the sandbox, as the checkout route will create it:
 * payment mode, the account's customer, the pack id (and the account) in metadata.
 */
export async function packSession(
  stripe: StripeGateway,
  options: { operationId: string; customerId: string; priceId: string; packId: string; metadataAccount: string },
): Promise<Stripe.Checkout.Session> {
  return stripe.createCheckoutSession(options.operationId, {
    mode: 'payment',
    customer: options.customerId,
    line_items: [{ price: options.priceId }],
    metadata: { [CREDIT_PACK_METADATA_KEY]: options.packId, [ACCOUNT_METADATA_KEY]: options.metadataAccount },
    success_url: 'http://localhost:3000/ok',
  });
}

/** Starts the app on an ephemeral port; answers its base URL. */
export async function listen(testApp: TestApp): Promise<string> {
  await testApp.app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(testApp.app.server.address() as AddressInfo).port}`;
}

/** Waits (bounded, polling) until `check` holds; the timeout is a failure, never a timing assertion. */
export async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** One answer the app gave to POST /api/webhooks/stripe: the delivered event's id and the status code. */
export interface WebhookAnswer {
  readonly eventId: string | null;
  readonly statusCode: number;
}

/**
 * Records every answer the app gives on its webhook route (pass to createTestApp's
 * beforeReady): the sandbox keeps only a delivery's last status, this keeps each attempt's.
 */
export function recordWebhookAnswers(answers: WebhookAnswer[]): (app: FastifyInstance) => void {
  return (app) => {
    app.addHook('onResponse', async (request, reply) => {
      if (request.method !== 'POST' || request.url !== '/api/webhooks/stripe') return;
      let eventId: string | null = null;
      try {
        if (Buffer.isBuffer(request.body)) eventId = (JSON.parse(request.body.toString('utf8')) as { id?: string }).id ?? null;
      } catch {
        eventId = null;
      }
      answers.push({ eventId, statusCode: reply.statusCode });
    });
  };
}

/** SQLSTATE of the fault failAfterEffect raises when the grant and the payment were already written in the transaction. */
export const FAULT_AFTER_EFFECT = 'TF001';

/**
 * A fault in the database (PGlite only: it switches to the owner role to add a trigger),
 * at the very end of the event's processing transaction: the final inbox status update
 * (finishEvent) of `eventId` raises. It raises FAULT_AFTER_EFFECT when, in that same
 * transaction, the account already has a purchase grant tied to a payment row (the effect
 * was written), and TF000 otherwise. Answers the function that removes the fault.
 */
export async function failAfterEffect(database: Database, eventId: string): Promise<() => Promise<void>> {
  if (!/^evt_[A-Za-z0-9_]+$/.test(eventId)) throw new Error(`not an event id: ${eventId}`);
  await database.exec(`RESET ROLE;
    CREATE FUNCTION test_fail_after_effect() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM credit_grants g JOIN payments p ON p.credit_grant_id = g.id WHERE g.account_id = NEW.account_id AND g.source = 'purchase') THEN
        RAISE EXCEPTION 'injected fault after the effect' USING ERRCODE = '${FAULT_AFTER_EFFECT}';
      END IF;
      RAISE EXCEPTION 'injected fault, no effect written yet' USING ERRCODE = 'TF000';
    END $$;
    CREATE TRIGGER test_fail_after_effect BEFORE UPDATE ON stripe_events FOR EACH ROW
      WHEN (NEW.id = '${eventId}' AND NEW.status = 'processed') EXECUTE FUNCTION test_fail_after_effect();
    SET ROLE ${APPLICATION_ROLE};`);
  let removed = false;
  return async () => {
    if (removed) return;
    removed = true;
    await database.exec(`RESET ROLE; DROP TRIGGER test_fail_after_effect ON stripe_events; DROP FUNCTION test_fail_after_effect(); SET ROLE ${APPLICATION_ROLE};`);
  };
}

/** Pays a session on the sandbox's hosted page (its control route, not the service's), and answers the checkout.session.completed event. */
export async function payInSandbox(stripe: StripeGateway, sandboxUrl: string, sessionId: string, card = '4242424242424242'): Promise<Stripe.Event> {
  const paid = await fetch(`${sandboxUrl}/_sandbox/checkout/${sessionId}/pay`, { method: 'POST', body: JSON.stringify({ card }) });
  if (paid.status !== 200) throw new Error(`sandbox payment answered ${paid.status}`);
  const events = await stripe.listEvents({ type: 'checkout.session.completed', limit: 100 });
  const completed = events.data.find((event) => (event.data.object as Stripe.Checkout.Session).id === sessionId);
  if (!completed) throw new Error(`no checkout.session.completed event for ${sessionId}`);
  return completed;
}
