import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import { startStripeSandbox, type StripeSandbox, type StripeSandboxOptions } from '../../src/modules/stripe/sandbox/sandbox-server.js';
import { asSystem } from '../../src/platform/database/access.js';
import type { Database } from '../../src/platform/database/database.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { readOutbox, type OutboxMessage } from '../helpers/outbox.js';
import { bearer, GENEROUS_LIMITS, signUp, type Person } from '../privacy/helpers.js';
import { listen, testWebhookSecret } from '../webhooks/helpers.js';

export { bearer, type Person } from '../privacy/helpers.js';

export const CARD_OK = '4242 4242 4242 4242';
/** Can be saved (a trial starts), every charge fails. */
export const CARD_FAILS = '4000 0000 0000 0341';
export const DAY = 86_400;

/** A parsed JSON answer, read loosely by the assertions (they check the shapes). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are checked by expect(), not by the compiler
export type Json = any;

/** Billing routes are limited per user (checkout 5 a minute); the tests make more calls than that. */
export const BILLING_TEST_LIMITS = JSON.stringify({
  ...GENEROUS_LIMITS,
  'general.ip': { limit: 100_000, windowSeconds: 60 },
  'webhooks.ip': { limit: 100_000, windowSeconds: 60 },
  'checkout.user': { limit: 1_000, windowSeconds: 60 },
  'billing.user': { limit: 1_000, windowSeconds: 60 },
  'cancel.user': { limit: 1_000, windowSeconds: 60 },
  'balance_read.user': { limit: 1_000, windowSeconds: 60 },
});

/**
 * The app on a listening port with its own sandbox, which delivers real signed webhooks to
 * the app's POST /api/webhooks/stripe and whose hosted pages are the app's /sandbox/*.
 */
export interface BillingHarness {
  readonly testApp: TestApp;
  readonly sandbox: StripeSandbox;
  readonly url: string;
  /** Every request the app sent to the Stripe API (through a counting proxy in front of the sandbox). */
  readonly stripeRequests: string[];
  close(): Promise<void>;
}

