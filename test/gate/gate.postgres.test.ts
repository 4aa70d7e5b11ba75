import { afterAll, beforeAll, expect, it } from 'vitest';
import { verifyCreditLedger } from '../../src/modules/credits/credits.verify.js';
import { GateService, type GateAnswer } from '../../src/modules/gate/gate.service.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { newAccount } from '../credits/helpers.js';

/**
 * The gate under concurrency (issue 5 item 7) the way production runs: two app instances,
 * each with its own pool as the application role, on one PostgreSQL.
 */
describeWithPostgres('the gate under concurrency on PostgreSQL, across two instances', () => {
  let scratch: ScratchDatabase;
  const instances: TestApp[] = [];
  const gates: GateService[] = [];
  const clock = new ManualClock('2026-06-10T12:00:00Z');

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    for (let index = 0; index < 2; index += 1) {
      const instance = await createTestApp({ clock, env: { DATABASE_URL: scratch.url, DATABASE_POOL_MAX: '20' } });
      instances.push(instance);
      gates.push(new GateService({ database: instance.deps.database, clock, entitlements: instance.deps.entitlements, credits: instance.deps.credits }));
    }
  });
  afterAll(async () => {
    for (const instance of instances) await instance.close();
    await scratch?.drop();
  });

  const first = () => instances[0] as TestApp;

  async function used(accountId: string): Promise<number> {
    const { rows } = await asSystem(first().deps.database, (tx) =>
      tx.query<{ used: number }>(`SELECT coalesce(sum(used), 0)::bigint AS used FROM usage_counters WHERE account_id = $1 AND feature = 'api_calls_per_day'`, [accountId]),
    );
    return rows[0]?.used ?? 0;
  }

  /** A FREE account (100 API calls a day) with 90 calls used and 50 credits. */
  async function lastTenUnitsAndFiftyCredits(): Promise<string> {
    const account = await newAccount(first().deps.database, clock);
    await first().deps.credits.grant(account, { amount: 30, source: 'purchase' });
    await first().deps.credits.grant(account, { amount: 20, source: 'promotion', expiresAt: new Date('2026-07-01T00:00:00Z') });
    expect(await first().deps.entitlements.check(account, { feature: 'api_calls_per_day', track: 90 })).toMatchObject({ allowed: true, used: 90 });
    return account;
  }

  async function hundredGates(account: string, cost: number): Promise<GateAnswer[]> {
    return Promise.all(
      Array.from({ length: 100 }, (_, index) =>
        (gates[index % 2] as GateService).pass(account, {
          feature: 'api_calls_per_day',
          track: 1,
          credits: { jobId: `job-${index}`, jobType: 'render', amount: cost, idempotencyKey: `gate-${index}` },
        }),
      ),
    );
  }

  it('credits run out first: 100 gates costing 7 on the last 10 units and 50 credits let exactly 7 through; usage counts those 7 only', async () => {
    const account = await lastTenUnitsAndFiftyCredits();
    const answers = await hundredGates(account, 7);
    const allowed = answers.filter((answer) => answer.allowed);
    expect(allowed).toHaveLength(7);
    expect(answers.filter((answer) => answer.reason === 'INSUFFICIENT_CREDITS')).toHaveLength(93);
    expect(await used(account)).toBe(97);
    expect(await first().deps.credits.balance(account)).toMatchObject({ balance: 1, held: 49 });
    expect(new Set(allowed.map((answer) => answer.reservation?.id)).size).toBe(7);
    expect(await verifyCreditLedger(first().deps.database, { accountId: account })).toMatchObject({ valid: true });
  });

  it('units run out first: 100 gates costing 3 let exactly 10 through; 30 credits held, the usage at its limit and never above', async () => {
    const account = await lastTenUnitsAndFiftyCredits();
    const answers = await hundredGates(account, 3);
    expect(answers.filter((answer) => answer.allowed)).toHaveLength(10);
    expect(answers.filter((answer) => answer.reason === 'LIMIT_REACHED')).toHaveLength(90);
    expect(await used(account)).toBe(100);
    expect(await first().deps.credits.balance(account)).toMatchObject({ balance: 20, held: 30 });
    expect(await verifyCreditLedger(first().deps.database, { accountId: account })).toMatchObject({ valid: true });
  });

  it('both bind at once: 100 gates costing 5 hold all 50 credits and use all 10 units, nothing more', async () => {
    const account = await lastTenUnitsAndFiftyCredits();
    const answers = await hundredGates(account, 5);
    expect(answers.filter((answer) => answer.allowed)).toHaveLength(10);
    expect(await used(account)).toBe(100);
    expect(await first().deps.credits.balance(account)).toMatchObject({ balance: 0, held: 50 });
    // Retries of all hundred (same keys) change nothing: the ten answer their reservations, the rest stay refused.
    const retries = await hundredGates(account, 5);
    expect(retries.filter((answer) => answer.allowed)).toHaveLength(10);
    expect(await used(account)).toBe(100);
    expect(await first().deps.credits.balance(account)).toMatchObject({ balance: 0, held: 50 });
    expect(await verifyCreditLedger(first().deps.database, { accountId: account })).toMatchObject({ valid: true });
  });

  it('twenty concurrent retries of one gate (same key) hold once and track once', async () => {
    const account = await lastTenUnitsAndFiftyCredits();
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        (gates[index % 2] as GateService).pass(account, {
          feature: 'api_calls_per_day',
          track: 1,
          credits: { jobId: 'the-job', jobType: 'render', amount: 5, idempotencyKey: 'the-key' },
        }),
      ),
    );
    expect(answers.every((answer) => answer.allowed)).toBe(true);
    expect(new Set(answers.map((answer) => answer.reservation?.id)).size).toBe(1);
    expect(await used(account)).toBe(91);
    expect(await first().deps.credits.balance(account)).toMatchObject({ balance: 45, held: 5 });
  });

  it('fails only the bad gate: one for an account that does not exist errors, its neighbours sent at the same moment pass', async () => {
    const account = await lastTenUnitsAndFiftyCredits();
    const gate = gates[0] as GateService;
    const body = (key: string) => ({ feature: 'api_calls_per_day', track: 1, credits: { jobId: key, jobType: 'render', amount: 5, idempotencyKey: key } });
    const outcomes = await Promise.allSettled([gate.pass(account, body('a')), gate.pass('acct_does_not_exist', body('b')), gate.pass(account, body('c'))]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(await used(account)).toBe(92);
    expect(await first().deps.credits.balance(account)).toMatchObject({ balance: 40, held: 10 });
  });
});
