import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertUser } from '../../src/modules/accounts/accounts.repository.js';
import { hashPassword } from '../../src/modules/auth/passwords.js';
import { asSystem } from '../../src/platform/database/access.js';
import { newId } from '../../src/platform/ids.js';
import { logIn, PASSWORD, type Person } from '../privacy/helpers.js';
import { addCreditPack, auditEvents, purchasedCredits } from '../webhooks/helpers.js';
import { accountRow, call, CARD_OK, newPerson, planOf, settle, startBillingHarness, type BillingHarness } from './lifecycle-helpers.js';

/**
 * POST /api/billing/checkout (PAY-2, PAY-3, OWN-1): validation, owner and test accounts
 * refused before any call to Stripe, credit packs bought through the route, credentials.
 */

const OWNER = 'acct_billingowner';
const TESTER = 'acct_billingtester';
const PACK = { id: 'pack_250', credits: 250, priceCents: 1500, currency: 'usd' };
let harness: BillingHarness;

beforeAll(async () => {
  harness = await startBillingHarness({ OWNER_ACCOUNT_IDS: OWNER, TEST_ACCOUNT_IDS: TESTER });
  await addCreditPack(harness.testApp, PACK);
});
afterAll(async () => {
  await harness?.close();
});

/** An exempt account with a person who logs in (the account ids are configured before start). */
async function exemptPerson(accountId: string): Promise<Person> {
  const email = `${accountId}@example.com`;
  const passwordHash = await hashPassword(PASSWORD);
  const userId = newId('user');
  await asSystem(harness.testApp.deps.database, async (tx) => {
    await tx.query(`INSERT INTO accounts (id, name, plan, status, created_at, updated_at) VALUES ($1, NULL, 'FREE', 'active', now(), now())`, [accountId]);
    await insertUser(tx, { id: userId, accountId, email, name: null, passwordHash, role: 'owner', at: new Date() });
  });
  const ip = '10.77.0.1';
  const login = await logIn(harness.testApp.app, { email, ip });
  expect(login.statusCode, login.body).toBe(200);
  return { email, name: 'Owner', ip, accountId, userId, accessToken: login.json().accessToken, csrfToken: login.json().csrfToken, cookie: '' };
}

/** What the sandbox holds: its objects (every change adds or rewrites one), idempotency records and sequence. */
function sandboxState(): { rows: number; idempotency: number; seq: number } {
  const data = harness.sandbox.core.store.data;
  return { rows: Object.keys(data.rows).length, idempotency: Object.keys(data.idempotency).length, seq: data.seq };
}

describe('the OpenAPI document', () => {
  it('documents the billing routes with their bodies', async () => {
    const document = (await call(harness, 'GET', '/docs/openapi.json')).body;
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/api/billing/subscription', '/api/billing/checkout', '/api/billing/cancel', '/api/billing/resume', '/api/billing/change-plan']),
    );
    const checkout = document.paths['/api/billing/checkout'].post;
    expect(Object.keys(checkout.requestBody.content['application/json'].schema.properties).sort()).toEqual(['creditPack', 'plan']);
    expect(Object.keys(checkout.responses['200'].content['application/json'].schema.properties).sort()).toEqual(['sessionId', 'url']);
  });
});

describe('owner and test accounts (OWN-1)', () => {
  it.each([
    ['owner', OWNER, 'owner'],
    ['test', TESTER, 'test'],
  ])('an %s account checkout: 403 OWNER_EXEMPT before any call to Stripe, audited and alerted', async (_label, accountId, kind) => {
    const person = await exemptPerson(accountId);
    const before = sandboxState();
    const requestsBefore = harness.stripeRequests.length;
    for (const body of [{ plan: 'PRO' }, { creditPack: PACK.id }]) {
      const answer = await call(harness, 'POST', '/api/billing/checkout', { person, body });
      expect(answer.status).toBe(403);
      expect(answer.body.error).toMatchObject({ code: 'OWNER_EXEMPT', message: 'Owner and test accounts cannot be charged' });
    }
    const change = await call(harness, 'POST', '/api/billing/change-plan', { person, body: { plan: 'PRO' } });
    expect(change.body.error).toMatchObject({ code: 'OWNER_EXEMPT' });
    // The sandbox saw no request at all, and holds nothing new.
    expect(harness.stripeRequests.slice(requestsBefore)).toEqual([]);
    expect(sandboxState()).toEqual(before);
    expect((await accountRow(harness.testApp.deps.database, accountId)).stripe_customer_id).toBeNull();
    const audited = (await auditEvents(harness.testApp.deps.database, 'billing.owner_charge_attempt')).filter((entry) => entry.account_id === accountId);
    expect(audited.map((entry) => entry.metadata)).toEqual([
      expect.objectContaining({ attempt: 'checkout.plan', exemptKind: kind }),
      expect.objectContaining({ attempt: 'checkout.credit_pack', exemptKind: kind }),
      expect.objectContaining({ attempt: 'change_plan', exemptKind: kind }),
    ]);
    expect(harness.testApp.logs.text).toMatch(/owner_charge_attempt/);
  });
});

