/// <reference lib="dom" />
// Callbacks passed to page.evaluate run in the browser: they see the DOM types.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOutbox } from '../helpers/outbox.js';
import { createScratchDatabase, postgresSetup, type ScratchDatabase } from '../helpers/postgres.js';
import {
  expectCleanPage,
  freePort,
  screenshotFolder,
  scrollsSideways,
  seriousAccessibilityProblems,
  startService,
  watchPage,
  type PageProblems,
  type StartedService,
} from './helpers.js';

/** Presses Tab until `target` has the focus: proves it is reachable by keyboard alone. */
async function tabTo(page: Page, target: Locator, maxPresses = 40): Promise<void> {
  for (let press = 0; press < maxPresses; press += 1) {
    if (await target.evaluate((element) => element === document.activeElement)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`could not reach ${target.toString()} with ${maxPresses} Tab presses`);
}

/** Run by ui.browser.test.ts with its one service and one browser. */
export function portalSuite(shared: () => { service: StartedService; browser: Browser }): void {
  describe('the customer portal in a browser (UI-1)', () => {
    let service: StartedService;
    let context: BrowserContext;
    let page: Page;
    let problems: PageProblems;
    const shots = screenshotFolder();
    const email = `owner-${Math.random().toString(36).slice(2, 8)}@example.com`;
    const password = 'a long and sturdy passphrase';

    beforeAll(async () => {
      ({ service } = shared());
      const { browser } = shared();
      context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: service.url });
      page = await context.newPage();
      problems = await watchPage(page);
    }, 90_000);

    afterAll(async () => {
      await context?.close();
      shots.cleanup();
    });

    it('signs up with the keyboard alone, then shows the plan, usage against limits with a 30-day chart, and the credits', async () => {
      await page.goto(`${service.url}/portal`);
      // Not signed in: the portal sends people to the login page.
      await expect.poll(() => new URL(page.url()).pathname).toBe('/portal/login');
      await expectCleanPage(page, problems, 'the login page');
      await page.getByRole('link', { name: 'Create an account' }).focus();
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'Create an account', level: 1 }).waitFor();
      await expectCleanPage(page, problems, 'the sign-up page');

      await tabTo(page, page.getByLabel('Name (optional)'));
      await page.keyboard.type('Ann Owner');
      await page.keyboard.press('Tab');
      await page.keyboard.type(email);
      await tabTo(page, page.getByLabel('Password'));
      // A too short password: the API's field-level message is said once, beside the field.
      await page.keyboard.type('short');
      await page.keyboard.press('Enter');
      const fieldError = page.locator('.field-error');
      await fieldError.waitFor();
      expect(await fieldError.allTextContents()).toEqual(['Must be at least 12 characters']);
      expect(await page.locator('.form-status.error').textContent()).toBe('Correct the marked field: Password.');
      expect((await page.locator('main form').textContent())?.match(/must be at least 12/gi)).toHaveLength(1);
      expect(await page.getByLabel('Password').getAttribute('aria-invalid')).toBe('true');
      await page.getByLabel('Password').fill('');
      await page.getByLabel('Password').focus();
      await page.keyboard.type(password);
      await page.keyboard.press('Enter');

      await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
      expect(await page.getByTestId('plan-name').textContent()).toBe('Free (FREE)');
      await page.getByRole('heading', { name: 'Usage against your limits' }).waitFor();
      expect(await page.locator('.usage-row').first().textContent()).toMatch(/API calls per day: 0 of 100/);
      // Some use today, through the API with the page's own cookies and CSRF token: the
      // usage line and the chart follow it after a reload.
      const csrf = (await context.cookies()).find((cookie) => cookie.name === 'csrf_token')?.value ?? '';
      const tracked = await page.request.post(`${service.url}/api/entitlements/check`, { data: { feature: 'api_calls_per_day', track: 37 }, headers: { 'x-csrf-token': csrf } });
      expect(tracked.status()).toBe(200);
      await page.reload();
      await page.getByRole('heading', { name: 'Usage against your limits' }).waitFor();
      expect(await page.locator('.usage-row').first().textContent()).toMatch(/API calls per day: 37 of 100/);
      expect(await page.locator('svg.chart').first().locator('rect.bar[height]:not([height="0"])').count()).toBe(1);
      expect(await page.locator('svg.chart').count()).toBeGreaterThanOrEqual(2);
      expect(await page.locator('svg.chart title').first().textContent()).toMatch(/over 30 days/);
      // The sign-up bonus (CRD-7).
      expect(await page.getByTestId('overview-balance').textContent()).toBe('10');
      await expectCleanPage(page, problems, 'the overview');
      await page.screenshot({ path: path.join(shots.folder, 'portal-overview.png'), fullPage: true });

      await tabTo(page, page.getByRole('link', { name: 'Credits', exact: true }));
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'Credits', level: 1 }).waitFor();
      expect(await page.getByTestId('balance').textContent()).toBe('10 credits');
      expect(await page.getByTestId('held').textContent()).toBe('0 credits');
      const ledger = page.getByRole('table', { name: 'Credit ledger' });
      expect(await ledger.locator('tbody tr').count()).toBe(1);
      expect(await ledger.locator('tbody tr').first().textContent()).toContain('+10');
      // Credit packs from the catalogue, each a checkout button (or a plain note when none is on sale).
      const { creditPacks } = (await (await fetch(`${service.url}/api/pricing`)).json()) as { creditPacks: unknown[] };
      expect(await page.getByRole('button', { name: /^Buy / }).count()).toBe(creditPacks.length);
      if (creditPacks.length === 0) await page.getByText('No credit packs are on sale.').waitFor();
      await expectCleanPage(page, problems, 'the credits page');
      await page.screenshot({ path: path.join(shots.folder, 'portal-credits.png'), fullPage: true });
    });

    it('creates an API key, shows its secret once with a working copy button, lists it and revokes it', async () => {
      await page.getByRole('link', { name: 'API keys' }).click();
      await page.getByRole('heading', { name: 'API keys', level: 1 }).waitFor();
      await page.getByLabel('Label').fill('build server');
      await page.getByRole('button', { name: 'Create the key' }).click();
      const secret = (await page.getByTestId('new-secret').textContent()) ?? '';
      expect(secret).toMatch(/^cust_acct_[A-Za-z0-9_-]+_[A-Za-z0-9_-]{43}$/);
      await page.getByRole('button', { name: 'Copy the key' }).click();
      await page.getByText('Copied.').waitFor();
      expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
      const row = page.getByRole('table', { name: 'Your API keys' }).locator('tbody tr', { hasText: 'build server' });
      expect(await row.textContent()).toContain('Active');
      await expectCleanPage(page, problems, 'the keys page with a new secret');

      // The key works, and after a reload the secret is nowhere on the page.
      expect((await fetch(`${service.url}/api/account`, { headers: { 'x-api-key': secret } })).status).toBe(200);
      await page.reload();
      await page.getByRole('heading', { name: 'Your keys' }).waitFor();
      expect(await page.content()).not.toContain(secret.slice(-43));
      await page.screenshot({ path: path.join(shots.folder, 'portal-keys.png'), fullPage: true });

      page.once('dialog', (dialog) => void dialog.accept());
      await page.getByRole('button', { name: 'Revoke the key build server' }).click();
      await page.getByText('The key build server is revoked.').waitFor();
      expect(await page.getByRole('table', { name: 'Your API keys' }).locator('tbody tr', { hasText: 'build server' }).textContent()).toContain('Revoked');
      await expect.poll(async () => (await fetch(`${service.url}/api/account`, { headers: { 'x-api-key': secret } })).status).toBe(401);
      expect(await problems.list()).toEqual([]);
    });

    it('logs out, shows a wrong password as a clear message, and logs in again', async () => {
      await page.getByRole('button', { name: 'Log out' }).click();
      await page.getByText('You are logged out.').waitFor();
      expect((await context.cookies()).find((cookie) => cookie.name === 'access_token')).toBeUndefined();
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill('not the password at all');
      await page.getByRole('button', { name: 'Log in' }).click();
      const status = page.locator('.form-status.error');
      await status.waitFor();
      expect(await status.textContent()).toMatch(/invalid|incorrect|wrong/i);
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
      expect(await problems.list()).toEqual([]);
    });

    it('reads on a phone: no page scrolls sideways at 375 px and each passes the accessibility check', async () => {
      await page.setViewportSize({ width: 375, height: 740 });
      for (const [pathname, heading] of [
        ['/portal', 'Overview'],
        ['/portal/credits', 'Credits'],
        ['/portal/plans', 'Plans'],
        ['/portal/keys', 'API keys'],
        ['/portal/account', 'Account'],
      ] as const) {
        await page.goto(`${service.url}${pathname}`);
        await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
        await page.locator('.loading').waitFor({ state: 'detached' });
        expect(await scrollsSideways(page), `${pathname} scrolls sideways`).toBe(false);
        await expectCleanPage(page, problems, pathname);
        if (pathname === '/portal') await page.screenshot({ path: path.join(shots.folder, 'portal-overview-phone.png'), fullPage: false });
      }
    });

    it('exports the account as a JSON download, then deletes the account with the password (GDPR-1, GDPR-2)', async () => {
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.goto(`${service.url}/portal/account`);
      await page.getByRole('heading', { name: 'Export your data' }).waitFor();
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download my data' }).click()]);
      expect(download.suggestedFilename()).toMatch(/^account-export-acct_[A-Za-z0-9_-]+\.json$/);
      const exported = JSON.parse(readFileSync(await download.path(), 'utf8')) as unknown;
      expect(JSON.stringify(exported)).toContain(email);
      await page.getByText(/^Downloaded account-export-/).waitFor();
      await expectCleanPage(page, problems, 'the account page');

      await page.getByLabel('Your password, to confirm').fill(password);
      page.once('dialog', (dialog) => void dialog.accept());
      await page.getByRole('button', { name: 'Delete my account' }).click();
      await page.getByText('Your account is deleted.', { exact: false }).waitFor();
      expect((await context.cookies()).find((cookie) => cookie.name === 'access_token')).toBeUndefined();
      const login = await fetch(`${service.url}/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email, password }) });
      expect(login.status).toBe(401);
      expect(await problems.list()).toEqual([]);
    });

    // Its own service, whose scheduled jobs run (the one of this file keeps them off): they send the email.
    describe('password reset by email (AUTH-5)', () => {
      let mailService: StartedService;
      let scratch: ScratchDatabase | undefined;
      let resetContext: BrowserContext;
      let resetPage: Page;
      let resetProblems: PageProblems;
      const forgetful = `forgetful-${Math.random().toString(36).slice(2, 8)}@example.com`;
      const newPassword = 'a brand new and sturdy passphrase';

      beforeAll(async () => {
        scratch = postgresSetup ? await createScratchDatabase() : undefined;
        // Its port up front: the link in the email is built from it.
        mailService = await startService({ PORT: String(await freePort()), JOBS_ENABLED: 'true', NOTIFICATION_DELIVERY_INTERVAL_SECONDS: '1', ...(scratch ? { DATABASE_URL: scratch.url } : {}) });
        const signup = await fetch(`${mailService.url}/auth/signup`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ email: forgetful, password, name: 'Forgetful Co' }),
        });
        expect(signup.status).toBe(201);
        resetContext = await shared().browser.newContext({ viewport: { width: 1280, height: 900 } });
        resetPage = await resetContext.newPage();
        resetProblems = await watchPage(resetPage);
      }, 120_000);

      afterAll(async () => {
        await resetContext?.close();
        await mailService?.stop();
        await scratch?.drop();
      });

      it('mails a link to the outbox, which sets a new password that logs in; the used link is refused with a clear message', async () => {
        await resetPage.goto(`${mailService.url}/portal/login`);
        await resetPage.getByRole('link', { name: 'Forgot your password?' }).click();
        await resetPage.getByRole('heading', { name: 'Reset your password', level: 1 }).waitFor();
        await expectCleanPage(resetPage, resetProblems, 'the password reset page');
        await resetPage.getByLabel('Email').fill(forgetful);
        await resetPage.getByRole('button', { name: 'Send the link' }).click();
        await resetPage.getByText('If an account has this email, a link is on its way.').waitFor();

        const outbox = path.join(mailService.dataDir, 'outbox');
        const resets = () => readOutbox(outbox).filter((message) => message.kind === 'password_reset');
        await expect.poll(() => resets().length, { timeout: 30_000 }).toBe(1);
        const mail = resets()[0]!;
        expect(mail.to).toBe(forgetful);
        const link = /(https?:\/\/\S+\/reset\?token=[A-Za-z0-9_-]+)/.exec(mail.text)?.[1] ?? '';
        expect(new URL(link).origin, 'the link leads to this service').toBe(new URL(mailService.url).origin);

        await resetPage.goto(link);
        await resetPage.getByRole('heading', { name: 'Choose a new password', level: 1 }).waitFor();
        await expectCleanPage(resetPage, resetProblems, 'the new password page');
        // Too short: said once, beside the field.
        await resetPage.getByLabel('New password').fill('short');
        await resetPage.getByRole('button', { name: 'Set the new password' }).click();
        await resetPage.locator('.field-error').waitFor();
        expect(await resetPage.locator('.field-error').allTextContents()).toEqual(['Must be at least 12 characters']);
        expect(await resetPage.locator('.form-status.error').textContent()).toBe('Correct the marked field: New password.');
        await expectCleanPage(resetPage, resetProblems, 'the new password page with a refused password');
        await resetPage.getByLabel('New password').fill(newPassword);
        await resetPage.getByRole('button', { name: 'Set the new password' }).click();
        await resetPage.getByText('Your password is changed. Log in with the new one.').waitFor();
        expect(new URL(resetPage.url()).pathname).toBe('/portal/login');

        // The old password no longer works; the new one does, in the page.
        const old = await fetch(`${mailService.url}/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email: forgetful, password }) });
        expect(old.status).toBe(401);
        await resetPage.getByLabel('Email').fill(forgetful);
        await resetPage.getByLabel('Password').fill(newPassword);
        await resetPage.getByRole('button', { name: 'Log in' }).click();
        await resetPage.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
        await resetPage.locator('.loading').waitFor({ state: 'detached' });
        await resetPage.getByRole('button', { name: 'Log out' }).click();
        await resetPage.getByText('You are logged out.').waitFor();

        // The link once more: a clear message and a way to ask for a new one; the password stays.
        await resetPage.goto(link);
        await resetPage.getByLabel('New password').fill('yet another sturdy passphrase');
        await resetPage.getByRole('button', { name: 'Set the new password' }).click();
        await resetPage.locator('.form-status.error').waitFor();
        expect(await resetPage.locator('.form-status.error').textContent()).toBe('This link is invalid, expired or already used. Ask for a new one below.');
        await expectCleanPage(resetPage, resetProblems, 'the used link');
        const still = await fetch(`${mailService.url}/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email: forgetful, password: newPassword }) });
        expect(still.status).toBe(200);
        await resetPage.getByRole('link', { name: 'Ask for a new link' }).click();
        await resetPage.getByRole('heading', { name: 'Reset your password', level: 1 }).waitFor();
        expect(await resetProblems.list()).toEqual([]);
      });
    });

    // Last, because it leaves problems behind on purpose: the checks above can fail.
    it('catches what it must: an unlabelled field fails the accessibility check, an inline script is blocked and reported', async () => {
      await page.evaluate(() => document.querySelector('main')?.append(Object.assign(document.createElement('input'), { id: 'control-input' })));
      expect((await seriousAccessibilityProblems(page)).join('\n')).toMatch(/label/);
      await page.evaluate(() => document.getElementById('control-input')?.remove());
      await page.evaluate(() => document.body.append(Object.assign(document.createElement('script'), { textContent: 'window.inlineRan = true' })));
      await expect.poll(async () => (await problems.list()).join('\n')).toMatch(/CSP violation: script-src/);
      expect(await page.evaluate(() => (window as unknown as { inlineRan?: boolean }).inlineRan)).toBeUndefined();
    });
  });
}
