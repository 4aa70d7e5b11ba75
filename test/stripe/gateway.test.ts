import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { idempotencyKey, stripeClientConfig } from '../../src/modules/stripe/gateway.js';
import { encodeStripeForm } from '../../src/modules/stripe/sandbox/wire-format.js';
import { startSandboxHarness, type SandboxHarness } from './helpers.js';

let harness: SandboxHarness;

interface WireAnswer {
  id?: string;
  metadata?: Record<string, string>;
  error: { type: string; code?: string; param?: string; message: string };
}

beforeAll(async () => {
  harness = await startSandboxHarness();
});
afterAll(async () => {
  await harness.close();
});

/** A raw request to the sandbox's Stripe API, for what the client library would not send. */
async function raw(method: string, path: string, body?: Record<string, unknown>, headers: Record<string, string> = {}) {
  const response = await fetch(`${harness.sandbox.url}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${['sk', 'test', 'raw'].join('_')}`,
      ...(body ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {}),
      ...headers,
    },
    ...(body ? { body: encodeStripeForm(body) } : {}),
  });
  return { status: response.status, headers: response.headers, json: (await response.json()) as WireAnswer };
}

describe('gateway configuration (PAY-9)', () => {
  it('points the official client at STRIPE_API_URL, pins the package API version, and sets a timeout and retries', () => {
    const config = loadConfig({ NODE_ENV: 'test', STRIPE_API_URL: 'http://127.0.0.1:4567', STRIPE_TIMEOUT_MS: '1500', STRIPE_MAX_NETWORK_RETRIES: '3' });
    expect(stripeClientConfig(config.stripe)).toMatchObject({
      host: '127.0.0.1',
      port: 4567,
      protocol: 'http',
      timeout: 1500,
      maxNetworkRetries: 3,
      apiVersion: Stripe.API_VERSION,
    });
  });

  it('points at the sandbox port by default in sandbox mode, and at Stripe in live mode', () => {
    expect(loadConfig({ NODE_ENV: 'test', STRIPE_SANDBOX_PORT: '12999' }).stripe.apiUrl).toBe('http://127.0.0.1:12999');
    expect(loadConfig({ NODE_ENV: 'test', STRIPE_MODE: 'test' }).stripe.apiUrl).toBeUndefined();
    expect(stripeClientConfig(loadConfig({ NODE_ENV: 'test', STRIPE_MODE: 'test' }).stripe).host).toBeUndefined();
  });

  it('derives one constant idempotency key per operation, and refuses unsafe operation ids', () => {
    expect(idempotencyKey('customer.create', 'acct_123')).toBe('bulwark-customer.create-acct_123');
    expect(() => idempotencyKey('customer.create', 'a b')).toThrow(/operation id/);
    expect(() => idempotencyKey('customer.create', 'x'.repeat(201))).toThrow(/operation id/);
  });
});

