import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPastDueGrace } from '../../src/modules/billing/past-due.job.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import { newId } from '../../src/platform/ids.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../webhooks/helpers.js';
import { accountRow } from './lifecycle-helpers.js';

/**
 * PAY-6's scheduled half: when no webhook arrives after a past_due subscription's grace
 * period, the job moves the account to FREE; within the grace it keeps the plan.
 */

const DAY_MS = 86_400_000;
let testApp: TestApp;

beforeAll(async () => {
  testApp = await createTestApp({ env: { PAST_DUE_GRACE_DAYS: '7' } });
});
afterAll(async () => {
  await testApp?.close();
});

async function pastDueAccount(pastDueSince: Date): Promise<string> {
  const accountId = newId('account');
  const subscriptionId = `sub_job${newId('event').slice(4).replace(/[^A-Za-z0-9]/g, '')}`;
  await asSystem(testApp.deps.database, async (tx) => {
    await tx.query(`INSERT INTO accounts (id, plan, status, created_at, updated_at) VALUES ($1, 'PRO', 'active', now(), now())`, [accountId]);
    await tx.query(
      `INSERT INTO subscriptions (id, account_id, stripe_customer_id, status, plan_id, stripe_created_at, synced_at, created_at, updated_at, past_due_since)
       VALUES ($1, $2, 'cus_job', 'past_due', 'PRO', now(), now(), now(), now(), $3)`,
      [subscriptionId, accountId, pastDueSince],
    );
  });
  return accountId;
}

describe('the past_due grace job (PAY-6)', () => {
  it('is registered with the scheduler', () => {
    expect(testApp.deps.scheduler.registeredJobs).toContain('billing.past_due_grace');
  });

  it('moves an account whose grace is over to FREE (audited), keeps one still in its grace, and is idempotent', async () => {
    const clock = new ManualClock('2027-03-10T12:00:00Z');
    const over = await pastDueAccount(new Date(clock.now().getTime() - 8 * DAY_MS));
    const within = await pastDueAccount(new Date(clock.now().getTime() - 3 * DAY_MS));
    const first = await applyPastDueGrace(testApp.deps.database, clock, 7);
    expect(first.downgraded).toBeGreaterThanOrEqual(1);
    expect(await accountRow(testApp.deps.database, over)).toMatchObject({ plan: 'FREE', status: 'active' });
    expect(await accountRow(testApp.deps.database, within)).toMatchObject({ plan: 'PRO' });
    const audited = (await auditEvents(testApp.deps.database, 'account.updated')).filter((entry) => entry.account_id === over);
    expect(audited.map((entry) => entry.metadata)).toEqual([expect.objectContaining({ reason: 'past_due_grace_ended', changes: { plan: { from: 'PRO', to: 'FREE' } } })]);

    expect((await applyPastDueGrace(testApp.deps.database, clock, 7)).downgraded).toBe(0);
    // Five days later the second one's grace is over too.
    clock.advance(5 * DAY_MS);
    await applyPastDueGrace(testApp.deps.database, clock, 7);
    expect(await accountRow(testApp.deps.database, within)).toMatchObject({ plan: 'FREE' });
  });
});
