import { afterAll, beforeAll, expect, it } from 'vitest';
import type { CreditsService } from '../../src/modules/credits/credits.service.js';
import { verifyCreditLedger } from '../../src/modules/credits/credits.verify.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { creditsOf, newAccount, snapshot } from './helpers.js';

/**
 * CRD-2, CRD-3, CRD-7, CRD-9 the way production runs: three app instances, each with its
 * own pool working as the application role (row-level security on), on one PostgreSQL.
 */
describeWithPostgres('credits under concurrency on PostgreSQL, across three instances', () => {
  let scratch: ScratchDatabase;
  let instances: TestApp[] = [];
  let services: CreditsService[] = [];

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    instances = [];
    for (let index = 0; index < 3; index += 1) {
      instances.push(await createTestApp({ env: { DATABASE_URL: scratch.url, DATABASE_POOL_MAX: '20' } }));
    }
    services = instances.map((instance) => creditsOf(instance));
  });
  afterAll(async () => {
    for (const instance of instances) await instance.close();
    await scratch?.drop();
  });

  const database = () => (instances[0] as TestApp).deps.database;
  const service = (index: number) => services[index % services.length] as CreditsService;

  async function minimumRemaining(accountId: string): Promise<number> {
    const { rows } = await asSystem(database(), (tx) =>
      tx.query<{ min: number }>('SELECT coalesce(min(remaining), 0)::bigint AS min FROM credit_grants WHERE account_id = $1', [accountId]),
    );
    return rows[0]?.min ?? 0;
  }

  it('200 concurrent reserves of 7 against a balance of 100: exactly 14 succeed, 186 get 402, never negative, the ledger reconciles', async () => {
    const account = await newAccount(database(), instances[0]?.deps.clock ?? { now: () => new Date() });
    // Several grants with different expiries, so that holds span grants and lock several rows.
    await service(0).grant(account, { amount: 40, source: 'purchase' });
    await service(0).grant(account, { amount: 25, source: 'promotion', expiresAt: new Date(Date.now() + 86_400_000) });
    await service(0).grant(account, { amount: 35, source: 'admin', expiresAt: new Date(Date.now() + 3_600_000) });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 200 }, (_, index) =>
        service(index).reserve(account, { jobId: `job-${index}`, jobType: 'render', amount: 7, idempotencyKey: `key-${index}` }),
      ),
    );
    const held = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
    const refused = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason as { code?: string; statusCode?: number }] : []));
    expect(held).toHaveLength(14);
    expect(refused).toHaveLength(186);
    expect(refused.every((error) => error.code === 'INSUFFICIENT_CREDITS' && error.statusCode === 402)).toBe(true);
    expect(await service(1).balance(account)).toMatchObject({ balance: 2, held: 98 });
    expect(await minimumRemaining(account)).toBeGreaterThanOrEqual(0);
    expect(await verifyCreditLedger(database(), { accountId: account })).toMatchObject({ valid: true, checked: 1 });
    // Only the 14 held reservations exist: the refused ones rolled back their claimed keys.
    expect((await snapshot(database(), account)).reservations).toHaveLength(14);
  });

  it('100 concurrent confirm and release calls racing on the same reservations: each ends confirmed or released, and the credits add up', async () => {
    const account = await newAccount(database(), { now: () => new Date() });
    await service(0).grant(account, { amount: 500, source: 'purchase' });
    const reservations = [];
    for (let index = 0; index < 25; index += 1) {
      reservations.push((await service(index).reserve(account, { jobId: `job-${index}`, jobType: 'render', amount: 1 + index, idempotencyKey: `k-${index}` })).reservation);
    }
    const totalHeld = reservations.reduce((sum, reservation) => sum + reservation.amount, 0);
    // Four calls per reservation (two confirms, two releases), interleaved across instances.
    const calls = reservations.flatMap((reservation, index) =>
      [0, 1, 2, 3].map((turn) => ({ reservation, action: turn % 2 === 0 ? ('confirm' as const) : ('release' as const), instance: index + turn })),
    );
    const outcomes = await Promise.allSettled(calls.map((call) => service(call.instance)[call.action](account, call.reservation.id)));
    expect(outcomes).toHaveLength(100);
    const final = await snapshot(database(), account);
    let spent = 0;
    for (const reservation of reservations) {
      const row = final.reservations.find((candidate) => candidate.id === reservation.id);
      expect(['confirmed', 'released']).toContain(row?.status);
      if (row?.status === 'confirmed') spent += row.amount;
      // Every call on it either answered that final state or was refused with 409: never both states.
      const mine = calls.map((call, index) => ({ call, outcome: outcomes[index] })).filter(({ call }) => call.reservation.id === reservation.id);
      for (const { call, outcome } of mine) {
        const wanted = call.action === 'confirm' ? 'confirmed' : 'released';
        if (wanted === row?.status) expect(outcome).toMatchObject({ status: 'fulfilled', value: { status: wanted } });
        else expect(outcome).toMatchObject({ status: 'rejected', reason: { statusCode: 409 } });
      }
    }
    const balance = await service(2).balance(account);
    expect(balance.held).toBe(0);
    expect(balance.balance).toBe(500 - spent);
    expect(spent).toBeLessThanOrEqual(totalHeld);
    const { rows } = await asSystem(database(), (tx) =>
      tx.query<{ reservation_id: string; kinds: string[] }>(
        `SELECT reservation_id, array_agg(DISTINCT kind ORDER BY kind) AS kinds FROM credit_ledger
         WHERE account_id = $1 AND kind IN ('spend', 'release') GROUP BY reservation_id`,
        [account],
      ),
    );
    expect(rows).toHaveLength(25);
    expect(rows.every((row) => row.kinds.length === 1)).toBe(true);
    expect(await verifyCreditLedger(database(), { accountId: account })).toMatchObject({ valid: true });
  });

  it('reserves and releases racing on many grants neither deadlock nor lose a credit', async () => {
    const account = await newAccount(database(), { now: () => new Date() });
    for (let index = 0; index < 8; index += 1) {
      await service(index).grant(account, { amount: 10, source: 'admin', expiresAt: new Date(Date.now() + (8 - index) * 3_600_000) });
    }
    const first = [];
    for (let index = 0; index < 10; index += 1) {
      first.push((await service(index).reserve(account, { jobId: `a-${index}`, jobType: 'render', amount: 4, idempotencyKey: `a-${index}` })).reservation);
    }
    // Releasing 40 held credits while 60 new reserves of 3 compete for the 40 free and whatever comes back.
    const outcomes = await Promise.allSettled([
      ...first.map((reservation, index) => service(index).release(account, reservation.id)),
      ...Array.from({ length: 60 }, (_, index) =>
        service(index + 1).reserve(account, { jobId: `b-${index}`, jobType: 'render', amount: 3, idempotencyKey: `b-${index}` }),
      ),
    ]);
    const failures = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason as { code?: string }] : []));
    expect(failures.every((failure) => failure.code === 'INSUFFICIENT_CREDITS')).toBe(true);
    expect(outcomes.slice(0, 10).every((outcome) => outcome.status === 'fulfilled')).toBe(true);
    const succeeded = outcomes.slice(10).filter((outcome) => outcome.status === 'fulfilled').length;
    // At least the 40 free credits were available to the new reserves throughout: 13 fit in 40.
    expect(succeeded).toBeGreaterThanOrEqual(13);
    expect(succeeded).toBeLessThanOrEqual(26);
    const balance = await service(0).balance(account);
    expect(balance.held).toBe(succeeded * 3);
    expect(balance.balance + balance.held).toBe(80);
    expect(await minimumRemaining(account)).toBeGreaterThanOrEqual(0);
    expect(await verifyCreditLedger(database(), { accountId: account })).toMatchObject({ valid: true });
  });

  it("account B confirming or releasing account A's reservation: 404 and no change", async () => {
    const owner = await newAccount(database(), { now: () => new Date() });
    const intruder = await newAccount(database(), { now: () => new Date() });
    await service(0).grant(owner, { amount: 10, source: 'admin' });
    await service(0).grant(intruder, { amount: 10, source: 'admin' });
    const { reservation } = await service(1).reserve(owner, { jobId: 'j', jobType: 'render', amount: 4, idempotencyKey: 'a' });
    const before = [await snapshot(database(), owner), await snapshot(database(), intruder)];
    const attempts = await Promise.allSettled(
      Array.from({ length: 10 }, (_, index) => (index % 2 === 0 ? service(index).confirm(intruder, reservation.id) : service(index).release(intruder, reservation.id))),
    );
    expect(attempts.every((attempt) => attempt.status === 'rejected' && (attempt.reason as { statusCode: number }).statusCode === 404)).toBe(true);
    expect([await snapshot(database(), owner), await snapshot(database(), intruder)]).toEqual(before);
  });

  it('the signup bonus granted twice (and more) concurrently: one grant', async () => {
    const account = await newAccount(database(), { now: () => new Date() });
    const answers = await Promise.all(Array.from({ length: 12 }, (_, index) => service(index).signupBonus(account, 10)));
    expect(answers.filter((answer) => answer !== null)).toHaveLength(1);
    const state = await snapshot(database(), account);
    expect(state.grants).toHaveLength(1);
    expect(state.ledgerCount).toBe(1);
    expect(await service(0).balance(account)).toMatchObject({ balance: 10 });
  });

  it('concurrent replays of one idempotent reserve hold once and all answer the same reservation', async () => {
    const account = await newAccount(database(), { now: () => new Date() });
    await service(0).grant(account, { amount: 50, source: 'admin' });
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, index) => service(index).reserve(account, { jobId: 'job', jobType: 'story', units: 2, idempotencyKey: 'one' })),
    );
    expect(new Set(answers.map((answer) => answer.reservation.id)).size).toBe(1);
    expect(answers.filter((answer) => !answer.replayed)).toHaveLength(1);
    expect(await service(0).balance(account)).toMatchObject({ balance: 40, held: 10 });
    expect((await verifyCreditLedger(database())).valid).toBe(true);
  });

  it('a batch of reserves: one key twice holds once, a short account is refused alone, an unknown account fails alone', async () => {
    const rich = await newAccount(database(), { now: () => new Date() });
    const poor = await newAccount(database(), { now: () => new Date() });
    await service(0).grant(rich, { amount: 20, source: 'admin' });
    await service(0).grant(poor, { amount: 3, source: 'admin' });
    const credits = service(0);
    const body = (key: string, amount: number) => ({ jobId: key, jobType: 'render', amount, idempotencyKey: key });
    // Submitted in the same turn, so they travel in one batch.
    const outcomes = await Promise.allSettled([
      credits.reserve(rich, body('same', 5)),
      credits.reserve(poor, body('p1', 5)),
      credits.reserve(rich, body('same', 5)),
      credits.reserve('acct_does_not_exist', body('x', 1)),
      credits.reserve(rich, body('other', 5)),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    const [first, short, again, unknown, other] = outcomes;
    if (first?.status !== 'fulfilled' || again?.status !== 'fulfilled' || other?.status !== 'fulfilled') throw new Error('expected fulfilled');
    expect(again.value.reservation.id).toBe(first.value.reservation.id);
    expect([first.value.replayed, again.value.replayed].sort()).toEqual([false, true]);
    expect((short as PromiseRejectedResult).reason).toMatchObject({ code: 'INSUFFICIENT_CREDITS' });
    expect((unknown as PromiseRejectedResult).reason).toBeDefined();
    expect(await service(1).balance(rich)).toMatchObject({ balance: 10, held: 10 });
    expect(await service(1).balance(poor)).toMatchObject({ balance: 3, held: 0 });
    expect(await verifyCreditLedger(database(), { accountId: rich })).toMatchObject({ valid: true });
  });

  it('a batch of settlements: confirm and release of one reservation in one batch settle it once', async () => {
    const account = await newAccount(database(), { now: () => new Date() });
    await service(0).grant(account, { amount: 10, source: 'admin' });
    const { reservation } = await service(0).reserve(account, { jobId: 'j', jobType: 'render', amount: 4, idempotencyKey: 'k' });
    const credits = service(1);
    const outcomes = await Promise.allSettled([credits.confirm(account, reservation.id), credits.release(account, reservation.id), credits.confirm(account, reservation.id)]);
    const statuses = outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value.status : (outcome.reason as { code: string }).code));
    // Whichever came first wins; the other kind is a 409, the same kind answers the same.
    expect([['confirmed', 'CONFLICT', 'confirmed'], ['CONFLICT', 'released', 'CONFLICT']]).toContainEqual(statuses);
    const balance = await service(0).balance(account);
    expect(balance.held).toBe(0);
    expect(balance.balance === 6 || balance.balance === 10).toBe(true);
    expect(await verifyCreditLedger(database(), { accountId: account })).toMatchObject({ valid: true });
  });
});