describe('customers, products and prices through the official client', () => {
  it('creates, retrieves, updates, lists and deletes a customer', async () => {
    const { gateway } = harness;
    const created = await gateway.createCustomer('acct_crud', { email: 'ada@example.com', name: 'Ada', metadata: { accountId: 'acct_crud' } });
    expect(created).toMatchObject({ object: 'customer', email: 'ada@example.com', name: 'Ada', metadata: { accountId: 'acct_crud' }, livemode: false });
    expect(created.id).toMatch(/^cus_[A-Za-z0-9]{24}$/);
    const updated = await gateway.updateCustomer('upd_1', created.id, { name: 'Ada Lovelace', metadata: { plan: 'PRO' } });
    expect(updated).toMatchObject({ name: 'Ada Lovelace', metadata: { accountId: 'acct_crud', plan: 'PRO' } });
    const retrieved = await gateway.retrieveCustomer(created.id);
    expect(retrieved).toEqual(updated);
    const listed = await harness.stripe.customers.list({ email: 'ada@example.com' });
    expect(listed.data.map((customer) => customer.id)).toEqual([created.id]);
    const deleted = await gateway.deleteCustomer('del_1', created.id);
    expect(deleted).toEqual({ id: created.id, object: 'customer', deleted: true });
    await expect(gateway.retrieveCustomer(created.id)).rejects.toMatchObject({
      type: 'StripeInvalidRequestError',
      code: 'resource_missing',
      statusCode: 404,
      param: 'id',
    });
  });

  it('finds or creates products and prices by id and lookup key; a changed amount takes the lookup key over', async () => {
    const { gateway } = harness;
    const product = await gateway.ensureProduct({ id: 'bulwark_plan_PRO', name: 'Pro', metadata: { plan: 'PRO' } });
    expect(product).toMatchObject({ id: 'bulwark_plan_PRO', object: 'product', name: 'Pro', active: true });
    expect(await gateway.ensureProduct({ id: 'bulwark_plan_PRO', name: 'Pro' })).toEqual(product);

    const price = await gateway.ensurePrice({ lookupKey: 'plan_PRO_month', productId: product.id, unitAmount: 2900, currency: 'usd', recurring: { interval: 'month' } });
    expect(price).toMatchObject({ object: 'price', unit_amount: 2900, currency: 'usd', lookup_key: 'plan_PRO_month', type: 'recurring', recurring: { interval: 'month', interval_count: 1 } });
    expect((await gateway.ensurePrice({ lookupKey: 'plan_PRO_month', productId: product.id, unitAmount: 2900, currency: 'usd', recurring: { interval: 'month' } })).id).toBe(price.id);

    const repriced = await gateway.ensurePrice({ lookupKey: 'plan_PRO_month', productId: product.id, unitAmount: 3900, currency: 'usd', recurring: { interval: 'month' } });
    expect(repriced.id).not.toBe(price.id);
    expect((await gateway.findPriceByLookupKey('plan_PRO_month'))?.id).toBe(repriced.id);
    expect((await harness.stripe.prices.retrieve(price.id)).lookup_key).toBeNull();

    const pack = await gateway.ensurePrice({ lookupKey: 'credits_100', productId: product.id, unitAmount: 1000, currency: 'usd' });
    expect(pack).toMatchObject({ type: 'one_time', recurring: null, unit_amount: 1000 });
  });

  it('expands ids into objects, in lists too', async () => {
    const { stripe } = harness;
    const product = await stripe.products.create({ name: 'Expandable' });
    const price = await stripe.prices.create({ product: product.id, unit_amount: 500, currency: 'eur' }, { idempotencyKey: 'expand-price' });
    const expanded = await stripe.prices.retrieve(price.id, { expand: ['product'] });
    expect(expanded.product).toMatchObject({ id: product.id, object: 'product', name: 'Expandable' });
    const list = await stripe.prices.list({ product: product.id, expand: ['data.product'] });
    expect(list.data[0]?.product).toMatchObject({ id: product.id, object: 'product' });
    await expect(stripe.prices.retrieve(price.id, { expand: ['nonsense'] })).rejects.toMatchObject({ type: 'StripeInvalidRequestError', param: 'expand' });
  });
});

