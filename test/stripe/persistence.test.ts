import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SANDBOX_STATE_FILE, startStripeSandbox, type StripeSandbox } from '../../src/modules/stripe/sandbox/sandbox-server.js';
import { gatewayFor, testWebhookSecret, WebhookReceiver } from './helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function dataDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-sandbox-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function start(dir: string, options: Parameters<typeof startStripeSandbox>[0] = {}): Promise<StripeSandbox> {
  const sandbox = await startStripeSandbox({ dataDir: dir, ...options });
  cleanups.push(() => sandbox.close());
  return sandbox;
}

describe('sandbox state on disk', () => {
  it('keeps customers, subscriptions, events, idempotency keys and the clock across a restart', async () => {
    const dir = dataDir();
    const before = await start(dir);
    const gateway = gatewayFor(before.url);
    const customer = await gateway.createCustomer('acct_persist', { email: 'persist@example.com' });
    const product = await gateway.ensureProduct({ id: 'bulwark_plan_PERSIST', name: 'Persist' });
    const price = await gateway.ensurePrice({ lookupKey: 'persist_month', productId: product.id, unitAmount: 700, currency: 'usd', recurring: { interval: 'month' } });
    const session = await gateway.createCheckoutSession('chk_persist', { mode: 'subscription', customer: customer.id, line_items: [{ price: price.id }], success_url: 'http://localhost:3000/ok' });
    const paid = await fetch(`${before.url}/_sandbox/checkout/${session.id}/pay`, { method: 'POST', body: JSON.stringify({ card: '4242424242424242' }) });
    const { subscription } = (await paid.json()) as { subscription: string };
    await fetch(`${before.url}/_sandbox/clock/advance`, { method: 'POST', body: JSON.stringify({ seconds: 3600 }) });
    const clockBefore = before.core.globalNow();
    const eventsBefore = (await gateway.listEvents({ limit: 100 })).data.map((event) => event.id);
    await before.close();

    const file = path.join(dir, SANDBOX_STATE_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ version: 1, clockOffsetSeconds: 3600 });

    const after = await start(dir);
    const again = gatewayFor(after.url);
    expect(await again.retrieveCustomer(customer.id)).toMatchObject({ id: customer.id, email: 'persist@example.com', next_invoice_sequence: 2 });
    expect(await again.retrieveSubscription(subscription)).toMatchObject({ status: 'active', customer: customer.id });
    expect((await again.retrieveCheckoutSession(session.id)).status).toBe('complete');
    expect((await again.listEvents({ limit: 100 })).data.map((event) => event.id)).toEqual(eventsBefore);
    expect(after.core.globalNow()).toBeGreaterThanOrEqual(clockBefore);
    expect(after.core.globalNow() - clockBefore).toBeLessThan(60);
    // The idempotency key still replays after the restart.
    expect((await again.createCustomer('acct_persist', { email: 'persist@example.com' })).id).toBe(customer.id);
    expect((await again.listInvoices({ subscription })).data).toHaveLength(1);
  });

  it('delivers events that were still pending when it stopped, once it is back', async () => {
    const dir = dataDir();
    const secret = testWebhookSecret();
    const first = await start(dir, { webhookSecret: secret });
    // No endpoint yet: the event waits in the persisted delivery queue.
    const customer = await gatewayFor(first.url).createCustomer('acct_pending', { email: 'pending@example.com' });
    await first.close();
    const receiver = await new WebhookReceiver(secret).start();
    cleanups.push(() => receiver.close());
    await start(dir, { webhookSecret: secret, webhookUrl: receiver.url });
    await receiver.until(() => receiver.received.length === 1);
    expect(receiver.received[0]?.event).toMatchObject({ type: 'customer.created', data: { object: { id: customer.id } } });
  });
});