/** A plain HTTP proxy to the sandbox's API that records each request's method and path. */
async function countingProxy(target: string, seen: string[]): Promise<{ url: string; close(): Promise<void> }> {
  const upstream = new URL(target);
  const server = http.createServer((request, response) => {
    seen.push(`${request.method ?? ''} ${request.url ?? ''}`);
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: request.method, path: request.url, headers: request.headers },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    forward.on('error', () => response.destroy());
    request.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** `sandboxOptions`: the sandbox's own settings (afterFailedRetries, dunningRetryDays...), added to the harness's. */
export async function startBillingHarness(env: Record<string, string> = {}, sandboxOptions: Omit<StripeSandboxOptions, 'webhookSecret'> = {}): Promise<BillingHarness> {
  const secret = testWebhookSecret();
  const sandbox = await startStripeSandbox({ webhookSecret: secret, webhookRetryDelaysMs: [50, 100, 200, 400, 800], ...sandboxOptions });
  const stripeRequests: string[] = [];
  const proxy = await countingProxy(sandbox.url, stripeRequests);
  const testApp = await createTestApp({
    env: {
      STRIPE_API_URL: proxy.url,
      STRIPE_SANDBOX_START: 'false',
      STRIPE_WEBHOOK_SECRET: secret,
      RATE_LIMITS: BILLING_TEST_LIMITS,
      ...env,
    },
  });
  const url = await listen(testApp);
  sandbox.setWebhookUrl(`${url}/api/webhooks/stripe`);
  sandbox.setHostedBaseUrl(url);
  return {
    testApp,
    sandbox,
    url,
    stripeRequests,
    async close() {
      await testApp.close();
      await proxy.close();
      await sandbox.close();
    },
  };
}

let people = 0;
export async function newPerson(harness: Pick<BillingHarness, 'testApp'>, label: string): Promise<Person> {
  people += 1;
  return signUp(harness.testApp.app, { email: `${label}${people}.${Date.now()}@example.com`, name: `Billing ${label}`, ip: `10.9.${people % 250}.${Math.floor(people / 250) + 1}` });
}

/** A JSON request over real HTTP to the listening app. */
export async function call(
  harness: Pick<BillingHarness, 'url'>,
  method: 'GET' | 'POST',
  path: string,
  options: { person?: Person; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Json }> {
  const response = await fetch(`${harness.url}${path}`, {
    method,
    headers: {
      ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(options.person ? bearer(options.person) : {}),
      ...options.headers,
    },
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: text.length > 0 ? JSON.parse(text) : null };
}

/** Waits until the sandbox has delivered every webhook (or given up) and the app processed them. */
export async function settle(harness: Pick<BillingHarness, 'sandbox'>): Promise<void> {
  expect(await harness.sandbox.delivery.settle(20_000)).toBe(true);
}

/** POST /sandbox/clock/advance on the app (the sandbox replays what falls due), then every webhook. */
export async function advance(harness: BillingHarness, seconds: number): Promise<void> {
  const answer = await call(harness, 'POST', '/sandbox/clock/advance', { body: { seconds } });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  await settle(harness);
}

/** Checkout through the route, then pay on the hosted page (the app's /sandbox route), then every webhook. */
export async function subscribe(
  harness: Pick<BillingHarness, 'url' | 'sandbox'>,
  person: Person,
  body: Record<string, unknown>,
  card: string | undefined = CARD_OK,
): Promise<{ sessionId: string; subscriptionId: string; customerId: string; url: string }> {
  const checkout = await call(harness, 'POST', '/api/billing/checkout', { person, body });
  expect(checkout.status, JSON.stringify(checkout.body)).toBe(200);
  const paid = await call(harness, 'POST', `/sandbox/checkout/${checkout.body.sessionId}/pay`, { body: card === undefined ? {} : { card } });
  expect(paid.status, JSON.stringify(paid.body)).toBe(200);
  expect(paid.body.status).toBe('complete');
  await settle(harness);
  return { sessionId: checkout.body.sessionId, subscriptionId: paid.body.subscription, customerId: paid.body.customer, url: checkout.body.url };
}

export async function planOf(harness: BillingHarness, person: Person): Promise<string> {
  const answer = await call(harness, 'GET', '/api/account', { person });
  expect(answer.status).toBe(200);
  return answer.body.account.plan;
}

export async function subscriptionOf(harness: BillingHarness, person: Person): Promise<Json> {
  const answer = await call(harness, 'GET', '/api/billing/subscription', { person });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body.subscription;
}

export interface QueuedNotification {
  type: string;
  data: Record<string, unknown>;
  emails: string[];
}

/** The notifications queued for the account, oldest first, with the templates of their email deliveries. */
export async function notificationsOf(database: Database, accountId: string): Promise<QueuedNotification[]> {
  const { rows } = await asSystem(database, (tx) =>
    tx.query<{ id: string; type: string; data: Record<string, unknown>; templates: string[] | null }>(
      `SELECT n.id, n.type, n.data,
              array_remove(array_agg(d.template ORDER BY d.id), NULL) AS templates
         FROM notifications n LEFT JOIN notification_deliveries d ON d.notification_id = n.id AND d.channel = 'email'
        WHERE n.account_id = $1 GROUP BY n.id, n.type, n.data, n.created_at ORDER BY n.created_at, n.id`,
      [accountId],
    ),
  );
  return rows.map((row) => ({ type: row.type, data: row.data, emails: row.templates ?? [] }));
}

export async function accountRow(database: Database, accountId: string): Promise<{ plan: string; status: string; stripe_customer_id: string | null }> {
  const { rows } = await asSystem(database, (tx) =>
    tx.query<{ plan: string; status: string; stripe_customer_id: string | null }>('SELECT plan, status, stripe_customer_id FROM accounts WHERE id = $1', [accountId]),
  );
  return rows[0] as { plan: string; status: string; stripe_customer_id: string | null };
}

/** Runs the notification worker now and answers the emails of one template sent to the person (the .eml outbox, MAIL-1). */
export async function emailsTo(harness: BillingHarness, person: Person, template: string): Promise<OutboxMessage[]> {
  await harness.testApp.deps.notifications.deliverDue();
  return readOutbox(harness.testApp.config.mail.outboxDir).filter((message) => message.kind === template && message.to.includes(person.email));
}
