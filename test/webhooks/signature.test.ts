import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStripeSandbox, type StripeSandbox } from '../../src/modules/stripe/sandbox/sandbox-server.js';
import { ManualClock } from '../../src/platform/clock.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import {
  addCreditPack,
  auditEvents,
  countRows,
  deliver,
  eventOf,
  inboxRow,
  newAccount,
  packSession,
  payInSandbox,
  purchasedCredits,
  signatureFor,
  testWebhookSecret,
  WEBHOOK_TEST_RATE_LIMITS,
} from './helpers.js';

/**
 * WH-1, WH-2, WH-7 through inject(), with Stripe's own generateTestHeaderString. The app's
 * clock is fixed, and every signed timestamp is in seconds relative to it.
 */
const clock = new ManualClock('2026-03-01T12:00:00Z');
const nowSeconds = () => Math.floor(clock.now().getTime() / 1000);
const current = testWebhookSecret();
const previous = testWebhookSecret();
const PACK = { id: 'pack_sig', credits: 40, priceCents: 400, currency: 'usd' };
let testApp: TestApp;
/** The handlers re-fetch from this sandbox; it delivers nothing itself (no target), the tests do. */
let sandbox: StripeSandbox;
let packPriceId: string;

beforeAll(async () => {
  sandbox = await startStripeSandbox({ webhookSecret: current });
  testApp = await createTestApp({
    clock,
    // Rotation: the new secret first, the old one still accepted.
    env: {
      STRIPE_WEBHOOK_SECRET: `${current},${previous}`,
      STRIPE_API_URL: sandbox.url,
      STRIPE_SANDBOX_START: 'false',
      RATE_LIMITS: WEBHOOK_TEST_RATE_LIMITS,
    },
  });
  await addCreditPack(testApp, PACK);
  const product = await testApp.deps.stripe.ensureProduct({ id: 'bulwark_pack_pack_sig', name: '40 credits' });
  packPriceId = (await testApp.deps.stripe.ensurePrice({ lookupKey: 'pack_sig_usd', productId: product.id, unitAmount: 400, currency: 'usd' })).id;
});
afterAll(async () => {
  await testApp?.close();
  await sandbox?.close();
});

/** A paid credit-pack purchase in the sandbox, not yet delivered: its checkout.session.completed, signed by the caller. */
async function packPurchase(label: string) {
  const { stripe, database } = testApp.deps;
  const customer = await stripe.createCustomer(`sig_${label}`, { email: `${label}@example.com` });
  const accountId = await newAccount(database, testApp.deps.clock, customer.id);
  const session = await packSession(stripe, { operationId: `sig_${label}`, customerId: customer.id, priceId: packPriceId, packId: PACK.id, metadataAccount: accountId });
  const event = await payInSandbox(stripe, sandbox.url, session.id);
  return { accountId, event, payload: JSON.stringify(event, null, 2) };
}

/** A signed event of a type nothing handles: verified, recorded as ignored, no call to Stripe. */
function customerCreated() {
  const event = eventOf('customer.created', { id: 'cus_sig', object: 'customer' });
  return { event, payload: JSON.stringify(event, null, 2) };
}

async function rejected(payload: string, signature: string | undefined, eventId: string, reason: string) {
  const before = await auditEvents(testApp.deps.database, 'webhook.signature_failed');
  const response = await deliver(testApp, payload, signature);
  expect(response.statusCode).toBe(400);
  expect(response.json()).toMatchObject({ error: { code: 'WEBHOOK_SIGNATURE_INVALID' } });
  expect(await inboxRow(testApp.deps.database, eventId)).toBeUndefined();
  const after = await auditEvents(testApp.deps.database, 'webhook.signature_failed');
  expect(after).toHaveLength(before.length + 1);
  expect(after.at(-1)?.metadata).toMatchObject({ reason });
}

