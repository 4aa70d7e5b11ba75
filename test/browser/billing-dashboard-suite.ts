/// <reference lib="dom" />
// Callbacks passed to page.evaluate run in the browser: they see the DOM types.
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BROWSER_PACK,
  csrfOf,
  expectCleanPage,
  sandboxUrlOf,
  screenshotFolder,
  scrollsSideways,
  signUpInContext,
  watchPage,
  type PageProblems,
  type StartedService,
} from './helpers.js';

/**
 * Run by ui.browser.test.ts with its one service and one browser: the billing parts of the
 * operator dashboard (UI-1, PAY-7, PAY-8). A customer buys the credit pack (checkout over
 * HTTP, paid through the sandbox's pay route); the operator finds the account, refunds
 * part of the pack and then the rest from its page, sees the ledger take the credits back
 * and the audit entries, and runs a reconciliation that shows its report.
 * `enabled`: the catalogue has the browser pack (the service runs on PostgreSQL).
 */
export function billingDashboardSuite(shared: () => { service: StartedService; browser: Browser }, enabled: boolean): void {
  describe.skipIf(!enabled)('the dashboard refunds a credit pack and reconciles in a browser (UI-1, PAY-7, PAY-8)', () => {
    let service: StartedService;
    let browser: Browser;
    let customer: BrowserContext;
    let context: BrowserContext;
    let page: Page;
    let problems: PageProblems;
    let accountId: string;
    const shots = screenshotFolder();
    const email = `refundee-${Math.random().toString(36).slice(2, 8)}@example.com`;
    // Nothing listens there: deliveries are only queued in this run (its jobs are off).
    const hookUrl = 'http://127.0.0.1:9/books/refunds';

    beforeAll(async () => {
      ({ service, browser } = shared());
      // The customer, in a context of their own: signs up and buys the pack.
      customer = await browser.newContext();
      accountId = await signUpInContext(customer, service, { email, password: 'a long and sturdy passphrase', name: 'Refund Co' });
      const checkout = await customer.request.post(`${service.url}/api/billing/checkout`, { data: { creditPack: BROWSER_PACK.id }, headers: { 'x-csrf-token': await csrfOf(customer) } });
      expect(checkout.status(), await checkout.text()).toBe(200);
      const { sessionId } = (await checkout.json()) as { sessionId: string };
      const paid = await customer.request.post(`${service.url}/sandbox/checkout/${sessionId}/pay`, { data: { card: '4242 4242 4242 4242' } });
      expect(paid.status(), await paid.text()).toBe(200);
      // The webhook grants the credits: bounded polling (a hook cannot use expect.poll).
      let balance = 0;
      for (let attempt = 0; attempt < 100 && balance !== 260; attempt += 1) {
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 200));
        balance = ((await (await customer.request.get(`${service.url}/api/credits`)).json()) as { balance: number }).balance;
      }
      expect(balance, 'the balance after the purchase').toBe(260);

      context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      page = await context.newPage();
      problems = await watchPage(page);
    }, 90_000);

    afterAll(async () => {
      await customer?.close();
      await context?.close();
      shots.cleanup();
    });

    /** The account page's numbers, after a reload (the reversal arrives with Stripe's webhook). */
    async function reloadedBalance(): Promise<string | null> {
      await page.reload();
      await page.getByTestId('admin-balance').waitFor();
      return page.getByTestId('admin-balance').textContent();
    }

    it("signs in, finds the account and sees its payment: the pack's amount, its credits, its Stripe ids", async () => {
      await page.goto(`${service.url}/admin/login`);
      await page.getByLabel('Admin token').fill(service.adminToken);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Accounts', level: 1 }).waitFor();
      await page.getByLabel('Search accounts').fill(email);
      await page.getByRole('button', { name: 'Search' }).click();
      await page.getByRole('table', { name: /Accounts matching/ }).getByRole('link', { name: 'Refund Co' }).click();
      await page.getByRole('heading', { name: 'Refund Co' }).waitFor();
      expect(new URL(page.url()).pathname).toBe(`/admin/accounts/${accountId}`);
      expect(await page.getByTestId('admin-balance').textContent()).toBe('260 credits');

      const payments = page.getByRole('table', { name: 'Payments' });
      const row = payments.locator('tbody tr');
      expect(await row.count()).toBe(1);
      const text = (await row.textContent()) ?? '';
      expect(text).toContain(`Credit pack ${BROWSER_PACK.id}`);
      expect(text).toContain('15.00 USD');
      expect(text).toContain('250 granted');
      expect(text).toContain('Succeeded');
      expect(text).toMatch(/pay_[A-Za-z0-9_-]+/);
      expect(await page.getByTestId('admin-subscription').textContent()).toBe('No subscription.');
      await expectCleanPage(page, problems, 'the account page with a payment');
    });

    it('adds an outgoing webhook endpoint for refunds: a bad URL is named, the signing secret is shown once', async () => {
      await page.getByRole('link', { name: 'Outgoing webhooks' }).click();
      await page.getByRole('heading', { name: 'Outgoing webhooks', level: 1 }).waitFor();
      await page.getByText('No endpoints yet.').waitFor();
      await expectCleanPage(page, problems, 'the endpoints page');
      await page.getByLabel('URL').fill('ftp://example.com/hook');
      await page.getByRole('button', { name: 'Add the endpoint' }).click();
      const error = page.locator('.form-status.error');
      await error.waitFor();
      // Said once: beside the field, which the form's alert names.
      expect(await error.textContent()).toBe('Correct the marked field: URL.');
      expect(await page.locator('main form .field-error').allTextContents()).toEqual(['Must match pattern "^https?://[^\\s]+$"']);
      expect((await page.locator('main form').first().textContent())?.match(/pattern/g)).toHaveLength(1);
      expect(await page.getByLabel('URL').getAttribute('aria-invalid')).toBe('true');

      await page.getByLabel('URL').fill(hookUrl);
      await page.getByLabel('Description (optional)').fill('refunds to the books');
      await page.getByLabel('Event types (optional)').fill('payment.refunded');
      await page.getByRole('button', { name: 'Add the endpoint' }).click();
      const secret = (await page.getByTestId('endpoint-secret').textContent()) ?? '';
      expect(secret).toMatch(/^whsec_/);
      const row = page.getByRole('table', { name: 'Outgoing webhook endpoints' }).locator('tbody tr');
      expect(await row.count()).toBe(1);
      expect(await row.textContent()).toContain('payment.refunded');
      expect(await row.textContent()).toContain('Enabled');
      await expectCleanPage(page, problems, 'the endpoints page with an endpoint');
      await page.reload();
      await page.getByRole('table', { name: 'Outgoing webhook endpoints' }).waitFor();
      expect(await page.content()).not.toContain(secret);

      // Back to the account for the refunds.
      await page.goto(`${service.url}/admin/accounts/${accountId}`);
      await page.getByRole('heading', { name: 'Refund Co' }).waitFor();
    });

    it('refunds part of the pack, then the rest: the ledger takes the credits back, the audit shows the refunds', async () => {
      // A malformed amount is refused with the field named, and nothing is refunded.
      await page.getByLabel('Amount (empty: everything left)').fill('5.001');
      page.once('dialog', (dialog) => void dialog.accept());
      await page.getByRole('button', { name: 'Refund', exact: true }).click();
      const refundForm = page.locator('form', { has: page.getByRole('button', { name: 'Refund', exact: true }) });
      const error = refundForm.locator('.form-status.error');
      await error.waitFor();
      // Said once: beside the field (the API takes cents), which the form's alert names.
      expect(await error.textContent()).toBe('Correct the marked field: Amount.');
      expect(await refundForm.locator('.field-error').allTextContents()).toEqual(['Must be integer']);
      expect((await refundForm.textContent())?.match(/integer/g)).toHaveLength(1);
      expect(await page.getByLabel('Amount (empty: everything left)').getAttribute('aria-invalid')).toBe('true');

      // 5.00 of 15.00 USD: floor(250 x 500 / 1500) = 83 credits back.
      await page.getByLabel('Amount (empty: everything left)').fill('5.00');
      page.once('dialog', (dialog) => {
        expect(dialog.message()).toContain('Refund 5.00 USD of pay_');
        void dialog.accept();
      });
      await page.getByRole('button', { name: 'Refund', exact: true }).click();
      await page.getByText(/^Refunded 5\.00 USD \(/).waitFor();
      await expect.poll(reloadedBalance, { timeout: 20_000 }).toBe('177 credits');
      const ledger = page.getByRole('table', { name: 'Credit ledger' });
      expect(await ledger.locator('tbody tr').first().textContent()).toMatch(/Refund reversal.*-83/);
      const payment = page.getByRole('table', { name: 'Payments' }).locator('tbody tr');
      expect(await payment.textContent()).toContain('5.00 USD');
      expect(await payment.textContent()).toContain('83 taken back');
      await expectCleanPage(page, problems, 'the account page after a partial refund');
      await page.screenshot({ path: path.join(shots.folder, 'dashboard-refund.png'), fullPage: true });

      // The rest (10.00 USD): every credit of the pack is back, the 10 of the sign-up stay.
      expect(await page.getByLabel('Payment').locator('option').first().textContent()).toContain('10.00 USD left');
      page.once('dialog', (dialog) => {
        expect(dialog.message()).toContain('Refund everything left of pay_');
        void dialog.accept();
      });
      await page.getByRole('button', { name: 'Refund', exact: true }).click();
      await page.getByText(/^Refunded 10\.00 USD \(/).waitFor();
      await expect.poll(reloadedBalance, { timeout: 20_000 }).toBe('10 credits');
      expect(await ledger.locator('tbody tr').first().textContent()).toMatch(/Refund reversal.*-167/);
      expect(await payment.textContent()).toContain('250 granted, 250 taken back');
      // Nothing is left to refund: no refund form.
      expect(await page.getByRole('button', { name: 'Refund', exact: true }).count()).toBe(0);

      const audit = page.getByRole('table', { name: 'Audit entries about this account' });
      const requested = audit.locator('tbody tr', { hasText: 'payment.refund_requested' });
      expect(await requested.count()).toBe(2);
      expect(await requested.first().textContent()).toMatch(/admin adms_/);
      expect(await audit.locator('tbody tr', { hasText: 'credits.refund_reversed' }).count()).toBe(2);
      await expectCleanPage(page, problems, 'the account page after the refunds');
    });

    it("shows the refunds in the endpoint's delivery log; a refused redelivery is a clear message; disables the endpoint", async () => {
      await page.getByRole('link', { name: 'Outgoing webhooks' }).click();
      await page.getByRole('link', { name: hookUrl }).click();
      await page.getByRole('heading', { name: 'Delivery log', level: 1 }).waitFor();
      const deliveries = page.getByRole('table', { name: 'Deliveries' }).locator('tbody tr');
      await deliveries.first().waitFor();
      // One payment.refunded for each of the two refunds (scheduled jobs are off here: still pending).
      expect(await deliveries.count()).toBe(2);
      for (const text of await deliveries.allTextContents()) expect(text).toMatch(/payment\.refunded.*Pending/);
      await expectCleanPage(page, problems, 'the delivery log');
      await deliveries.first().getByRole('button', { name: 'Redeliver payment.refunded' }).click();
      const error = deliveries.first().locator('.form-status.error');
      await error.waitFor();
      expect(await error.textContent()).toBe('This delivery is already pending');

      await page.getByRole('link', { name: 'All endpoints' }).click();
      page.once('dialog', (dialog) => void dialog.accept());
      await page.getByRole('button', { name: `Disable the endpoint ${hookUrl}` }).click();
      await page.getByText(`The endpoint ${hookUrl} is disabled.`).waitFor();
      expect(await page.getByRole('table', { name: 'Outgoing webhook endpoints' }).locator('tbody tr').textContent()).toContain('Disabled');
      expect(await problems.list()).toEqual([]);
    });

    it('runs a reconciliation now and shows its report; the page reads on a phone', async () => {
      await page.getByRole('link', { name: 'Reconciliation' }).click();
      await page.getByRole('heading', { name: 'Reconciliation', level: 1 }).waitFor();
      await page.locator('.loading').waitFor({ state: 'detached' });
      const reports = page.getByRole('table', { name: 'Reconciliation reports, newest first' });
      const before = (await reports.count()) === 0 ? 0 : await reports.locator('tbody tr').count();
      await expectCleanPage(page, problems, 'the reconciliation page');

      await page.getByRole('button', { name: 'Run reconciliation now' }).click();
      await page.getByText(/^Reconciliation finished: \d+ customers checked, \d+ discrepancies, \d+ repaired, 0 failed\.$/).waitFor({ timeout: 30_000 });
      expect(await reports.locator('tbody tr').count()).toBe(before + 1);
      const newest = (await reports.locator('tbody tr').first().textContent()) ?? '';
      expect(newest).toContain('Admin');
      expect(newest).toContain('Succeeded');
      // Every Stripe customer is checked: at least this suite's buyer.
      const checked = Number(/(\d+) customers checked/.exec((await page.locator('#notice').textContent()) ?? '')?.[1]);
      expect(checked).toBeGreaterThanOrEqual(1);
      await expectCleanPage(page, problems, 'the reconciliation page with a report');
      await page.screenshot({ path: path.join(shots.folder, 'dashboard-reconciliation.png'), fullPage: true });

      await page.setViewportSize({ width: 375, height: 740 });
      for (const pathname of ['/admin/reconciliation', '/admin/endpoints', `/admin/accounts/${accountId}`]) {
        await page.goto(`${service.url}${pathname}`);
        await page.locator('main h1').waitFor();
        await page.locator('.loading').waitFor({ state: 'detached' });
        expect(await scrollsSideways(page), `${pathname} scrolls sideways`).toBe(false);
      }
      await page.setViewportSize({ width: 1280, height: 900 });
      expect(await problems.list()).toEqual([]);
    });

    // After the reconciliation: that run must not be the one that repairs the missed purchase.
    it('lists an event that failed every attempt as a dead letter and replays it from the page: the credits arrive once, the row goes', async () => {
      const buyer = await browser.newContext();
      try {
        const buyerId = await signUpInContext(buyer, service, { email: `dead-letter-${Math.random().toString(36).slice(2, 8)}@example.com`, password: 'a long and sturdy passphrase', name: 'Dead Letter Co' });
        const checkout = await buyer.request.post(`${service.url}/api/billing/checkout`, { data: { creditPack: BROWSER_PACK.id }, headers: { 'x-csrf-token': await csrfOf(buyer) } });
        expect(checkout.status(), await checkout.text()).toBe(200);
        const { sessionId } = (await checkout.json()) as { sessionId: string };
        // Stripe's API drops every connection that fetches this checkout session, for both
        // attempts of its checkout.session.completed (WEBHOOK_MAX_ATTEMPTS=2, each 1 + 2
        // requests with STRIPE_MAX_NETWORK_RETRIES=2; ui.browser.test.ts): the second is dead-lettered.
        const fault = await fetch(`${sandboxUrlOf(service)}/_sandbox/faults`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ when: 'before', method: 'GET', pathPrefix: `/v1/checkout/sessions/${sessionId}`, count: 6 }),
        });
        expect(fault.status, await fault.text()).toBe(200);
        const paid = await buyer.request.post(`${service.url}/sandbox/checkout/${sessionId}/pay`, { data: { card: '4242 4242 4242 4242' } });
        expect(paid.status(), await paid.text()).toBe(200);

        await page.getByRole('link', { name: 'Webhooks', exact: true }).click();
        await page.getByRole('heading', { name: 'Webhook dead letters', level: 1 }).waitFor();
        const letters = page.getByRole('table', { name: 'Stripe events that could not be applied' });
        const row = letters.locator('tbody tr', { hasText: buyerId });
        await expect
          .poll(
            async () => {
              await page.reload();
              await page.locator('.loading').waitFor({ state: 'detached' });
              return row.count();
            },
            { timeout: 30_000 },
          )
          .toBe(1);
        const eventId = (await row.locator('td').first().textContent()) ?? '';
        expect(eventId).toMatch(/^evt_/);
        expect((await row.locator('td').allTextContents()).slice(1, 5)).toEqual(['checkout.session.completed', buyerId, '2', 'STRIPE_CONNECTION_ERROR']);
        expect(((await (await buyer.request.get(`${service.url}/api/credits`)).json()) as { balance: number }).balance, 'nothing granted yet').toBe(10);
        await expectCleanPage(page, problems, 'the dead-letter list');

        await row.getByRole('button', { name: `Replay ${eventId}` }).click();
        await page.getByText(`Replayed ${eventId}: Processed.`).waitFor();
        expect(await letters.locator('tbody tr', { hasText: eventId }).count()).toBe(0);
        await expectCleanPage(page, problems, 'the dead-letter list after the replay');
        await page.reload();
        await page.locator('.loading').waitFor({ state: 'detached' });
        expect(await page.getByText(eventId).count(), 'the replayed event after a reload').toBe(0);

        // Applied once: the pack's 250 credits, one ledger line of them, one replay in the audit log.
        expect(((await (await buyer.request.get(`${service.url}/api/credits`)).json()) as { balance: number }).balance).toBe(260);
        await page.goto(`${service.url}/admin/accounts/${buyerId}`);
        await page.getByRole('heading', { name: 'Dead Letter Co' }).waitFor();
        expect(await page.getByTestId('admin-balance').textContent()).toBe('260 credits');
        expect(await page.getByRole('table', { name: 'Credit ledger' }).locator('tbody tr', { hasText: '+250' }).count()).toBe(1);
        // With its refund form (the payment is refundable), the page still reads on a phone.
        await page.setViewportSize({ width: 375, height: 740 });
        await page.getByRole('button', { name: 'Refund', exact: true }).waitFor();
        expect(await scrollsSideways(page), 'the account page with a refund form scrolls sideways').toBe(false);
        await page.setViewportSize({ width: 1280, height: 900 });
        await page.goto(`${service.url}/admin/audit`);
        await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
        await page.locator('.loading').waitFor({ state: 'detached' });
        expect(await page.getByRole('table', { name: 'Audit entries, newest first' }).locator('tbody tr', { hasText: 'webhook.replayed' }).count()).toBe(1);
        expect(await problems.list()).toEqual([]);
      } finally {
        await buyer.close();
      }
    });
  });
}
