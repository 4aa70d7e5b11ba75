import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreditsService, SweepLogger } from '../../src/modules/credits/credits.service.js';
import { verifyCreditLedger } from '../../src/modules/credits/credits.verify.js';
import { ManualClock } from '../../src/platform/clock.js';
import { APPLICATION_ROLE } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { creditsOf, newAccount, snapshot } from './helpers.js';

/** Keeps what the sweeper logs, so a test can see the context of a failure. */
class RecordingLogger implements SweepLogger {
  readonly errors: Array<{ context: Record<string, unknown>; message: string }> = [];
  error(context: Record<string, unknown>, message: string): void {
    this.errors.push({ context, message });
  }
}

const MINUTE = 60_000;

describe('the credit sweeper (CRD-6) on the embedded database', () => {
  let testApp: TestApp;
  const clock = new ManualClock('2026-05-01T10:00:00Z');
  let credits: CreditsService;

  beforeAll(async () => {
    testApp = await createTestApp({ clock });
    credits = creditsOf(testApp, clock);
  });
  afterAll(async () => testApp.close());

  async function ledgerKinds(accountId: string): Promise<Array<[string, number]>> {
    const page = await credits.ledger(accountId, { limit: 100 });
    return page.items.map((entry) => [entry.kind, entry.amount] as [string, number]).reverse();
  }

  it('releases a hold only once it is 15 minutes old, returns the credits, and leaves confirmed ones alone', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    await credits.grant(account, { amount: 20, source: 'admin' });
    const abandoned = (await credits.reserve(account, { jobId: 'j1', jobType: 'render', amount: 6, idempotencyKey: 'a' })).reservation;
    const finished = (await credits.reserve(account, { jobId: 'j2', jobType: 'render', amount: 4, idempotencyKey: 'b' })).reservation;
    expect(abandoned.expiresAt).toBe('2026-05-01T10:15:00.000Z');

    clock.advance(14 * MINUTE);
    await credits.confirm(account, finished.id);
    const logger = new RecordingLogger();
    expect(await credits.sweep(logger)).toMatchObject({ released: 0, failed: 0 });
    expect(await credits.balance(account)).toMatchObject({ balance: 10, held: 6 });

    clock.advance(MINUTE);
    expect(await credits.sweep(logger)).toMatchObject({ released: 1, failed: 0 });
    expect(await credits.balance(account)).toMatchObject({ balance: 16, held: 0 });
    const reservations = (await snapshot(testApp.deps.database, account)).reservations;
    expect(Object.fromEntries(reservations.map((row) => [row.id, row.status]))).toEqual({ [abandoned.id]: 'released', [finished.id]: 'confirmed' });
    // A late confirm of the swept reservation is refused; nothing is spent twice.
    await expect(credits.confirm(account, abandoned.id)).rejects.toMatchObject({ statusCode: 409 });
    // A second run finds nothing to do.
    expect(await credits.sweep(logger)).toEqual({ released: 0, expiredGrants: 0, writtenOff: 0, failed: 0 });
    expect(await ledgerKinds(account)).toEqual([
      ['grant', 20],
      ['hold', -6],
      ['hold', -4],
      ['spend', -4],
      ['release', 6],
    ]);
    expect(logger.errors).toEqual([]);
    expect((await verifyCreditLedger(testApp.deps.database)).valid).toBe(true);
  });

  it('writes off the unheld remainder of an expired grant; a hold on it is written off once released', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    const expiring = await credits.grant(account, { amount: 10, source: 'promotion', expiresAt: new Date(clock.now().getTime() + 60 * MINUTE) });
    await credits.grant(account, { amount: 5, source: 'admin' });
    // Takes 7 from the expiring grant first (soonest-expiring first).
    const held = (await credits.reserve(account, { jobId: 'j', jobType: 'render', amount: 7, idempotencyKey: 'k' })).reservation;
    expect(await credits.balance(account)).toMatchObject({ balance: 8, held: 7 });

    clock.advance(61 * MINUTE);
    // The expired grant no longer counts, before and after the sweeper runs.
    expect(await credits.balance(account)).toMatchObject({ balance: 5, held: 7 });
    const logger = new RecordingLogger();
    // The hold is older than 15 minutes too: released back to the expired grant, then written off with the rest.
    expect(await credits.sweep(logger)).toEqual({ released: 1, expiredGrants: 1, writtenOff: 10, failed: 0 });
    expect(await credits.balance(account)).toEqual({ balance: 5, held: 0, grants: [expect.objectContaining({ remaining: 5 })] });
    const grants = (await snapshot(testApp.deps.database, account)).grants;
    expect(grants.find((grant) => grant.id === expiring.id)?.remaining).toBe(0);
    expect(await ledgerKinds(account)).toEqual([
      ['grant', 10],
      ['grant', 5],
      ['hold', -7],
      ['release', 7],
      ['expiry', -10],
    ]);
    expect(held.status).toBe('held');
    expect(await credits.sweep(logger)).toEqual({ released: 0, expiredGrants: 0, writtenOff: 0, failed: 0 });
    expect((await verifyCreditLedger(testApp.deps.database)).valid).toBe(true);
  });

  it('writes off only what is not held when the hold is still young, and the rest after its release', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    await credits.grant(account, { amount: 10, source: 'promotion', expiresAt: new Date(clock.now().getTime() + 20 * MINUTE) });
    clock.advance(10 * MINUTE);
    const young = (await credits.reserve(account, { jobId: 'j', jobType: 'render', amount: 4, idempotencyKey: 'k' })).reservation;
    clock.advance(11 * MINUTE); // the grant has expired; the hold is 11 minutes old
    const logger = new RecordingLogger();
    expect(await credits.sweep(logger)).toEqual({ released: 0, expiredGrants: 1, writtenOff: 6, failed: 0 });
    expect(await credits.balance(account)).toMatchObject({ balance: 0, held: 4 });
    // Released by its owner: the 4 go back to the expired grant and are not spendable; the next run writes them off.
    await credits.release(account, young.id);
    expect(await credits.balance(account)).toMatchObject({ balance: 0, held: 0 });
    expect(await credits.sweep(logger)).toEqual({ released: 0, expiredGrants: 1, writtenOff: 4, failed: 0 });
    expect((await verifyCreditLedger(testApp.deps.database)).valid).toBe(true);
  });

  it('logs a failed release with full context, goes on with the others, and retries it on the next run', async () => {
    const database = testApp.deps.database;
    const account = await newAccount(database, clock);
    await credits.grant(account, { amount: 30, source: 'admin' });
    const poisoned = (await credits.reserve(account, { jobId: 'poison', jobType: 'render', amount: 5, idempotencyKey: 'p' })).reservation;
    const healthy = (await credits.reserve(account, { jobId: 'fine', jobType: 'render', amount: 5, idempotencyKey: 'f' })).reservation;
    // A fault in the database for one reservation only: its release cannot be written.
    await database.exec(`RESET ROLE;
      CREATE FUNCTION test_refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.job_id = 'poison' THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER test_refuse_poison BEFORE UPDATE ON credit_reservations FOR EACH ROW EXECUTE FUNCTION test_refuse_poison();
      SET ROLE ${APPLICATION_ROLE};`);
    try {
      clock.advance(16 * MINUTE);
      const logger = new RecordingLogger();
      expect(await credits.sweep(logger)).toMatchObject({ released: 1, failed: 1 });
      expect(logger.errors).toHaveLength(1);
      expect(logger.errors[0]?.context).toMatchObject({ reservationId: poisoned.id, accountId: account, step: 'release', expiresAt: poisoned.expiresAt });
      expect(String(logger.errors[0]?.context.err)).toContain('injected fault');
      const statuses = Object.fromEntries((await snapshot(database, account)).reservations.map((row) => [row.id, row.status]));
      expect(statuses).toEqual({ [poisoned.id]: 'held', [healthy.id]: 'released' });
      // Nothing half-done: the failed release returned no credit.
      expect(await credits.balance(account)).toMatchObject({ balance: 25, held: 5 });
    } finally {
      await database.exec(`RESET ROLE; DROP TRIGGER test_refuse_poison ON credit_reservations; DROP FUNCTION test_refuse_poison(); SET ROLE ${APPLICATION_ROLE};`);
    }
    const logger = new RecordingLogger();
    expect(await credits.sweep(logger)).toMatchObject({ released: 1, failed: 0 });
    expect(await credits.balance(account)).toMatchObject({ balance: 30, held: 0 });
    expect((await verifyCreditLedger(database)).valid).toBe(true);
  });

  it('is a scheduled job, run once per slot of CREDIT_SWEEP_INTERVAL_SECONDS', async () => {
    const scheduled = await createTestApp({ clock, env: { CREDIT_SWEEP_INTERVAL_SECONDS: '60', CREDIT_RESERVATION_TTL_SECONDS: '120' } });
    try {
      const service = scheduled.deps.credits;
      const account = await newAccount(scheduled.deps.database, clock);
      await service.grant(account, { amount: 9, source: 'admin' });
      const { reservation } = await service.reserve(account, { jobId: 'j', jobType: 'render', amount: 9, idempotencyKey: 'k' });
      expect(reservation.expiresAt).toBe(new Date(clock.now().getTime() + 120_000).toISOString());
      expect(scheduled.deps.scheduler.registeredJobs).toContain('credits.sweeper');
      expect((await scheduled.deps.scheduler.tick())['credits.sweeper']).toBe('ran');
      expect((await scheduled.deps.scheduler.tick())['credits.sweeper']).toBe('not-due');
      expect(await service.balance(account)).toMatchObject({ balance: 0, held: 9 });
      clock.advance(2 * MINUTE);
      expect((await scheduled.deps.scheduler.tick())['credits.sweeper']).toBe('ran');
      expect(await service.balance(account)).toMatchObject({ balance: 9, held: 0 });
    } finally {
      await scheduled.close();
    }
  });
});