describe('webhook signature and replay window (WH-1, WH-2)', () => {
  it('answers 400 to a missing signature, a wrong secret, a body changed by one byte and a v0-only header, and records no event', async () => {
    const { event, payload } = customerCreated();
    await rejected(payload, undefined, event.id, 'missing_signature');
    await rejected(payload, signatureFor(payload, testWebhookSecret(), nowSeconds()), event.id, 'bad_signature');
    const signature = signatureFor(payload, current, nowSeconds());
    const changed = payload.replace('"cus_sig"', '"cus_sih"');
    expect(changed).toHaveLength(payload.length);
    await rejected(changed, signature, event.id, 'bad_signature');
    const v0Only = signature.replace('v1=', 'v0=');
    await rejected(payload, v0Only, event.id, 'bad_signature');
    expect(await countRows(testApp.deps.database, 'SELECT count(*) FROM stripe_events')).toBe(0);
    const metrics = await testApp.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/stripe_webhook_rejected_total\{reason="bad_signature"\} 3/);
    expect(metrics.body).toMatch(/stripe_webhook_rejected_total\{reason="missing_signature"\} 1/);
    // AUD-3: signature failures raise a critical alert (at most one a minute per instance).
    const alerts = testApp.logs.lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.alertKind === 'webhook_signature_failed');
    expect(alerts.length).toBeGreaterThanOrEqual(1);
    expect(alerts[0]).toMatchObject({ level: 60, alert: true, severity: 'critical' });
  });

  it('refuses a timestamp 301 s old and one 301 s in the future, and processes one 290 s old', async () => {
    // One credit-pack purchase's event, each time signed at another timestamp: "processed" is
    // seen in its effect, the credits, and only the timestamp differs between the answers.
    const { accountId, event, payload } = await packPurchase('window');
    await rejected(payload, signatureFor(payload, current, nowSeconds() - 301), event.id, 'stale_timestamp');
    await rejected(payload, signatureFor(payload, current, nowSeconds() + 301), event.id, 'future_timestamp');
    expect(await purchasedCredits(testApp.deps.database, accountId)).toEqual([]);
    const accepted = await deliver(testApp, payload, signatureFor(payload, current, nowSeconds() - 290));
    expect(accepted.statusCode).toBe(200);
    expect(accepted.json()).toEqual({ received: true, outcome: 'processed' });
    expect(await inboxRow(testApp.deps.database, event.id)).toMatchObject({ type: 'checkout.session.completed', status: 'processed', reason: null, attempts: 1, account_id: accountId });
    expect(await purchasedCredits(testApp.deps.database, accountId)).toEqual([PACK.credits]);
  });

  it('accepts the old and the new secret during rotation, and a second delivery is a duplicate', async () => {
    const signedNew = customerCreated();
    expect((await deliver(testApp, signedNew.payload, signatureFor(signedNew.payload, current, nowSeconds()))).json()).toMatchObject({ outcome: 'ignored' });
    const signedOld = customerCreated();
    expect((await deliver(testApp, signedOld.payload, signatureFor(signedOld.payload, previous, nowSeconds()))).json()).toMatchObject({ outcome: 'ignored' });
    const again = await deliver(testApp, signedOld.payload, signatureFor(signedOld.payload, previous, nowSeconds()));
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ received: true, outcome: 'duplicate' });
    expect(await inboxRow(testApp.deps.database, signedOld.event.id)).toMatchObject({ status: 'ignored', attempts: 1 });
  });

  it('stores ids, type, timestamps and a payload hash only (WH-7)', async () => {
    const { event, payload } = customerCreated();
    await deliver(testApp, payload, signatureFor(payload, current, nowSeconds()));
    const { rows } = await testApp.deps.database.transaction(async (tx) => {
      await tx.query(`SELECT set_config('app.system', 'on', true)`);
      return tx.query<Record<string, unknown>>('SELECT * FROM stripe_events WHERE id = $1', [event.id]);
    });
    expect(Object.keys(rows[0] ?? {}).sort()).toEqual(
      ['account_id', 'attempts', 'event_created_at', 'id', 'livemode', 'payload_sha256', 'processed_at', 'reason', 'received_at', 'status', 'type', 'updated_at'].sort(),
    );
    expect(JSON.stringify(rows[0])).not.toContain('cus_sig');
    expect(rows[0]?.event_created_at).toEqual(new Date(event.created * 1000));
  });

  it('answers 400 to a signed body that is not a Stripe event, and 415 to another media type', async () => {
    const payload = JSON.stringify({ hello: 'world' });
    const response = await deliver(testApp, payload, signatureFor(payload, current, nowSeconds()));
    expect(response.statusCode).toBe(400);
    const text = await testApp.app.inject({ method: 'POST', url: '/api/webhooks/stripe', headers: { 'content-type': 'text/plain' }, payload: 'x' });
    expect(text.statusCode).toBe(415);
  });
});

describe('the webhook route at the edge', () => {
  it('is limited by its own policy (webhooks.ip), not the general per-IP limit, and keeps the 1 MB body limit', async () => {
    const limited = await createTestApp({
      clock,
      env: {
        STRIPE_WEBHOOK_SECRET: current,
        RATE_LIMITS: JSON.stringify({ 'webhooks.ip': { limit: 3, windowSeconds: 60 }, 'general.ip': { limit: 1, windowSeconds: 900 } }),
      },
    });
    try {
      // The limit counts before the body is read: the refused 2 MB body is one of the 3.
      const big = `{"pad":"${'x'.repeat(2 * 1024 * 1024)}"}`;
      const tooBig = await limited.app.inject({ method: 'POST', url: '/api/webhooks/stripe', headers: { 'content-type': 'application/json' }, payload: big });
      expect(tooBig.statusCode).toBe(413);
      const statuses: number[] = [];
      for (let index = 0; index < 3; index += 1) {
        const { payload } = customerCreated();
        statuses.push((await deliver(limited, payload, signatureFor(payload, current, nowSeconds()))).statusCode);
      }
      // The general limit (1 per 15 minutes) would have refused the second request already.
      expect(statuses).toEqual([200, 200, 429]);
    } finally {
      await limited.close();
    }
  });
});
