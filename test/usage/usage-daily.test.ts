import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.js';
import { accountWithKey, createUsageTestApp, events, signedUpUser, type UsageTestApp } from './helpers.js';

const DAY = 24 * 60 * 60 * 1000;

/** GET /api/usage/daily: the portal's 30-day chart (UI-1). */
describe('GET /api/usage/daily', () => {
  const clock = new ManualClock('2026-06-10T08:00:00Z');
  let testApp: UsageTestApp;

  beforeAll(async () => {
    testApp = await createUsageTestApp({ clock });
  });
  afterAll(async () => {
    await testApp?.close();
  });

  it('answers every day of the window, oldest first, with reports, quantities and daily counters of this account only', async () => {
    const { headers } = await accountWithKey(testApp, 'Daily Co');
    const other = await accountWithKey(testApp, 'Other Co');
    clock.set('2026-06-08T23:59:00Z');
    await testApp.app.inject({ method: 'POST', url: '/api/usage', headers, payload: { events: events(3, 'old') } });
    await testApp.app.inject({ method: 'POST', url: '/api/entitlements/check', headers, payload: { feature: 'api_calls_per_day', track: 4 } });
    clock.set('2026-06-10T08:00:00Z');
    await testApp.app.inject({ method: 'POST', url: '/api/usage', headers, payload: { events: events(2, 'today', { quantity: 5 }) } });
    await testApp.app.inject({ method: 'POST', url: '/api/usage', headers: other.headers, payload: { events: events(7, 'foreign') } });
    // 40 days ago: outside a 30-day window.
    clock.set(new Date(Date.parse('2026-06-10T08:00:00Z') - 40 * DAY));
    await testApp.app.inject({ method: 'POST', url: '/api/usage', headers, payload: { events: events(1, 'ancient') } });
    clock.set('2026-06-10T08:00:00Z');

    const response = await testApp.app.inject({ method: 'GET', url: '/api/usage/daily', headers });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    const body = response.json() as { from: string; to: string; days: { day: string; reports: number; quantity: number; counters: Record<string, number> }[] };
    expect(body.from).toBe('2026-05-12');
    expect(body.to).toBe('2026-06-10');
    expect(body.days).toHaveLength(30);
    expect(body.days[0]?.day).toBe('2026-05-12');
    expect(body.days.at(-1)).toEqual({ day: '2026-06-10', reports: 2, quantity: 10, counters: {} });
    // events(3) has quantities 1, 2, 3.
    expect(body.days.find((day) => day.day === '2026-06-08')).toEqual({ day: '2026-06-08', reports: 3, quantity: 6, counters: { api_calls_per_day: 4 } });
    expect(body.days.filter((day) => day.reports > 0)).toHaveLength(2);
  });

  it('takes days from 1 to 90 and refuses anything else with a 400 naming the field', async () => {
    const { headers } = await signedUpUser(testApp, 'daily-person@example.com');
    const one = await testApp.app.inject({ method: 'GET', url: '/api/usage/daily?days=1', headers });
    expect(one.json().days).toHaveLength(1);
    for (const days of ['0', '91', 'x', '2.5']) {
      const refused = await testApp.app.inject({ method: 'GET', url: `/api/usage/daily?days=${days}`, headers });
      expect(refused.statusCode, days).toBe(400);
      expect(refused.json().error.details[0].field).toBe('query.days');
    }
    expect((await testApp.app.inject({ method: 'GET', url: '/api/usage/daily' })).statusCode).toBe(401);
  });
});
