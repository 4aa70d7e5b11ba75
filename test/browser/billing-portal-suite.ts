/// <reference lib="dom" />
// Callbacks passed to page.evaluate run in the browser: they see the DOM types.
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BROWSER_PACK,
  expectCleanPage,
  payOnHostedPage,
  screenshotFolder,
  watchPage,
  type PageProblems,
  type StartedService,
} from './helpers.js';

/** The portal's dates: "12 May 2026, 10:00 UTC" (lib/dom.js formatDate). */
function portalDate(iso: string): string {
  return `${new Date(iso).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' })} UTC`;
}

/**
 * Run by ui.browser.test.ts with its one service and one browser: the paid parts of the
 * portal (UI-1, PAY-2..4) against the service's in-process Stripe sandbox. A credit pack
 * and a PRO subscription bought through the sandbox's hosted checkout page, the card typed
 * into its form; the result shown once the webhook has landed; cancel at the period end
 * and resume. `enabled`: the catalogue has the browser pack (the service runs on PostgreSQL).
 */
export function billingPortalSuite(shared: () => { service: StartedService; browser: Browser }, enabled: boolean): void {
  describe.skipIf(!enabled)('the portal buys credits and a plan in a browser (UI-1, PAY-2..4)', () => {
    let service: StartedService;
    let context: BrowserContext;
    let page: Page;
    let problems: PageProblems;
    const shots = screenshotFolder();
    const email = `buyer-${Math.random().toString(36).slice(2, 8)}@example.com`;

    beforeAll(async () => {
      ({ service } = shared());
      context = await shared().browser.newContext({ viewport: { width: 1280, height: 900 } });
      page = await context.newPage();
      problems = await watchPage(page);
    }, 90_000);

    afterAll(async () => {
      await context?.close();
      shots.cleanup();
    });

    it('signs up, buys a credit pack on the sandbox checkout page with 4242 4242 4242 4242, and sees the balance once the webhook has landed', async () => {
      await page.goto(`${service.url}/portal/signup`);
      await page.getByLabel('Name (optional)').fill('Bea Buyer');
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill('a long and sturdy passphrase');
      await page.getByRole('button', { name: 'Sign up' }).click();
      await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
      expect(await page.getByTestId('overview-balance').textContent()).toBe('10');

      await page.getByRole('link', { name: 'Credits', exact: true }).click();
      await page.getByRole('heading', { name: 'Credits', level: 1 }).waitFor();
      await page.getByRole('button', { name: `Buy ${BROWSER_PACK.name}: 250 credits for 15.00 USD` }).click();

      // Stripe's (the sandbox's) hosted page, on the service's own origin.
      await expect.poll(() => new URL(page.url()).pathname).toMatch(/^\/sandbox\/checkout\/cs_/);
      expect(await page.locator('.total').textContent()).toContain('15.00 USD');
      await payOnHostedPage(page);

      // Back on the portal: the result comes from the webhook, not from the return URL.
      await page.getByText('Payment confirmed: 250 credits added, your balance is now 260 credits.').waitFor({ timeout: 40_000 });
      expect(new URL(page.url()).search).toBe('');
      expect(await page.getByTestId('overview-balance').textContent()).toBe('260');
      await expectCleanPage(page, problems, 'the overview after a purchase');

      await page.getByRole('link', { name: 'Credits', exact: true }).click();
      await page.getByRole('heading', { name: 'Credits', level: 1 }).waitFor();
      expect(await page.getByTestId('balance').textContent()).toBe('260 credits');
      const ledger = page.getByRole('table', { name: 'Credit ledger' });
      expect(await ledger.locator('tbody tr').first().textContent()).toContain('+250');
      const grants = page.getByRole('table', { name: 'Your credit grants' });
      expect(await grants.locator('tbody tr', { hasText: 'Purchase' }).textContent()).toContain('250');
      await expectCleanPage(page, problems, 'the credits page after a purchase');
    });

    it('a checkout left on the hosted page says nothing was charged', async () => {
      await page.getByRole('button', { name: /^Buy / }).click();
      await page.getByRole('heading', { name: 'Sandbox checkout', level: 1 }).waitFor();
      await page.getByRole('link', { name: 'Cancel' }).click();
      await page.getByText('Checkout was canceled: nothing was charged.').waitFor();
      expect(await page.getByTestId('overview-balance').textContent()).toBe('260');
      expect(await problems.list()).toEqual([]);
    });

    it('subscribes to PRO through checkout, cancels at the period end and sees the end date, then resumes', async () => {
      await page.getByRole('link', { name: 'Plans' }).click();
      await page.getByRole('heading', { name: 'Plans', level: 1 }).waitFor();
      expect(await page.getByTestId('subscription-status').textContent()).toBe('No subscription: you are on Free.');
      await expectCleanPage(page, problems, 'the plans page without a subscription');
      await page.getByRole('button', { name: 'Upgrade to Pro' }).click();
      await payOnHostedPage(page);
      await page.getByText('Payment confirmed: you are now on PRO.').waitFor({ timeout: 40_000 });
      expect(await page.getByTestId('plan-name').textContent()).toBe('Pro (PRO)');

      await page.getByRole('link', { name: 'Plans' }).click();
      await page.getByRole('heading', { name: 'Your subscription' }).waitFor();
      const status = page.getByTestId('subscription-status');
      const stored = (await (await context.request.get(`${service.url}/api/billing/subscription`)).json()) as {
        subscription: { status: string; plan: string; currentPeriodEnd: string; cancelAtPeriodEnd: boolean };
      };
      expect(stored.subscription).toMatchObject({ plan: 'PRO', cancelAtPeriodEnd: false });
      expect(['active', 'trialing']).toContain(stored.subscription.status);
      const end = portalDate(stored.subscription.currentPeriodEnd);
      expect(await status.textContent()).toContain(`renews on ${end}`);
      // The other paid plan is a prorated switch now, not a second checkout.
      await page.getByRole('button', { name: 'Switch to Starter' }).waitFor();
      await expectCleanPage(page, problems, 'the plans page with a subscription');

      page.once('dialog', (dialog) => void dialog.accept());
      await page.getByRole('button', { name: 'Cancel at the end of the period' }).click();
      await page.getByText(`Cancelled: you keep PRO until ${end}, then move to Free.`).waitFor();
      expect(await status.textContent()).toContain(`ends on ${end}`);
      await page.getByRole('button', { name: 'Resume the subscription' }).waitFor();
      await expectCleanPage(page, problems, 'the plans page with a cancellation');
      await page.screenshot({ path: path.join(shots.folder, 'portal-plans.png'), fullPage: true });
      // Stored from Stripe's webhook too: a reload shows the same.
      await expect
        .poll(async () => ((await (await context.request.get(`${service.url}/api/billing/subscription`)).json()) as typeof stored).subscription.cancelAtPeriodEnd)
        .toBe(true);
      await page.reload();
      await page.getByRole('heading', { name: 'Your subscription' }).waitFor();
      expect(await status.textContent()).toContain(`ends on ${end}`);

      await page.getByRole('button', { name: 'Resume the subscription' }).click();
      await page.getByText(`Resumed: your subscription renews on ${end}.`).waitFor();
      expect(await status.textContent()).toContain(`renews on ${end}`);
      await page.getByRole('button', { name: 'Cancel at the end of the period' }).waitFor();
      expect(await problems.list()).toEqual([]);
    });

    it('shows a refusal of the API as a clear message in the form that asked: too many checkouts in a minute (429)', async () => {
      // Three checkout sessions so far; the policy allows 5 a minute per person (checkout.user).
      const message = page.locator('.form-status.error');
      for (let attempt = 0; attempt < 12 && (await message.count()) === 0; attempt += 1) {
        await page.goto(`${service.url}/portal/credits`);
        await page.getByRole('button', { name: /^Buy / }).click();
        await Promise.race([page.getByRole('heading', { name: 'Sandbox checkout', level: 1 }).waitFor(), message.waitFor()]);
      }
      expect(await message.textContent()).toMatch(/^Too many requests: try again in \d+ s\.$/);
      expect(new URL(page.url()).pathname).toBe('/portal/credits');
      expect(await page.getByTestId('balance').textContent()).toBe('260 credits');
      await expectCleanPage(page, problems, 'the credits page with a refusal');
    });
  });
}
