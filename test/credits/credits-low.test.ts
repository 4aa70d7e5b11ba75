import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreditsLowWatcher } from '../../src/modules/credits/credits-low.js';
import { NotificationQueue } from '../../src/modules/notifications/notifier.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import type { Database } from '../../src/platform/database/database.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createScratchDatabase, describeWithPostgres, openPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { NOTIFY_LIMITS, WebhookReceiver } from '../notifications/helpers.js';
import { newAccount } from './helpers.js';

async function lowNotifications(database: Database, accountId: string): Promise<Array<{ balance: number; threshold: number }>> {
  const { rows } = await asSystem(database, (tx) =>
    tx.query<{ data: { balance: number; threshold: number } }>(`SELECT data FROM notifications WHERE account_id = $1 AND type = 'credits.low' ORDER BY created_at, id`, [accountId]),
  );
  return rows.map((row) => row.data);
}

describe('credits.low (OUT-1)', () => {
  let testApp: TestApp;
  let receiver: WebhookReceiver;
  let admin: Record<string, string>;
  let accountId: string;
  let key: Record<string, string>;
  const clock = new ManualClock(new Date('2026-12-02T12:00:00Z'));

  beforeAll(async () => {
    receiver = await new WebhookReceiver([200]).start();
    testApp = await createTestApp({ clock, env: { CREDITS_LOW_THRESHOLD: '50', RATE_LIMITS: NOTIFY_LIMITS } });
    admin = { authorization: `Bearer ${testApp.config.secrets.adminApiToken ?? ''}` };
    const endpoint = await testApp.app.inject({ method: 'POST', url: '/api/admin/webhook-endpoints', headers: admin, payload: { url: receiver.url, eventTypes: ['credits.low'] } });
    expect(endpoint.statusCode, endpoint.body).toBe(201);
    const created = await testApp.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin, payload: { name: 'Low Co' } });
    accountId = created.json().account.id;
    const issued = await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${accountId}/keys`, headers: admin, payload: { label: 'low' } });
    key = { 'x-api-key': issued.json().secret };
  });
  afterAll(async () => {
    await testApp?.close();
    await receiver?.close();
  });

  const balance = async () => (await testApp.app.inject({ method: 'GET', url: '/api/credits', headers: key })).json().balance as number;
  const reserve = async (amount: number, id: string) => {
    const answer = await testApp.app.inject({
      method: 'POST',
      url: '/api/credits/reservations',
      headers: key,
      payload: { jobId: id, jobType: 'custom_job', amount, idempotencyKey: id },
    });
    expect(answer.statusCode, answer.body).toBe(201);
    return answer.json().reservation.id as string;
  };
  const settled = async () => {
    await testApp.deps.creditsLow.flush();
    clock.advance(1_000);
    await testApp.deps.notifications.deliverDue();
  };

  it('notifies once when the balance first falls below the threshold, re-arms when it is back above, and notifies again', async () => {
    const granted = await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${accountId}/credits`, headers: admin, payload: { amount: 100, source: 'admin' } });
    expect(granted.statusCode).toBe(201);
    const start = await balance();
    expect(start).toBeGreaterThanOrEqual(100);

    // Still at or above 50: nothing.
    const first = await reserve(start - 60, 'low-1');
    await settled();
    expect(await lowNotifications(testApp.deps.database, accountId)).toHaveLength(0);

    // 60 -> 40: below the threshold, one notification, delivered to the endpoint.
    const second = await reserve(20, 'low-2');
    await settled();
    expect(await lowNotifications(testApp.deps.database, accountId)).toEqual([{ balance: 40, threshold: 50 }]);
    expect(receiver.received).toHaveLength(1);
    const body = JSON.parse(receiver.received[0]?.body ?? '{}');
    expect(body).toMatchObject({ type: 'credits.low', data: { accountId, balance: 40, threshold: 50 } });

    // Lower still: no second notification for the same crossing.
    await reserve(5, 'low-3');
    await settled();
    expect(await lowNotifications(testApp.deps.database, accountId)).toHaveLength(1);

    // Back above (released holds): re-armed, nothing sent.
    for (const id of [first, second]) {
      expect((await testApp.app.inject({ method: 'POST', url: `/api/credits/reservations/${id}/release`, headers: key })).statusCode).toBe(200);
    }
    await settled();
    expect(await balance()).toBe(start - 5);
    expect(await lowNotifications(testApp.deps.database, accountId)).toHaveLength(1);

    // Below again: a second notification.
    await reserve(start - 5 - 10, 'low-4');
    await settled();
    expect((await lowNotifications(testApp.deps.database, accountId)).map((entry) => entry.balance)).toEqual([40, 10]);
    expect(receiver.received).toHaveLength(2);
  });
});

describe('credits.low is off with a threshold of 0 (the default)', () => {
  let testApp: TestApp;
  beforeAll(async () => {
    testApp = await createTestApp();
  });
  afterAll(async () => testApp?.close());

  it('checks nothing and queues nothing', async () => {
    const accountId = await newAccount(testApp.deps.database, testApp.deps.clock);
    expect(testApp.config.credits.lowThresholdCredits).toBe(0);
    expect(await testApp.deps.creditsLow.check(accountId)).toBe('off');
    expect(await lowNotifications(testApp.deps.database, accountId)).toHaveLength(0);
  });
});

describeWithPostgres('credits.low on PostgreSQL', () => {
  let scratch: ScratchDatabase;
  let databases: Database[] = [];

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    const setup = await createTestApp({ env: { DATABASE_URL: scratch.url } });
    await setup.close();
  });
  afterAll(async () => {
    await Promise.all(databases.map((database) => database.close()));
    await scratch?.drop();
  });

  it('two instances checking one account at once queue one notification per crossing', async () => {
    const clock = new ManualClock(new Date('2026-12-02T12:00:00Z'));
    databases = [openPostgres(scratch.url), openPostgres(scratch.url)];
    const [one, two] = databases as [Database, Database];
    const accountId = await newAccount(one, clock);
    await asSystem(one, (tx) =>
      tx.query(
        `INSERT INTO credit_grants (id, account_id, source, amount, remaining, created_at) VALUES ('grant_lowpg', $1, 'admin', 100, 30, $2)`,
        [accountId, clock.now()],
      ),
    );
    const watchers = databases.map(
      (database) => new CreditsLowWatcher({ database, clock, notifier: new NotificationQueue(clock), logger: silentLogger, thresholdCredits: 50 }),
    );
    const outcomes = await Promise.all(Array.from({ length: 20 }, (_, index) => (watchers[index % 2] as CreditsLowWatcher).check(accountId)));
    expect(outcomes.filter((outcome) => outcome === 'crossed')).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome === 'still-low')).toHaveLength(19);
    expect(await lowNotifications(two, accountId)).toEqual([{ balance: 30, threshold: 50 }]);
  });
});

const silentLogger = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
  child: () => silentLogger,
} as unknown as import('pino').Logger;