describe('wire format and errors', () => {
  it('paginates newest first with limit, starting_after, ending_before and has_more', async () => {
    const { stripe } = harness;
    const ids: string[] = [];
    for (let index = 0; index < 5; index += 1) {
      ids.push((await stripe.customers.create({ email: `page${index}@example.com`, metadata: { batch: 'page' } })).id);
    }
    const newestFirst = [...ids].reverse();
    const first = await stripe.customers.list({ limit: 2 });
    expect(first.data.map((customer) => customer.id)).toEqual(newestFirst.slice(0, 2));
    expect(first.has_more).toBe(true);
    expect(first.url).toBe('/v1/customers');
    const second = await stripe.customers.list({ limit: 2, starting_after: newestFirst[1] as string });
    expect(second.data.map((customer) => customer.id)).toEqual(newestFirst.slice(2, 4));
    const before = await stripe.customers.list({ limit: 2, ending_before: newestFirst[2] as string });
    expect(before.data.map((customer) => customer.id)).toEqual(newestFirst.slice(0, 2));
    expect(before.has_more).toBe(false);
    const all = await stripe.customers.list({ limit: 100 }).autoPagingToArray({ limit: 1000 });
    expect(all.map((customer) => customer.id)).toEqual(expect.arrayContaining(ids));
    await expect(stripe.customers.list({ limit: 101 })).rejects.toMatchObject({ type: 'StripeInvalidRequestError', param: 'limit' });
  });

  it('parses nested form keys and arrays, and answers bad parameters with Stripe error objects naming the param', async () => {
    const made = await raw('POST', '/v1/customers', { email: 'nested@example.com', metadata: { a: '1', b: '2' }, expand: ['test_clock'] });
    expect(made.status).toBe(200);
    expect(made.json.metadata).toEqual({ a: '1', b: '2' });
    expect(made.headers.get('stripe-version')).toBe(Stripe.API_VERSION);
    expect(made.headers.get('request-id')).toMatch(/^req_/);

    const badEmail = await raw('POST', '/v1/customers', { email: 'not-an-email' });
    expect(badEmail.status).toBe(400);
    expect(badEmail.json.error).toMatchObject({ type: 'invalid_request_error', code: 'email_invalid', param: 'email' });

    const missing = await raw('POST', '/v1/prices', { currency: 'usd', product: 'prod_nope', unit_amount: '1' });
    expect(missing.status).toBe(404);
    expect(missing.json.error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing', param: 'product' });

    const badInteger = await raw('POST', '/v1/prices', { currency: 'usd', product_data: { name: 'x' }, unit_amount: '12.5' });
    expect(badInteger.status).toBe(400);
    expect(badInteger.json.error).toMatchObject({ param: 'unit_amount' });

    const poisoned = await fetch(`${harness.sandbox.url}/v1/customers`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${['sk', 'test', 'raw'].join('_')}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'metadata[__proto__][x]=1',
    });
    expect(poisoned.status).toBe(400);

    const version = await raw('GET', '/v1/customers?limit=1', undefined, { 'Stripe-Version': '2024-06-20' });
    expect(version.headers.get('stripe-version')).toBe('2024-06-20');

    const unknown = await raw('GET', '/v1/nowhere');
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.message).toContain('Unrecognized request URL');
  });

  it('refuses requests without a test-mode API key', async () => {
    const none = await fetch(`${harness.sandbox.url}/v1/customers`);
    expect(none.status).toBe(401);
    const live = await fetch(`${harness.sandbox.url}/v1/customers`, { headers: { Authorization: `Bearer ${['sk', 'live', 'x'].join('_')}` } });
    expect(live.status).toBe(401);
    expect(((await live.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
  });
});

describe('idempotency', () => {
  it('replays the first answer for the same key and parameters, and refuses other parameters with an idempotency_error', async () => {
    const { gateway } = harness;
    const first = await gateway.createCustomer('acct_idem', { email: 'idem@example.com' });
    const again = await gateway.createCustomer('acct_idem', { email: 'idem@example.com' });
    expect(again).toEqual(first);
    expect((await harness.stripe.customers.list({ email: 'idem@example.com' })).data).toHaveLength(1);

    const error = await gateway.createCustomer('acct_idem', { email: 'other@example.com' }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
    expect(error).toMatchObject({ type: 'StripeIdempotencyError', statusCode: 400 });
    expect((error as Error).message).toContain("Keys for idempotent requests can only be used with the same parameters");
    expect((await harness.stripe.customers.list({ email: 'other@example.com' })).data).toHaveLength(0);

    const replayed = await raw('POST', '/v1/customers', { email: 'idem@example.com' }, { 'Idempotency-Key': 'bulwark-customer.create-acct_idem' });
    // Keys are scoped to the API key, as at Stripe: another key is another scope.
    expect(replayed.headers.get('idempotent-replayed')).toBeNull();
    const replayedAgain = await raw('POST', '/v1/customers', { email: 'idem@example.com' }, { 'Idempotency-Key': 'bulwark-customer.create-acct_idem' });
    expect(replayedAgain.headers.get('idempotent-replayed')).toBe('true');
    expect(replayedAgain.json.id).toBe(replayed.json.id);
  });

  it('creates one object when the connection drops after the sandbox did the work, and the client retries with the same key (PAY-9)', async () => {
    const { gateway, stripe } = harness;
    const dropped = await harness.control('POST', '/_sandbox/faults', { when: 'after', method: 'POST', pathPrefix: '/v1/customers', count: 1 });
    expect(dropped.status).toBe(200);
    const customer = await gateway.createCustomer('acct_dropped', { email: 'dropped@example.com' });
    const found = await stripe.customers.list({ email: 'dropped@example.com' });
    expect(found.data.map((item) => item.id)).toEqual([customer.id]);
  });

  it('gives up after its retries when every attempt is dropped, and creates nothing', async () => {
    const gateway = (await import('./helpers.js')).gatewayFor(harness.sandbox.url, { STRIPE_MAX_NETWORK_RETRIES: '1' });
    await harness.control('POST', '/_sandbox/faults', { when: 'before', method: 'POST', pathPrefix: '/v1/customers', count: 2 });
    await expect(gateway.createCustomer('acct_unreachable', { email: 'unreachable@example.com' })).rejects.toMatchObject({ type: 'StripeConnectionError' });
    expect((await harness.stripe.customers.list({ email: 'unreachable@example.com' })).data).toHaveLength(0);
  });
});
