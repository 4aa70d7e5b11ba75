import type { Browser } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { createScratchDatabase, postgresSetup, type ScratchDatabase } from '../helpers/postgres.js';
import { billingDashboardSuite } from './billing-dashboard-suite.js';
import { billingPortalSuite } from './billing-portal-suite.js';
import { dashboardSuite } from './dashboard-suite.js';
import { addCreditPack, BROWSER_PACK, describeWithBrowser, freePort, launchBrowser, startService, type StartedService } from './helpers.js';
import { portalSuite } from './portal-suite.js';

/**
 * The portal and the dashboard in a real browser (UI-1): one started service (with the
 * in-process Stripe sandbox) and one chromium for every suite, each in its own browser
 * context (its own cookies), so the file pays for one start-up.
 *
 * With PostgreSQL (always in CI) the service runs on a scratch database, so that the test
 * can put a credit pack in the catalogue (no route sells one into it): the billing suites
 * need it. Without PostgreSQL they are skipped and the service runs on its embedded one.
 * The port is chosen up front, because Stripe's success URL is built from it.
 */
describeWithBrowser('the web pages in chromium (UI-1)', () => {
  let service: StartedService;
  let browser: Browser;
  let scratch: ScratchDatabase | undefined;

  beforeAll(async () => {
    scratch = postgresSetup ? await createScratchDatabase() : undefined;
    const env: Record<string, string> = {
      PORT: String(await freePort()),
      // The dead-letter test makes an event fail every attempt: two attempts (the sandbox
      // retries after 1 s, not after minutes), each of 1 + 2 requests by the Stripe client.
      WEBHOOK_MAX_ATTEMPTS: '2',
      STRIPE_MAX_NETWORK_RETRIES: '2',
      ...(scratch ? { DATABASE_URL: scratch.url } : {}),
    };
    [service, browser] = await Promise.all([startService(env), launchBrowser()]);
    if (scratch) await addCreditPack(scratch.url, BROWSER_PACK);
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    await scratch?.drop();
  });

  portalSuite(() => ({ service, browser }));
  dashboardSuite(() => ({ service, browser }));
  billingPortalSuite(() => ({ service, browser }), postgresSetup !== null);
  billingDashboardSuite(() => ({ service, browser }), postgresSetup !== null);
});
