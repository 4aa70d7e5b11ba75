import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { startSandboxHarness, type SandboxHarness } from './helpers.js';

let harness: SandboxHarness;
let first: TestApp;
let second: TestApp;
let price: Stripe.Price;

beforeAll(async () => {
  harness = await startSandboxHarness();
  const env = { STRIPE_API_URL: harness.sandbox.url, STRIPE_SANDBOX_START: 'false', STRIPE_WEBHOOK_SECRET: harness.secret };
  // Two instances of the service sharing one sandbox, as later suites run webhooks across instances.
  [first, second] = await Promise.all([createTestApp({ env }), createTestApp({ env })]);
  const product = await first.deps.stripe.ensureProduct({ id: 'bulwark_plan_PRO', name: 'Pro' });
  price = await first.deps.stripe.ensurePrice({ lookupKey: 'plan_PRO_month', productId: product.id, unitAmount: 2900, currency: 'usd', recurring: { interval: 'month' } });
});
afterAll(async () => {
  await first.close();
  await second.close();
  await harness.close();
});

async function newSession(operationId: string, extra: Partial<Stripe.Checkout.SessionCreateParams> = {}) {
  return first.deps.stripe.createCheckoutSession(operationId, {
    mode: 'subscription',
    line_items: [{ price: price.id }],
    allow_promotion_codes: true,
    success_url: 'http://localhost:3000/billing/done?session={CHECKOUT_SESSION_ID}',
    cancel_url: 'http://localhost:3000/billing/cancel',
    ...extra,
  });
}

describe('the sandbox routes on the service port', () => {
  it('reports the shared sandbox as ready', async () => {
    const ready = await first.app.inject({ method: 'GET', url: '/ready' });
    expect(ready.json()).toMatchObject({ status: 'ok', checks: { stripe: 'ok' } });
  });

  it('serves the hosted checkout page as plain HTML with a form, no script and no inline style, under the CSP', async () => {
    const session = await newSession('page_1');
    const page = await second.app.inject({ method: 'GET', url: `/sandbox/checkout/${session.id}` });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("default-src 'self'");
    expect(page.body).toContain(`<form method="post" action="/sandbox/checkout/${session.id}/pay">`);
    expect(page.body).toContain('29.00 USD');
    expect(page.body).toContain('name="promotionCode"');
    expect(page.body).not.toMatch(/<script|\sstyle=|<style|\son[a-z]+=/i);
    const css = await second.app.inject({ method: 'GET', url: '/sandbox/assets/checkout.css' });
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await second.app.inject({ method: 'GET', url: '/sandbox/checkout/cs_test_missing' })).statusCode).toBe(404);
  });

  it('takes the form post, completes the session and redirects to the success URL with the session id', async () => {
    const session = await newSession('page_2');
    const posted = await second.app.inject({
      method: 'POST',
      url: `/sandbox/checkout/${session.id}/pay`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ email: 'form@example.com', name: 'Form Person', card: '4242 4242 4242 4242', promotionCode: '' }).toString(),
    });
    expect(posted.statusCode).toBe(303);
    expect(posted.headers.location).toBe(`http://localhost:3000/billing/done?session=${session.id}`);
    // The first instance sees the same sandbox state.
    expect(await first.deps.stripe.retrieveCheckoutSession(session.id)).toMatchObject({ status: 'complete', payment_status: 'paid', customer_details: { email: 'form@example.com' } });
    // The card number went to the sandbox, not into any log line.
    expect(second.logs.text).not.toContain('4242');
  });

  it('shows a decline on the page again, and answers JSON callers with the outcome', async () => {
    const session = await newSession('page_3');
    const declinedPage = await second.app.inject({
      method: 'POST',
      url: `/sandbox/checkout/${session.id}/pay`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'card=4000000000000002',
    });
    expect(declinedPage.statusCode).toBe(402);
    expect(declinedPage.body).toContain('Your card was declined.');
    const json = await first.app.inject({ method: 'POST', url: `/sandbox/checkout/${session.id}/pay`, payload: { card: '4000002500003155' } });
    expect(json.statusCode).toBe(200);
    expect(json.json()).toMatchObject({ id: session.id, status: 'open', paymentStatus: 'unpaid', outcome: 'requires_action' });
  });

  it('switches a customer card and moves the clock through the service routes', async () => {
    const session = await newSession('page_4');
    const paid = await first.app.inject({ method: 'POST', url: `/sandbox/checkout/${session.id}/pay`, payload: { card: '4242424242424242', email: 'switch@example.com' } });
    const { customer, subscription } = paid.json<{ customer: string; subscription: string }>();
    const switched = await second.app.inject({ method: 'POST', url: `/sandbox/customers/${customer}/payment-method`, payload: { card: '4000000000000341' } });
    expect(switched.statusCode).toBe(200);
    const advanced = await second.app.inject({ method: 'POST', url: '/sandbox/clock/advance', payload: { seconds: 32 * 86_400 } });
    expect(advanced.statusCode).toBe(200);
    expect(advanced.json<{ events: string[] }>().events.length).toBeGreaterThan(0);
    expect((await first.deps.stripe.retrieveSubscription(subscription)).status).toBe('past_due');
    const mode = await first.app.inject({ method: 'POST', url: '/sandbox/webhooks/mode', payload: { duplicate: false } });
    expect(mode.json()).toEqual({ duplicate: false, outOfOrder: false });
  });

  it('refuses bad input with a 400 naming the field, and changes nothing', async () => {
    const session = await newSession('page_5');
    const letters = await first.app.inject({ method: 'POST', url: `/sandbox/checkout/${session.id}/pay`, payload: { card: 'abcd' } });
    expect(letters.statusCode).toBe(400);
    expect(letters.json()).toMatchObject({ error: { code: 'VALIDATION_FAILED', details: [{ field: 'card' }] } });
    const unknownCard = await first.app.inject({ method: 'POST', url: `/sandbox/checkout/${session.id}/pay`, payload: { card: '4111 1111 1111 1112' } });
    expect(unknownCard.statusCode).toBe(400);
    expect(unknownCard.json()).toMatchObject({ error: { code: 'VALIDATION_FAILED', details: [{ field: 'card' }] } });
    const textSeconds = await first.app.inject({ method: 'POST', url: '/sandbox/clock/advance', payload: { seconds: '60' } });
    expect(textSeconds.statusCode).toBe(400);
    expect(textSeconds.json()).toMatchObject({ error: { details: [{ field: 'seconds' }] } });
    const extra = await first.app.inject({ method: 'POST', url: '/sandbox/clock/advance', payload: { seconds: 60, also: 1 } });
    expect(extra.statusCode).toBe(400);
    expect(await first.deps.stripe.retrieveCheckoutSession(session.id)).toMatchObject({ status: 'open', payment_status: 'unpaid' });
    expect((await first.deps.stripe.listCharges({ limit: 100 })).data.filter((charge) => charge.created > session.created)).toHaveLength(0);
  });

  it('is absent outside sandbox mode', async () => {
    const live = await createTestApp({ env: { STRIPE_MODE: 'test', STRIPE_SECRET_KEY: ['sk', 'test', 'abc'].join('_') } });
    try {
      expect((await live.app.inject({ method: 'POST', url: '/sandbox/clock/advance', payload: { seconds: 60 } })).statusCode).toBe(404);
    } finally {
      await live.close();
    }
  });
});