describe('validation (nothing is created)', () => {
  it.each([
    ['both plan and creditPack', { plan: 'PRO', creditPack: PACK.id }, 'plan'],
    ['neither', {}, 'plan'],
    ['an unknown plan', { plan: 'PLATINUM' }, 'plan'],
    ['the FREE plan', { plan: 'FREE' }, 'plan'],
    ['a plan priced by contract', { plan: 'ENTERPRISE' }, 'plan'],
    ['a plan id in lower case', { plan: 'pro' }, 'plan'],
    ['a plan that is not a string', { plan: 1 }, 'plan'],
    ['an unknown credit pack', { creditPack: 'pack_nope' }, 'creditPack'],
    ['an unknown property', { plan: 'PRO', coupon: 'FREE100' }, 'coupon'],
  ])('%s: 400 naming the field', async (_label, body, field) => {
    const person = await newPerson(harness, 'invalid');
    const events = (await harness.testApp.deps.stripe.listEvents({ limit: 100 })).data.length;
    const answer = await call(harness, 'POST', '/api/billing/checkout', { person, body });
    expect(answer.status, JSON.stringify(answer.body)).toBe(400);
    expect(answer.body.error.code).toBe('VALIDATION_FAILED');
    expect(answer.body.error.message.startsWith(`${field}: `)).toBe(true);
    expect(answer.body.error.details?.[0]?.field ?? field).toBe(field);
    expect((await accountRow(harness.testApp.deps.database, person.accountId)).stripe_customer_id).toBeNull();
    expect((await harness.testApp.deps.stripe.listEvents({ limit: 100 })).data.length).toBe(events);
  });
});

describe('checkout sessions (PAY-2, PAY-3)', () => {
  it('a plan: subscription mode for the account\'s own customer, promotion codes allowed, the plan only after the webhook', async () => {
    const person = await newPerson(harness, 'plan');
    const requestsBefore = harness.stripeRequests.length;
    const answer = await call(harness, 'POST', '/api/billing/checkout', { person, body: { plan: 'STARTER' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    // The proxy the owner test relies on sees the app's Stripe calls.
    expect(harness.stripeRequests.slice(requestsBefore)).toEqual(expect.arrayContaining(['POST /v1/customers', 'POST /v1/checkout/sessions']));
    expect(answer.body).toEqual({ url: expect.stringContaining(`/sandbox/checkout/${answer.body.sessionId}`), sessionId: expect.stringMatching(/^cs_/) });
    const session = await harness.testApp.deps.stripe.retrieveCheckoutSession(answer.body.sessionId);
    const { stripe_customer_id: customerId } = await accountRow(harness.testApp.deps.database, person.accountId);
    expect(session).toMatchObject({ mode: 'subscription', customer: customerId, client_reference_id: person.accountId, allow_promotion_codes: true });
    const customer = await harness.testApp.deps.stripe.retrieveCustomer(customerId as string);
    expect(customer).toMatchObject({ email: person.email.toLowerCase(), metadata: { bulwark_account: person.accountId } });
    // Not paid yet: nothing changed.
    await settle(harness);
    expect(await planOf(harness, person)).toBe('FREE');
    expect((await auditEvents(harness.testApp.deps.database, 'billing.checkout_created')).filter((entry) => entry.account_id === person.accountId)).toHaveLength(1);
    // A second checkout reuses the customer.
    const second = await call(harness, 'POST', '/api/billing/checkout', { person, body: { plan: 'STARTER' } });
    expect((await harness.testApp.deps.stripe.retrieveCheckoutSession(second.body.sessionId)).customer).toBe(customerId);
  });

  it('a credit pack: payment mode with the pack in the metadata; paid, the credits are granted once by the webhook', async () => {
    const person = await newPerson(harness, 'pack');
    const answer = await call(harness, 'POST', '/api/billing/checkout', { person, body: { creditPack: PACK.id } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const session = await harness.testApp.deps.stripe.retrieveCheckoutSession(answer.body.sessionId);
    expect(session).toMatchObject({ mode: 'payment', amount_total: 1500, currency: 'usd', metadata: { bulwark_credit_pack: PACK.id, bulwark_account: person.accountId } });
    const paid = await call(harness, 'POST', `/sandbox/checkout/${answer.body.sessionId}/pay`, { body: { card: CARD_OK } });
    expect(paid.body.status).toBe('complete');
    await settle(harness);
    expect(await purchasedCredits(harness.testApp.deps.database, person.accountId)).toEqual([250]);
    expect(await planOf(harness, person)).toBe('FREE');
  });

  it('credentials: an API key reads the subscription but cannot check out; a cookie session needs the CSRF token', async () => {
    const person = await newPerson(harness, 'creds');
    const key = await call(harness, 'POST', '/api/keys', { person, body: { label: 'ci' } });
    expect(key.status).toBe(201);
    const apiKey = { 'x-api-key': key.body.secret as string };
    expect(await call(harness, 'GET', '/api/billing/subscription', { headers: apiKey })).toMatchObject({ status: 200, body: { subscription: null } });
    expect((await call(harness, 'POST', '/api/billing/checkout', { headers: apiKey, body: { plan: 'PRO' } })).status).toBe(403);
    expect((await call(harness, 'POST', '/api/billing/checkout', { body: { plan: 'PRO' } })).status).toBe(401);
    const login = await logIn(harness.testApp.app, person);
    const cookies = ([] as string[]).concat(login.headers['set-cookie'] ?? []).map((line) => line.split(';', 1)[0]).join('; ');
    const withoutCsrf = await call(harness, 'POST', '/api/billing/checkout', { headers: { cookie: cookies }, body: { plan: 'PRO' } });
    expect(withoutCsrf.body.error).toMatchObject({ code: 'CSRF_FAILED' });
    const withCsrf = await call(harness, 'POST', '/api/billing/checkout', { headers: { cookie: cookies, 'x-csrf-token': login.json().csrfToken }, body: { plan: 'PRO' } });
    expect(withCsrf.status, JSON.stringify(withCsrf.body)).toBe(200);
  });
});
