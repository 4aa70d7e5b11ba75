import type Stripe from 'stripe';
import { expect } from 'vitest';
import { startStripeSandbox, type StripeSandbox } from '../../src/modules/stripe/sandbox/sandbox-server.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { addCreditPack, listen, newAccount, packSession, testWebhookSecret, WEBHOOK_TEST_RATE_LIMITS } from '../webhooks/helpers.js';

/**
 * An app listening on a real port with its own sandbox delivering signed webhooks to it
 * (as test/webhooks/processing.test.ts), a 100-credit pack at 1000 cents, and a PRO plan price.
 */
export const PACK = { id: 'pack_100', credits: 100, priceCents: 1000, currency: 'usd' };

export interface BillingWorld {
  readonly sandbox: StripeSandbox;
  readonly testApp: TestApp;
  readonly appUrl: string;
  readonly secret: string;
  readonly packPrice: Stripe.Price;
  readonly proPrice: Stripe.Price;
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
      RATE_LIMITS: WEBHOOK_TEST_RATE_LIMITS,
      ...env,
    },
  });
  const appUrl = await listen(testApp);
  sandbox.setWebhookUrl(`${appUrl}/api/webhooks/stripe`);
  await addCreditPack(testApp, PACK);
  const { stripe } = testApp.deps;
  const packProduct = await stripe.ensureProduct({ id: 'bulwark_pack_pack_100', name: '100 credits' });
  const plan = await stripe.ensureProduct({ id: 'bulwark_plan_PRO', name: 'Pro' });
  const packPrice = await stripe.ensurePrice({ lookupKey: 'pack_100_usd', productId: packProduct.id, unitAmount: 1000, currency: 'usd' });
  const proPrice = await stripe.ensurePrice({ lookupKey: 'plan_PRO_month', productId: plan.id, unitAmount: 9900, currency: 'usd', recurring: { interval: 'month' } });
  return {
    sandbox,
    testApp,
    appUrl,
    secret,
    packPrice,
    proPrice,
    admin: () => ({ authorization: `Bearer ${testApp.config.secrets.adminApiToken}` }),
    async close() {
      await testApp.close();
      await sandbox.close();
    },
  };
}

let sequence = 0;

/** An account owning a fresh Stripe customer. */
export async function customerAccount(world: BillingWorld): Promise<{ accountId: string; customerId: string }> {
  sequence += 1;
  const customer = await world.testApp.deps.stripe.createCustomer(`billing_${sequence}_${Date.now()}`, { email: `buyer${sequence}@example.com` });
  return { accountId: await newAccount(world.testApp.deps.database, world.testApp.deps.clock, customer.id), customerId: customer.id };
}

/** Pays a checkout session on the hosted page through the service's /sandbox route (real HTTP), then waits for the webhooks. */
export async function pay(world: BillingWorld, sessionId: string, card = '4242 4242 4242 4242'): Promise<void> {
  const response = await fetch(`${world.appUrl}/sandbox/checkout/${sessionId}/pay`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ card }),
  });
  expect(((await response.json()) as { outcome: string }).outcome).toBe('succeeded');
  expect(await world.sandbox.delivery.settle(10_000)).toBe(true);
}

/** Buys the 100-credit pack for a new account; with webhooks on, the grant is made by the checkout webhook. */
export async function buyPack(world: BillingWorld, account?: { accountId: string; customerId: string }) {
  const { accountId, customerId } = account ?? (await customerAccount(world));
  const session = await packSession(world.testApp.deps.stripe, {
    operationId: `pack_${accountId}_${Date.now()}`,
    customerId,
    priceId: world.packPrice.id,
    packId: PACK.id,
    metadataAccount: accountId,
  });
  await pay(world, session.id);
  return { accountId, customerId, sessionId: session.id };
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

/** Spends `amount` credits of the account: a reservation, confirmed. */
export async function spend(world: BillingWorld, accountId: string, amount: number): Promise<void> {
  const { credits } = world.testApp.deps;
  const key = `spend_${Date.now()}_${Math.random().toString(36).slice(2)}`;
  const { reservation } = await credits.reserve(accountId, { jobId: key, jobType: 'render', amount, idempotencyKey: key });
  await credits.confirm(accountId, reservation.id);
}

export async function setDeliveryMode(world: BillingWorld, mode: { duplicate?: boolean; outOfOrder?: boolean }): Promise<void> {
  await fetch(`${world.appUrl}/sandbox/webhooks/mode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(mode) });
}
