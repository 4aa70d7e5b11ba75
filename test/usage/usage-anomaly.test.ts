import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.js';
import { accountWithKey, auditEvents, createUsageTestApp, events, type UsageTestApp } from './helpers.js';

const DAY = 24 * 60 * 60 * 1000;

/** USE-6 / AUD-1: a day far above the account's trailing daily average is audited once. */
describe('usage anomalies', () => {
  let testApp: UsageTestApp;
  const clock = new ManualClock('2026-02-01T09:00:00Z');

  beforeAll(async () => {
    testApp = await createUsageTestApp({ clock });
  });
  afterAll(async () => {
    await testApp?.close();
  });

  const report = (headers: Record<string, string>, prefix: string, count: number) =>
    testApp.app.inject({ method: 'POST', url: '/api/usage', headers, payload: { events: events(count, prefix) } });

  it('records usage.anomaly once when today exceeds 10x the trailing 7-day average', async () => {
    const { accountId, headers } = await accountWithKey(testApp);
    // A week at 20 events a day: average 20, so the line is 200 today.
    for (let day = 0; day < 7; day += 1) {
      clock.set(new Date(Date.parse('2026-02-01T09:00:00Z') + day * DAY));
      expect((await report(headers, `day${day}`, 20)).statusCode).toBe(202);
    }
    clock.set('2026-02-08T01:00:00Z');
    expect((await report(headers, 'today-a', 150)).statusCode).toBe(202);
    expect(await auditEvents(testApp.deps.database, 'usage.anomaly', accountId)).toHaveLength(0);
    // Replays are not new events: they never push the count over.
    expect((await report(headers, 'today-a', 150)).json()).toEqual({ accepted: 0, duplicates: 150 });
    expect(await auditEvents(testApp.deps.database, 'usage.anomaly', accountId)).toHaveLength(0);

    expect((await report(headers, 'today-b', 100)).statusCode).toBe(202); // 250 > 200
    const entries = await auditEvents(testApp.deps.database, 'usage.anomaly', accountId);
    expect(entries).toHaveLength(1);
    expect(entries[0]?.metadata).toMatchObject({ day: '2026-02-08', today: 250, trailingDailyAverage: 20, factor: 12.5, threshold: 10 });

    // Still anomalous later the same day: no second entry.
    clock.set('2026-02-08T23:00:00Z');
    expect((await report(headers, 'today-c', 500)).statusCode).toBe(202);
    expect(await auditEvents(testApp.deps.database, 'usage.anomaly', accountId)).toHaveLength(1);
  });

  it('leaves small volumes alone, even for a brand-new account', async () => {
    const { accountId, headers } = await accountWithKey(testApp, 'Quiet Co');
    clock.set('2026-03-01T10:00:00Z');
    expect((await report(headers, 'first-day', 100)).statusCode).toBe(202);
    expect(await auditEvents(testApp.deps.database, 'usage.anomaly', accountId)).toHaveLength(0);
  });

  it('compares a young account with the days it has been reporting, not a diluted week', async () => {
    const { accountId, headers } = await accountWithKey(testApp, 'Young Co');
    clock.set('2026-04-01T10:00:00Z');
    expect((await report(headers, 'y1', 90)).statusCode).toBe(202);
    clock.set('2026-04-02T10:00:00Z');
    // 400 is 4.4x yesterday's 90 (it would be 31x a 7-day average that counted empty days).
    expect((await report(headers, 'y2', 400)).statusCode).toBe(202);
    expect(await auditEvents(testApp.deps.database, 'usage.anomaly', accountId)).toHaveLength(0);
  });
});
