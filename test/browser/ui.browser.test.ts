import type { Browser } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { dashboardSuite } from './dashboard-suite.js';
import { describeWithBrowser, launchBrowser, startService, type StartedService } from './helpers.js';
import { portalSuite } from './portal-suite.js';

/**
 * The portal and the dashboard in a real browser (UI-1): one started service (with the
 * in-process Stripe sandbox) and one chromium for both suites, each in its own browser
 * context (its own cookies), so the file pays for one start-up.
 */
describeWithBrowser('the web pages in chromium (UI-1)', () => {
  let service: StartedService;
  let browser: Browser;

  beforeAll(async () => {
    [service, browser] = await Promise.all([startService(), launchBrowser()]);
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
  });

  portalSuite(() => ({ service, browser }));
  dashboardSuite(() => ({ service, browser }));
});
