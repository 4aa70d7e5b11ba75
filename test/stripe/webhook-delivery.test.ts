import Stripe from 'stripe';
import { afterEach, describe, expect, it } from 'vitest';
import { startSandboxHarness, type SandboxHarness } from './helpers.js';

let harness: SandboxHarness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

describe('webhook delivery', () => {
  it('retries a failed delivery with backoff until the endpoint accepts it', async () => {
    harness = await startSandboxHarness({ webhookRetryDelaysMs: [20, 40, 80] });
    harness.receiver.failNext = 2;
    const customer = await harness.stripe.customers.create({ email: 'retry@example.com' });
    await harness.receiver.until(() => harness?.receiver.received.some((item) => (item.event.data.object as Stripe.Customer).id === customer.id) ?? false);
    expect(harness.receiver.received.map((item) => item.event.type)).toEqual(['customer.created']);
    const { body } = await harness.control<{ deliveries: Array<{ eventId: string; attempts: number; state: string; lastStatus: number }> }>('GET', '/_sandbox/webhooks/deliveries');
    expect(body.deliveries).toMatchObject([{ attempts: 3, state: 'delivered', lastStatus: 200 }]);
    const event = await harness.stripe.events.retrieve(harness.receiver.received[0]?.event.id as string);
    expect(event.pending_webhooks).toBe(0);
  });

  it('gives up after the last retry and keeps the event for listing', async () => {
    harness = await startSandboxHarness({ webhookRetryDelaysMs: [10, 10] });
    harness.receiver.failNext = 10;
    await harness.stripe.customers.create({ email: 'giveup@example.com' });
    expect(await harness.sandbox.delivery.settle(5_000)).toBe(true);
    const { body } = await harness.control<{ deliveries: Array<{ attempts: number; state: string }> }>('GET', '/_sandbox/webhooks/deliveries');
    expect(body.deliveries).toMatchObject([{ attempts: 3, state: 'failed' }]);
    expect((await harness.stripe.events.list({ type: 'customer.created' })).data[0]?.pending_webhooks).toBe(1);
  });

  it('on request delivers every event twice, or the events of one operation in reverse order', async () => {
    harness = await startSandboxHarness();
    const { stripe } = harness;
    expect((await harness.control('POST', '/_sandbox/webhooks/mode', { duplicate: true })).body).toEqual({ duplicate: true, outOfOrder: false });
    const twice = await stripe.customers.create({ email: 'twice@example.com' });
    await harness.receiver.until(() => harness?.receiver.received.length === 2);
    expect(harness.receiver.received.map((item) => (item.event.data.object as Stripe.Customer).id)).toEqual([twice.id, twice.id]);
    expect(harness.receiver.received[0]?.event.id).toBe(harness.receiver.received[1]?.event.id);

    await harness.control('POST', '/_sandbox/webhooks/mode', { duplicate: false, outOfOrder: true });
    harness.receiver.received.length = 0;
    // One operation that causes two events: a product created with a default price.
    const product = await stripe.products.create({ name: 'Reversed', default_price_data: { currency: 'usd', unit_amount: 100 } });
    await harness.receiver.until(() => harness?.receiver.received.length === 2);
    const listed = (await stripe.events.list({ limit: 2 })).data.map((event) => event.type).reverse();
    expect(listed).toEqual(['product.created', 'price.created']);
    expect(harness.receiver.types()).toEqual(['price.created', 'product.created']);
    expect((harness.receiver.received[1]?.event.data.object as Stripe.Product).id).toBe(product.id);
    expect((await harness.control('POST', '/_sandbox/webhooks/mode', { outOfOrder: 'yes' })).status).toBe(400);
  });
});
