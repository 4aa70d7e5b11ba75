/// <reference lib="dom" />
// Callbacks passed to page.evaluate run in the browser: they see the DOM types.
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectCleanPage,
  screenshotFolder,
  scrollsSideways,
  watchPage,
  type PageProblems,
  type StartedService,
} from './helpers.js';

/** Run by ui.browser.test.ts with its one service and one browser. */
export function dashboardSuite(shared: () => { service: StartedService; browser: Browser }): void {
  describe('the operator dashboard in a browser (UI-1)', () => {
    let service: StartedService;
    let browser: Browser;
    let context: BrowserContext;
    let page: Page;
    let problems: PageProblems;
    let accountId: string;
    const shots = screenshotFolder();
    const email = `customer-${Math.random().toString(36).slice(2, 8)}@example.com`;

    beforeAll(async () => {
      ({ service, browser } = shared());
      // A customer to look after, signed up over HTTP.
      const signup = await fetch(`${service.url}/auth/signup`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email, password: 'a long and sturdy passphrase', name: 'Customer Co' }),
      });
      expect(signup.status).toBe(201);
      accountId = ((await signup.json()) as { account: { id: string } }).account.id;
      context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      page = await context.newPage();
      problems = await watchPage(page);
    }, 90_000);

    afterAll(async () => {
      await context?.close();
      shots.cleanup();
    });

    /** The health page's summary, as numbers. */
    async function healthCounters() {
      const fact = async (term: string) => (await page.locator(`dl.facts dt:text-is("${term}") + dd`).textContent()) ?? '';
      const requests = /^(\d+) \((.*)\)$/.exec((await fact('Requests answered')).replace(/,(?=\d{3})/g, ''));
      const authentications = /^(\d+) ok, (\d+) failed$/.exec((await fact('Authentications')).replace(/,(?=\d{3})/g, ''));
      const grantRow = page.getByRole('table', { name: 'Credit operations' }).locator('tbody tr', { has: page.locator('td:text-is("Grant")') });
      expect(requests, 'requests answered').not.toBeNull();
      expect(authentications, 'authentications').not.toBeNull();
      return {
        requests: Number(requests![1]),
        clientErrors: Number(/4xx: (\d+)/.exec(requests![2]!)?.[1] ?? 0),
        okAuthentications: Number(authentications![1]),
        failedAuthentications: Number(authentications![2]),
        rateLimitRefusals: Number((await fact('Rate-limit refusals')).replace(/,/g, '')),
        grants: Number(((await grantRow.locator('td').nth(1).textContent()) ?? '').replace(/,/g, '')),
      };
    }

    it('signs in with the admin token, which then appears nowhere: not in the page, not in storage, not in a readable cookie', async () => {
      await page.goto(`${service.url}/admin`);
      await page.getByRole('heading', { name: 'Operator sign-in', level: 1 }).waitFor();
      await expectCleanPage(page, problems, 'the sign-in page');
      // A wrong token is a clear message, not a blank page.
      await page.getByLabel('Admin token').fill('0'.repeat(64));
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByText('That is not the admin token').waitFor();

      await page.getByLabel('Admin token').fill(service.adminToken);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Accounts', level: 1 }).waitFor();

      expect(await page.content()).not.toContain(service.adminToken);
      const storage = await page.evaluate(() => JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie }));
      expect(storage).not.toContain(service.adminToken);
      expect(await page.evaluate(() => document.cookie)).not.toContain('admin_session');
      const cookies = await context.cookies();
      for (const cookie of cookies) expect(cookie.value).not.toContain(service.adminToken);
      expect(cookies.find((cookie) => cookie.name === 'admin_session')).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/api/admin' });
      for (const cookie of cookies.filter((candidate) => !candidate.httpOnly)) expect(cookie.name).not.toMatch(/admin/);
      // Not in the server's log either.
      expect(service.server.output()).not.toContain(service.adminToken);
    });

    it("finds the account, grants credits and sees the ledger and the audit entry; issues and revokes a key; suspends and reactivates", async () => {
      await page.getByLabel('Search accounts').fill(email.slice(0, 12));
      await page.getByRole('button', { name: 'Search' }).click();
      await expect.poll(() => new URL(page.url()).searchParams.get('q')).toBe(email.slice(0, 12));
      const row = page.getByRole('table', { name: /Accounts matching/ }).locator('tbody tr');
      await row.first().waitFor();
      expect(await row.count()).toBe(1);
      expect(await row.textContent()).toContain(email);
      await expectCleanPage(page, problems, 'the accounts list');
      await row.getByRole('link', { name: 'Customer Co' }).click();
      await page.getByRole('heading', { name: 'Customer Co' }).waitFor();
      expect(new URL(page.url()).pathname).toBe(`/admin/accounts/${accountId}`);
      expect(await page.getByTestId('admin-balance').textContent()).toBe('10 credits');

      await page.getByLabel('Credits to grant').fill('40');
      await page.getByLabel('Source').selectOption('promotion');
      await page.getByRole('button', { name: 'Grant credits' }).click();
      await page.getByText('Granted 40 credits.').waitFor();
      expect(await page.getByTestId('admin-balance').textContent()).toBe('50 credits');
      expect(await page.getByRole('table', { name: 'Credit ledger' }).locator('tbody tr').first().textContent()).toContain('+40');
      const audit = page.getByRole('table', { name: 'Audit entries about this account' });
      const grantEntry = audit.locator('tbody tr', { hasText: 'credits.granted' }).first();
      expect(await grantEntry.textContent()).toMatch(/admin adms_/);
      // A fraction is refused by the API, said once: beside the field (which gets the
      // focus), and the form's alert names the field; nothing is granted.
      await page.getByLabel('Credits to grant').fill('2.5');
      await page.getByRole('button', { name: 'Grant credits' }).click();
      const grantForm = page.locator('form', { has: page.getByRole('button', { name: 'Grant credits' }) });
      await grantForm.locator('.form-status.error').waitFor();
      expect(await grantForm.locator('.form-status.error').textContent()).toBe('Correct the marked field: Credits to grant.');
      expect(await grantForm.locator('.field-error').allTextContents()).toEqual(['Must be integer']);
      expect((await grantForm.textContent())?.match(/integer/g)).toHaveLength(1);
      const grantInput = page.getByLabel('Credits to grant');
      expect(await grantInput.getAttribute('aria-invalid')).toBe('true');
      expect(await grantInput.evaluate((input) => [input === document.activeElement, document.getElementById(input.getAttribute('aria-describedby')?.split(' ').at(-1) ?? '')?.textContent])).toEqual([
        true,
        'Must be integer',
      ]);
      expect(await page.getByTestId('admin-balance').textContent()).toBe('50 credits');

      await expectCleanPage(page, problems, 'the account page');
      // Before a key is issued, so no secret is ever in a committed picture.
      await page.screenshot({ path: path.join(shots.folder, 'dashboard-account.png'), fullPage: true });
      await page.getByLabel('Label').fill('support');
      await page.getByRole('button', { name: 'Issue a key' }).click();
      const secret = (await page.getByTestId('admin-new-secret').textContent()) ?? '';
      expect(secret).toMatch(new RegExp(`^cust_${accountId}_`));
      expect((await fetch(`${service.url}/api/account`, { headers: { 'x-api-key': secret } })).status).toBe(200);
      page.once('dialog', (dialog) => void dialog.accept());
      await page.getByRole('button', { name: 'Revoke the key support' }).click();
      await page.getByText('The key support is revoked.').waitFor();
      await expect.poll(async () => (await fetch(`${service.url}/api/account`, { headers: { 'x-api-key': secret } })).status).toBe(401);

      await page.getByLabel('Status').selectOption('suspended');
      await page.getByRole('button', { name: 'Save plan and status' }).click();
      await expect.poll(() => page.getByTestId('account-status').textContent()).toBe('Suspended');
      await page.getByText('Saved.').waitFor();
      expect(await audit.locator('tbody tr', { hasText: 'account.updated' }).count()).toBe(1);
      await page.getByLabel('Status').selectOption('active');
      await page.getByRole('button', { name: 'Save plan and status' }).click();
      await expect.poll(() => page.getByTestId('account-status').textContent()).toBe('Active');

      // The plan: saved, audited, and what the customer's own API answers.
      await page.getByLabel('Plan', { exact: true }).selectOption('PRO');
      await page.getByRole('button', { name: 'Save plan and status' }).click();
      await expect.poll(() => page.getByTestId('account-plan').textContent()).toBe('PRO');
      await page.getByText('Saved.').waitFor();
      expect(await audit.locator('tbody tr', { hasText: 'account.updated' }).first().textContent()).toContain('"plan":{"to":"PRO","from":"FREE"}');
      await page.reload();
      await page.getByRole('heading', { name: 'Customer Co' }).waitFor();
      expect(await page.getByTestId('account-plan').textContent()).toBe('PRO');
      expect(await page.getByLabel('Plan', { exact: true }).inputValue()).toBe('PRO');
      const customer = await browser.newContext();
      try {
        expect((await customer.request.post(`${service.url}/auth/login`, { data: { email, password: 'a long and sturdy passphrase' } })).status()).toBe(200);
        const own = (await (await customer.request.get(`${service.url}/api/account`)).json()) as { account: { plan: string } };
        expect(own.account.plan).toBe('PRO');
      } finally {
        await customer.close();
      }
      expect(await problems.list()).toEqual([]);
    });

    it('pages through the accounts: 25 a page, "Next page" shows the rest once, "First page" goes back', async () => {
      const tag = `Pager ${Math.random().toString(36).slice(2, 8)}`;
      const names = Array.from({ length: 26 }, (_, index) => `${tag} ${String(index + 1).padStart(2, '0')}`);
      // Made through the API on the page's own session (its CSRF token from GET /api/admin/session).
      const { csrfToken } = (await (await page.request.get(`${service.url}/api/admin/session`)).json()) as { csrfToken: string };
      for (const name of names) {
        const created = await page.request.post(`${service.url}/api/admin/accounts`, { data: { name, plan: 'FREE' }, headers: { 'x-csrf-token': csrfToken } });
        expect(created.status(), await created.text()).toBe(201);
      }
      await page.getByRole('link', { name: 'Accounts', exact: true }).click();
      await page.getByLabel('Search accounts').fill(tag);
      await page.getByRole('button', { name: 'Search' }).click();
      const rows = page.getByRole('table', { name: `Accounts matching "${tag}"` }).locator('tbody tr');
      await expect.poll(() => rows.count()).toBe(25);
      const first = await rows.locator('td:first-child').allTextContents();
      expect(await page.getByRole('link', { name: 'First page' }).count()).toBe(0);

      await page.getByRole('link', { name: 'Next page' }).click();
      await expect.poll(() => new URL(page.url()).searchParams.get('cursor')).toBeTruthy();
      await expect.poll(() => rows.count()).toBe(1);
      const second = await rows.locator('td:first-child').allTextContents();
      expect([...first, ...second].sort()).toEqual(names);
      expect(await page.getByRole('link', { name: 'Next page' }).count()).toBe(0);
      await expectCleanPage(page, problems, 'the second page of accounts');

      await page.getByRole('link', { name: 'First page' }).click();
      await expect.poll(() => rows.count()).toBe(25);
      expect(new URL(page.url()).searchParams.get('cursor')).toBeNull();
      expect(await rows.locator('td:first-child').allTextContents()).toEqual(first);
    });

    it('verifies the audit chain, shows health and counters, keeps every page readable on a phone, and signs out', async () => {
      await page.getByRole('link', { name: 'Audit log' }).click();
      await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
      await page.getByRole('button', { name: 'Verify the chain' }).click();
      await expect.poll(() => page.getByTestId('verify-result').textContent()).toMatch(/^The chain is intact: \d+ entries checked\.$/);
      await expectCleanPage(page, problems, 'the audit log');

      await page.getByRole('link', { name: 'Health' }).click();
      await page.getByTestId('ready-status').waitFor();
      expect(await page.getByTestId('ready-status').textContent()).toBe('Ready: every check passes.');
      await expectCleanPage(page, problems, 'the health page');

      // The counters follow what happens: one failed authentication (an unknown key) and
      // one grant (on the page's session) between two readings, nothing else of either kind.
      const before = await healthCounters();
      expect((await fetch(`${service.url}/api/account`, { headers: { 'x-api-key': `cust_${accountId}_${'x'.repeat(43)}` } })).status).toBe(401);
      const { csrfToken } = (await (await page.request.get(`${service.url}/api/admin/session`)).json()) as { csrfToken: string };
      const granted = await page.request.post(`${service.url}/api/admin/accounts/${accountId}/credits`, { data: { amount: 5, source: 'admin' }, headers: { 'x-csrf-token': csrfToken } });
      expect(granted.status(), await granted.text()).toBe(201);
      await page.reload();
      await page.getByTestId('ready-status').waitFor();
      const after = await healthCounters();
      expect(after.failedAuthentications).toBe(before.failedAuthentications + 1);
      expect(after.grants).toBe(before.grants + 1);
      expect(after.okAuthentications).toBeGreaterThan(before.okAuthentications);
      expect(after.requests).toBeGreaterThan(before.requests);
      expect(after.clientErrors).toBeGreaterThanOrEqual(before.clientErrors + 1);
      expect(after.rateLimitRefusals).toBe(before.rateLimitRefusals);

      // The reconciliation and webhook pages open from the navigation (their actions: billing-dashboard-suite.ts).
      for (const [pathname, heading] of [
        ['/admin/reconciliation', 'Reconciliation'],
        ['/admin/webhooks', 'Webhook dead letters'],
      ] as const) {
        await page.getByRole('link', { name: heading === 'Webhook dead letters' ? 'Webhooks' : heading, exact: true }).click();
        await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
        await page.locator('.loading').waitFor({ state: 'detached' });
        expect(new URL(page.url()).pathname).toBe(pathname);
        await expectCleanPage(page, problems, pathname);
      }

      await page.setViewportSize({ width: 375, height: 740 });
      for (const pathname of ['/admin', `/admin/accounts/${accountId}`, '/admin/audit', '/admin/health']) {
        await page.goto(`${service.url}${pathname}`);
        await page.locator('main h1').waitFor();
        await page.locator('.loading').waitFor({ state: 'detached' });
        expect(await scrollsSideways(page), `${pathname} scrolls sideways`).toBe(false);
      }
      await page.setViewportSize({ width: 1280, height: 900 });

      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByText('You are signed out.').waitFor();
      expect((await context.cookies()).find((cookie) => cookie.name === 'admin_session')).toBeUndefined();
      expect((await page.request.get(`${service.url}/api/admin/session`)).status()).toBe(401);
      // Back to a dashboard page: the sign-in form, not the data.
      await page.goto(`${service.url}/admin/accounts/${accountId}`);
      await page.getByRole('heading', { name: 'Operator sign-in', level: 1 }).waitFor();
      expect(await problems.list()).toEqual([]);
    });
  });
}
