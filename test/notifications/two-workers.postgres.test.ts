import { afterAll, beforeAll, expect, it } from 'vitest';
import { verifyWebhook } from '../../sdk/src/webhooks.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { createEndpoint, NOTIFY_LIMITS, WebhookReceiver } from './helpers.js';

/**
 * OPS-5 for notifications, the way production runs: two app instances, each with its own
 * pool, on one real PostgreSQL database, delivering at the same time.
 */
describeWithPostgres('two delivery workers on one PostgreSQL', () => {
  let scratch: ScratchDatabase;
  let first: TestApp;
  let second: TestApp;
  const clock = new ManualClock('2026-07-05T12:00:00Z');
  const hooks = new WebhookReceiver([200]);

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    const env = { DATABASE_URL: scratch.url, DATABASE_POOL_MAX: '6', RATE_LIMITS: NOTIFY_LIMITS, NOTIFICATION_BATCH_SIZE: '7' };
    first = await createTestApp({ env, clock });
    second = await createTestApp({ env, clock });
    await hooks.start();
  });

  afterAll(async () => {
    await first?.close();
    await second?.close();
    await hooks.close();
    await scratch?.drop();
  });

  it('deliver each delivery exactly once, with valid signatures, when both run at once', async () => {
    const { secret } = await createEndpoint(first, { url: hooks.url });
    const ids: string[] = [];
    for (let index = 0; index < 60; index++) {
      ids.push(await asSystem(second.deps.database, (tx) => second.deps.notifier.emit(tx, { type: 'payment.succeeded', accountId: null, data: { index } })));
    }
    const results = await Promise.all([
      first.deps.notifications.deliverDue(),
      second.deps.notifications.deliverDue(),
      first.deps.notifications.deliverDue(),
      second.deps.notifications.deliverDue(),
    ]);
    // Small batches, so the runs interleave: together they delivered each one once.
    expect(results.reduce((sum, result) => sum + result.delivered, 0)).toBe(60);
    expect(results.every((result) => result.retrying === 0 && result.dead === 0)).toBe(true);
    const received = hooks.received.map((request) => String(request.headers['webhook-id']));
    expect(received).toHaveLength(60);
    expect(new Set(received)).toEqual(new Set(ids));
    for (const request of hooks.received) expect(await verifyWebhook(secret, request.headers, request.body, { now: clock.now() })).toBe(true);

    const { rows } = await asSystem(first.deps.database, (tx) =>
      tx.query<{ status: string; attempts: number; n: number }>('SELECT status, attempts, count(*)::int AS n FROM notification_deliveries GROUP BY status, attempts'),
    );
    expect(rows).toEqual([{ status: 'delivered', attempts: 1, n: 60 }]);
  });

  it('run the scheduled delivery job on one instance per interval', async () => {
    clock.advance(60_000);
    await asSystem(first.deps.database, (tx) => first.deps.notifier.emit(tx, { type: 'payment.failed', accountId: null, data: { amount: 100, currency: 'usd' } }));
    const before = hooks.received.length;
    const [a, b] = await Promise.all([first.deps.scheduler.tick(), second.deps.scheduler.tick()]);
    expect([a['notifications.delivery'], b['notifications.delivery']].sort()).toEqual(['claimed-elsewhere', 'ran']);
    expect(hooks.received.length - before).toBe(1);
  });
});
