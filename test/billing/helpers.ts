import { expect } from 'vitest';
import { startStripeSandbox, type StripeSandbox } from '../../src/modules/stripe/sandbox/sandbox-server.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { addCreditPack, listen, testWebhookSecret } from '../webhooks/helpers.js';
import { BILLING_TEST_LIMITS, call, CARD_OK, newPerson, settle, type Json, type Person } from './lifecycle-helpers.js';

/**
 * An app listening on a real port with its own sandbox delivering signed webhooks to it
 * (as test/webhooks/processing.test.ts), whose hosted pages are the app's /sandbox/*, and
 * a 100-credit pack at 1000 cents in the catalogue. Purchases go through POST
 * /api/billing/checkout and the hosted page's pay route, over real HTTP.
 */
export const PACK = { id: 'pack_100', credits: 100, priceCents: 1000, currency: 'usd' };

export interface BillingWorld {
  readonly sandbox: StripeSandbox;
  readonly testApp: TestApp;
  readonly appUrl: string;
  /** The same as appUrl (what lifecycle-helpers' call() reads). */
  readonly url: string;
  readonly secret: string;
  admin(): Record<string, string>;
  close(): Promise<void>;
}

export async function startBillingWorld(env: Record<string, string> = {}): Promise<BillingWorld> {
  const secret = testWebhookSecret();
  const sandbox = await startStripeSandbox({ webhookSecret: secret, webhookRetryDelaysMs: [50, 100, 200, 400] });
  const testApp = await createTestApp({
    env: {
      STRIPE_API_URL: sandbox.url,
      STRIPE_SANDBOX_START: 'false',
      STRIPE_WEBHOOK_SECRET: secret,
      STRIPE_MAX_NETWORK_RETRIES: '0',
      RATE_LIMITS: BILLING_TEST_LIMITS,
      ...env,
    },
  });
  const appUrl = await listen(testApp);
  sandbox.setWebhookUrl(`${appUrl}/api/webhooks/stripe`);
  sandbox.setHostedBaseUrl(appUrl);
  await addCreditPack(testApp, PACK);
  return {
    sandbox,
    testApp,
    appUrl,
    url: appUrl,
    secret,
    admin: () => ({ authorization: `Bearer ${testApp.config.secrets.adminApiToken}` }),
    async close() {
      await testApp.close();
      await sandbox.close();
    },
  };
}

/** POST /api/billing/checkout as the person; answers the session id. */
export async function checkout(world: BillingWorld, person: Person, body: Record<string, unknown>): Promise<string> {
  const answer = await call(world, 'POST', '/api/billing/checkout', { person, body });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body.sessionId as string;
}

/** Pays a checkout session on the hosted page through the service's /sandbox route (real HTTP), without waiting for any webhook. */
export async function payOnly(world: BillingWorld, sessionId: string, card = CARD_OK): Promise<void> {
  const paid = await call(world, 'POST', `/sandbox/checkout/${sessionId}/pay`, { body: { card } });
  expect(paid.status, JSON.stringify(paid.body)).toBe(200);
  expect(paid.body).toMatchObject({ outcome: 'succeeded', status: 'complete' });
}

/** Pays on the hosted page, then waits for the webhooks. */
export async function pay(world: BillingWorld, sessionId: string, card = CARD_OK): Promise<void> {
  await payOnly(world, sessionId, card);
  await settle(world);
}

/**
 * A new person buys the 100-credit pack: POST /api/billing/checkout, paid on the hosted
 * page; the grant is made by the checkout webhook.
 */
export async function buyPack(world: BillingWorld, label = 'pack'): Promise<{ person: Person; accountId: string; sessionId: string }> {
  const person = await newPerson(world, label);
  const sessionId = await checkout(world, person, { creditPack: PACK.id });
  await pay(world, sessionId);
  return { person, accountId: person.accountId, sessionId };
}

export interface PaymentState {
  id: string;
  status: string;
  amount_cents: number;
  amount_refunded_cents: number;
  credits_granted: number;
  credit_grant_id: string | null;
  credits_reversed: number;
  credits_reversal_shortfall: number;
  stripe_charge_id: string | null;
  stripe_payment_intent_id: string | null;
}

export async function paymentBySession(world: BillingWorld, sessionId: string): Promise<PaymentState | undefined> {
  const { rows } = await asSystem(world.testApp.deps.database, (tx) =>
    tx.query<PaymentState>('SELECT * FROM payments WHERE stripe_checkout_session_id = $1', [sessionId]),
  );
  return rows[0];
}

export async function grantRemaining(world: BillingWorld, grantId: string): Promise<number> {
  const { rows } = await asSystem(world.testApp.deps.database, (tx) => tx.query<{ remaining: number }>('SELECT remaining FROM credit_grants WHERE id = $1', [grantId]));
  return Number(rows[0]?.remaining);
}

/** Spends `amount` credits as the person through the API: POST /api/credits/reservations, then its confirm route. */
export async function spend(world: BillingWorld, person: Person, amount: number): Promise<void> {
  const key = `spend_${Date.now()}_${Math.random().toString(36).slice(2)}`;
  const held = await call(world, 'POST', '/api/credits/reservations', { person, body: { jobId: key, jobType: 'render', amount, idempotencyKey: key } });
  expect(held.status, JSON.stringify(held.body)).toBe(201);
  expect(held.body.reservation).toMatchObject({ amount, status: 'held' });
  const confirmed = await call(world, 'POST', `/api/credits/reservations/${held.body.reservation.id}/confirm`, { person });
  expect(confirmed.status, JSON.stringify(confirmed.body)).toBe(200);
  expect(confirmed.body.reservation).toMatchObject({ amount, status: 'confirmed' });
}

/**
 * Spends, through the API, what the person's other grants hold (the plan's monthly credits
 * of a signed-up account, which expire first and so are spent first): afterwards every
 * spend comes out of `grantId`. Answers how much that was.
 */
export async function spendAllBut(world: BillingWorld, person: Person, grantId: string): Promise<number> {
  const { body } = await call(world, 'GET', '/api/credits', { person });
  const grants = body.grants as Array<{ id: string; remaining: number }>;
  expect(grants.map((grant) => grant.id)).toContain(grantId);
  const others = grants.filter((grant) => grant.id !== grantId).reduce((sum, grant) => sum + grant.remaining, 0);
  if (others > 0) await spend(world, person, others);
  return others;
}

/** An operator's request over real HTTP, with the admin token. */
export async function asAdmin(world: BillingWorld, method: 'GET' | 'POST', path: string, options: { body?: unknown; headers?: Record<string, string> } = {}): Promise<{ status: number; body: Json }> {
  return call(world, method, path, { ...options, headers: { ...world.admin(), ...options.headers } });
}

/** A Stripe event POSTed to the app's webhook route over real HTTP with a Stripe-Signature header. */
export async function deliverOverHttp(world: BillingWorld, payload: string, signature: string): Promise<{ status: number; body: Json }> {
  const response = await fetch(`${world.appUrl}/api/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': signature }, body: payload });
  const text = await response.text();
  return { status: response.status, body: text.length > 0 ? JSON.parse(text) : null };
}

export async function setDeliveryMode(world: BillingWorld, mode: { duplicate?: boolean; outOfOrder?: boolean }): Promise<void> {
  await fetch(`${world.appUrl}/sandbox/webhooks/mode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(mode) });
}
