import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { snapshot } from '../credits/helpers.js';

/** POST /api/gate through the real app with account keys (API.md; issue 5 item 7). */
describe('POST /api/gate', () => {
  let testApp: TestApp;
  const admin = () => ({ authorization: `Bearer ${testApp.config.secrets.adminApiToken}` });

  async function account(credits: number): Promise<{ id: string; key: Record<string, string> }> {
    const created = await testApp.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin(), payload: { name: 'gate' } });
    expect(created.statusCode, created.body).toBe(201);
    const id = created.json().account.id as string;
    if (credits > 0) {
      const granted = await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${id}/credits`, headers: admin(), payload: { amount: credits, source: 'admin' } });
      expect(granted.statusCode, granted.body).toBe(201);
    }
    const issued = await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${id}/keys`, headers: admin(), payload: {} });
    return { id, key: { 'x-api-key': issued.json().secret } };
  }

  const gate = (key: Record<string, string>, payload: unknown) => testApp.app.inject({ method: 'POST', url: '/api/gate', headers: key, payload: payload as object });

  async function used(accountId: string, feature: string): Promise<number> {
    const { rows } = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ used: number }>('SELECT coalesce(sum(used), 0)::bigint AS used FROM usage_counters WHERE account_id = $1 AND feature = $2', [accountId, feature]),
    );
    return rows[0]?.used ?? 0;
  }

  beforeAll(async () => {
    testApp = await createTestApp({ env: { RATE_LIMITS: JSON.stringify({ 'admin.ip': { limit: 10_000, windowSeconds: 3600 } }) } });
  });
  afterAll(async () => testApp.close());

  it('tracks the entitlement and holds the credits in one call; a retry with the same key answers the same and records nothing more', async () => {
    const { id, key } = await account(20);
    const body = { feature: 'api_calls_per_day', track: 1, credits: { jobId: 'j1', jobType: 'story', units: 2, idempotencyKey: 'g1' } };
    const first = await gate(key, body);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toEqual({
      allowed: true,
      entitlement: expect.objectContaining({ allowed: true, feature: 'api_calls_per_day', kind: 'metered', limit: 100, used: 1, remaining: 99 }),
      reservation: expect.objectContaining({ id: expect.stringMatching(/^res_/), amount: 10, status: 'held', jobType: 'story' }),
    });
    const again = await gate(key, body);
    expect(again.json().reservation).toEqual(first.json().reservation);
    expect(again.json().entitlement).toMatchObject({ used: 1 });
    expect(await used(id, 'api_calls_per_day')).toBe(1);
    expect((await testApp.deps.credits.balance(id))).toMatchObject({ balance: 10, held: 10 });
    // The same key with another body is refused and changes nothing.
    const reused = await gate(key, { ...body, credits: { ...body.credits, units: 3 } });
    expect(reused.statusCode).toBe(422);
    expect(await used(id, 'api_calls_per_day')).toBe(1);
  });

  it('with the limit reached it holds no credits (LIMIT_REACHED)', async () => {
    const { id, key } = await account(50);
    // FREE allows 1 team member: the first tracked gate takes it.
    expect((await gate(key, { feature: 'team_members', track: 1, credits: { jobId: 'a', jobType: 'render', amount: 5, idempotencyKey: 'a' } })).json()).toMatchObject({ allowed: true });
    const before = await snapshot(testApp.deps.database, id);
    const denied = await gate(key, { feature: 'team_members', track: 1, credits: { jobId: 'b', jobType: 'render', amount: 5, idempotencyKey: 'b' } });
    expect(denied.statusCode).toBe(200);
    expect(denied.json()).toEqual({ allowed: false, reason: 'LIMIT_REACHED', entitlement: expect.objectContaining({ kind: 'static', limit: 1, used: 1, remaining: 0 }) });
    expect(await snapshot(testApp.deps.database, id)).toEqual(before);
    expect(await used(id, 'team_members')).toBe(1);
  });

  it('with credits short it records no usage (INSUFFICIENT_CREDITS), and says so without amounts', async () => {
    const { id, key } = await account(4);
    const before = await snapshot(testApp.deps.database, id);
    const denied = await gate(key, { feature: 'api_calls_per_day', track: 3, credits: { jobId: 'c', jobType: 'render', amount: 5, idempotencyKey: 'c' } });
    expect(denied.statusCode).toBe(200);
    expect(denied.json()).toEqual({ allowed: false, reason: 'INSUFFICIENT_CREDITS', entitlement: expect.objectContaining({ used: 0, remaining: 100 }) });
    expect(await used(id, 'api_calls_per_day')).toBe(0);
    expect(await snapshot(testApp.deps.database, id)).toEqual(before);
    // The refused key was not kept: after a top-up the same call goes through.
    await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${id}/credits`, headers: admin(), payload: { amount: 10, source: 'admin' } });
    expect((await gate(key, { feature: 'api_calls_per_day', track: 3, credits: { jobId: 'c', jobType: 'render', amount: 5, idempotencyKey: 'c' } })).json()).toMatchObject({
      allowed: true,
      entitlement: { used: 3 },
    });
  });

  it('answers NOT_ENTITLED for an unknown feature, a disabled one or a limit of 0, and changes nothing', async () => {
    const { id, key } = await account(10);
    const before = await snapshot(testApp.deps.database, id);
    for (const feature of ['no_such_feature', 'private_repos']) {
      const denied = await gate(key, { feature, track: 1, credits: { jobId: 'd', jobType: 'render', amount: 1, idempotencyKey: `d-${feature}` } });
      expect(denied.json(), feature).toMatchObject({ allowed: false, reason: 'NOT_ENTITLED' });
    }
    expect(await snapshot(testApp.deps.database, id)).toEqual(before);
    expect(await used(id, 'private_repos')).toBe(0);
  });

  it('works without credits (entitlement only) and without track (a read)', async () => {
    const { id, key } = await account(0);
    expect((await gate(key, { feature: 'api_calls_per_day', track: 2 })).json()).toEqual({ allowed: true, entitlement: expect.objectContaining({ used: 2 }) });
    expect((await gate(key, { feature: 'api_calls_per_day' })).json()).toEqual({ allowed: true, entitlement: expect.objectContaining({ used: 2, remaining: 98 }) });
    expect(await used(id, 'api_calls_per_day')).toBe(2);
  });

  it.each([
    ['a zero amount', { feature: 'f', credits: { jobId: 'j', jobType: 'render', amount: 0, idempotencyKey: 'k' } }, 'credits.amount'],
    ['a fractional amount', { feature: 'f', credits: { jobId: 'j', jobType: 'render', amount: 1.5, idempotencyKey: 'k' } }, 'credits.amount'],
    ['a string track', { feature: 'f', track: '1' }, 'track'],
    ['an unknown property', { feature: 'f', accountId: 'acct_other' }, 'accountId'],
    ['credits without an idempotency key', { feature: 'f', credits: { jobId: 'j', jobType: 'render', amount: 1 } }, 'credits.idempotencyKey'],
  ])('refuses %s with 400 naming the field', async (_label, payload, field) => {
    const { key } = await account(0);
    const response = await gate(key, payload);
    expect(response.statusCode).toBe(400);
    expect(response.json().error.details[0].field).toBe(field);
  });

  it('refuses a priced job without units, naming the field, before anything is held', async () => {
    const { id, key } = await account(10);
    const response = await gate(key, { feature: 'api_calls_per_day', track: 1, credits: { jobId: 'b', jobType: 'book', amount: 4, idempotencyKey: 'k' } });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.message).toMatch(/^amount/);
    expect(await used(id, 'api_calls_per_day')).toBe(0);
  });
});

describe('POST /api/gate rate limited', () => {
  let testApp: TestApp;
  beforeAll(async () => {
    // A clock that stands still, so the limiter's allowance does not refill during the test.
    testApp = await createTestApp({ clock: new ManualClock('2026-06-01T00:00:00Z'), env: { RATE_LIMITS: JSON.stringify({ 'admin.ip': { limit: 1_000, windowSeconds: 3600 } }) } });
  });
  afterAll(async () => testApp.close());

  it('answers RATE_LIMITED with Retry-After once the plan limit is used, and changes nothing', async () => {
    const admin = { authorization: `Bearer ${testApp.config.secrets.adminApiToken}` };
    const created = await testApp.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin, payload: { name: 'limited' } });
    const id = created.json().account.id as string;
    await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${id}/credits`, headers: admin, payload: { amount: 100_000, source: 'admin' } });
    const key = { 'x-api-key': (await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${id}/keys`, headers: admin, payload: {} })).json().secret };
    // The FREE plan's machine limit cut to 5 requests a minute through the operator route, so the test stays short.
    const changed = await testApp.app.inject({ method: 'PUT', url: '/api/admin/plans/FREE', headers: admin, payload: { requestsPerMinute: 5 } });
    expect(changed.statusCode, changed.body).toBe(200);
    const limit = 5;
    const answers = [];
    for (let index = 0; index <= limit; index += 1) {
      answers.push(await testApp.app.inject({ method: 'POST', url: '/api/gate', headers: key, payload: { feature: 'team_members', credits: { jobId: `j${index}`, jobType: 'render', amount: 1, idempotencyKey: `k${index}` } } }));
    }
    const last = answers[answers.length - 1];
    expect(answers.slice(0, -1).every((answer) => answer.json().allowed === true)).toBe(true);
    expect(last?.statusCode).toBe(200);
    expect(last?.json()).toEqual({ allowed: false, reason: 'RATE_LIMITED', entitlement: null });
    expect(Number(last?.headers['retry-after'])).toBeGreaterThan(0);
    expect(await testApp.deps.credits.balance(id)).toMatchObject({ held: limit });
  });
});

describe('RL-1 job-type limits for people spending credits', () => {
  let testApp: TestApp;
  beforeAll(async () => {
    testApp = await createTestApp({ clock: new ManualClock('2026-06-01T00:00:00Z'), env: { SIGNUP_BONUS_CREDITS: '1000' } });
  });
  afterAll(async () => testApp.close());

  async function person(email: string): Promise<Record<string, string>> {
    const signup = await testApp.app.inject({ method: 'POST', url: '/auth/signup', payload: { email, password: 'a sturdy passphrase 42' } });
    expect(signup.statusCode, signup.body).toBe(201);
    return { authorization: `Bearer ${signup.json().accessToken}` };
  }

  it('allows a person 5 story reserves a minute (the 6th is 429 and holds nothing) and 3 book reserves, separately', async () => {
    const user = await person('stories@example.com');
    const reserve = (jobType: string, index: number) =>
      testApp.app.inject({ method: 'POST', url: '/api/credits/reservations', headers: user, payload: { jobId: `${jobType}-${index}`, jobType, units: 1, idempotencyKey: `${jobType}-${index}` } });
    const stories = [];
    for (let index = 0; index < 6; index += 1) stories.push((await reserve('story', index)).statusCode);
    expect(stories).toEqual([201, 201, 201, 201, 201, 429]);
    const books = [];
    for (let index = 0; index < 4; index += 1) books.push((await reserve('book', index)).statusCode);
    expect(books).toEqual([201, 201, 201, 429]);
    const credits = await testApp.app.inject({ method: 'GET', url: '/api/credits', headers: user });
    // 5 stories at 5 credits and 3 one-page books at 2: nothing for the refused ones.
    expect(credits.json()).toMatchObject({ held: 5 * 5 + 3 * 2 });
  });

  it('answers the gate RATE_LIMITED past the person\u2019s story limit, holding and tracking nothing', async () => {
    const user = await person('gates@example.com');
    const answers = [];
    for (let index = 0; index < 6; index += 1) {
      const response = await testApp.app.inject({
        method: 'POST',
        url: '/api/gate',
        headers: user,
        payload: { feature: 'api_calls_per_day', track: 1, credits: { jobId: `s${index}`, jobType: 'story', units: 1, idempotencyKey: `s${index}` } },
      });
      answers.push(response.json());
    }
    expect(answers.slice(0, 5).every((answer) => answer.allowed === true)).toBe(true);
    expect(answers[5]).toEqual({ allowed: false, reason: 'RATE_LIMITED', entitlement: null });
    const check = await testApp.app.inject({ method: 'POST', url: '/api/entitlements/check', headers: user, payload: { feature: 'api_calls_per_day' } });
    expect(check.json()).toMatchObject({ used: 5 });
  });
});
