import type Stripe from 'stripe';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { verifyCreditLedger } from '../../src/modules/credits/credits.verify.js';
import { startStripeSandbox, type StripeSandbox } from '../../src/modules/stripe/sandbox/sandbox-server.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { addCreditPack, auditEvents, eventOf, inboxRow, listen, newAccount, packSession, purchasedCredits, signatureFor, testWebhookSecret, WEBHOOK_TEST_RATE_LIMITS } from './helpers.js';

/**
 * WH-3, WH-4 the way production runs: two instances, each with its own pool as the
 * application role, on one PostgreSQL; the same signed event delivered to both at once.
 */
describeWithPostgres('webhook deliveries racing across two instances on PostgreSQL', () => {
  const PACK = { id: 'pack_race', credits: 250, priceCents: 1500, currency: 'usd' };
  const secret = testWebhookSecret();
  let scratch: ScratchDatabase;
  let sandbox: StripeSandbox;
  let instances: TestApp[] = [];
  let urls: string[] = [];
  let priceId: string;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    // No delivery target: the test delivers the sandbox's events itself.
    sandbox = await startStripeSandbox({ webhookSecret: secret });
    const env = {
      DATABASE_URL: scratch.url,
      DATABASE_POOL_MAX: '20',
      STRIPE_API_URL: sandbox.url,
      STRIPE_SANDBOX_START: 'false',
      STRIPE_WEBHOOK_SECRET: secret,
      RATE_LIMITS: WEBHOOK_TEST_RATE_LIMITS,
    };
    instances = [await createTestApp({ env }), await createTestApp({ env })];
    urls = await Promise.all(instances.map((instance) => listen(instance)));
    await addCreditPack(instances[0] as TestApp, PACK);
    const { stripe } = (instances[0] as TestApp).deps;
    const product = await stripe.ensureProduct({ id: 'bulwark_pack_pack_race', name: '250 credits' });
    priceId = (await stripe.ensurePrice({ lookupKey: 'pack_race_usd', productId: product.id, unitAmount: 1500, currency: 'usd' })).id;
  });
  afterAll(async () => {
    for (const instance of instances) await instance.close();
    await sandbox?.close();
    await scratch?.drop();
  });

  const first = () => instances[0] as TestApp;

  /** A paid credit-pack session in the sandbox, for a new account owning a new customer. */
  async function paidPurchase(label: string): Promise<{ accountId: string; session: Stripe.Checkout.Session; completed: Stripe.Event }> {
    const { stripe } = first().deps;
    const customer = await stripe.createCustomer(`race_${label}`, { email: `${label}@example.com` });
    const accountId = await newAccount(first().deps.database, first().deps.clock, customer.id);
    const session = await packSession(stripe, { operationId: `race_${label}`, customerId: customer.id, priceId, packId: PACK.id, metadataAccount: accountId });
    const paid = await fetch(`${sandbox.url}/_sandbox/checkout/${session.id}/pay`, { method: 'POST', body: JSON.stringify({ card: '4242424242424242' }) });
    expect(paid.status).toBe(200);
    const events = await stripe.listEvents({ type: 'checkout.session.completed', limit: 100 });
    const completed = events.data.find((event) => (event.data.object as Stripe.Checkout.Session).id === session.id);
    if (!completed) throw new Error('no checkout.session.completed event');
    return { accountId, session, completed };
  }

  async function post(url: string, payload: string): Promise<{ status: number; outcome: string }> {
    const response = await fetch(`${url}/api/webhooks/stripe`, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': signatureFor(payload, secret, Math.floor(Date.now() / 1000)) },
      body: payload,
    });
    const body = (await response.json()) as { outcome?: string };
    return { status: response.status, outcome: body.outcome ?? 'error' };
  }

  it('the same signed event delivered 50 times concurrently to each of 2 instances: one credit grant, every answer 2xx', async () => {
    const { accountId, completed } = await paidPurchase('fifty');
    const payload = JSON.stringify(completed, null, 2);
    const answers = await Promise.all(Array.from({ length: 100 }, (_, index) => post(urls[index % 2] as string, payload)));
    expect(answers.filter((answer) => answer.status < 200 || answer.status > 299)).toEqual([]);
    expect(answers.filter((answer) => answer.outcome === 'processed')).toHaveLength(1);
    expect(answers.filter((answer) => answer.outcome === 'duplicate')).toHaveLength(99);
    expect(await purchasedCredits(first().deps.database, accountId)).toEqual([250]);
    expect((await auditEvents(first().deps.database, 'credits.granted')).filter((entry) => entry.account_id === accountId)).toHaveLength(1);
    expect(await inboxRow(first().deps.database, completed.id)).toMatchObject({ status: 'processed', attempts: 1, account_id: accountId });
    expect(await verifyCreditLedger(first().deps.database, { accountId })).toMatchObject({ valid: true, checked: 1 });
  });

  it('two different events for one purchase (completed, async_payment_succeeded) racing on both instances: one grant', async () => {
    const { accountId, session, completed } = await paidPurchase('twoevents');
    const succeeded = eventOf('checkout.session.async_payment_succeeded', completed.data.object as unknown as Record<string, unknown>, {
      createdSeconds: completed.created + 1,
    });
    const payloads = [JSON.stringify(completed), JSON.stringify(succeeded)];
    const answers = await Promise.all(Array.from({ length: 20 }, (_, index) => post(urls[index % 2] as string, payloads[Math.floor(index / 2) % 2] as string)));
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
    expect(answers.filter((answer) => answer.outcome === 'processed')).toHaveLength(2);
    expect(await purchasedCredits(first().deps.database, accountId)).toEqual([250]);
    const rows = await Promise.all([inboxRow(first().deps.database, completed.id), inboxRow(first().deps.database, succeeded.id)]);
    expect(rows.map((row) => row?.reason ?? null).sort()).toEqual(['ALREADY_GRANTED', null].sort());
    expect(session.id).toMatch(/^cs_/);
  });
});
