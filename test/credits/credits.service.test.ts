import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreditsService } from '../../src/modules/credits/credits.service.js';
import { runCreditsVerify } from '../../src/modules/credits/credits-verify-command.js';
import { verifyCreditLedger } from '../../src/modules/credits/credits.verify.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem, forAccount } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { creditsOf, newAccount, snapshot } from './helpers.js';

describe('credits on the embedded database (CRD-1..8)', () => {
  let testApp: TestApp;
  const clock = new ManualClock('2026-04-01T12:00:00Z');
  let credits: CreditsService;

  beforeAll(async () => {
    testApp = await createTestApp({ clock });
    credits = creditsOf(testApp, clock);
  });
  afterAll(async () => testApp.close());

  it('grants credits, shows them in the balance in spending order, and writes the ledger and the audit trail', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    const forever = await credits.grant(account, { amount: 30, source: 'purchase', reference: 'pi_123' });
    const soon = await credits.grant(account, { amount: 20, source: 'promotion', expiresAt: new Date('2026-04-10T00:00:00Z') });
    expect(forever).toMatchObject({ source: 'purchase', amount: 30, remaining: 30, expiresAt: null });
    expect(forever.id).toMatch(/^grant_/);
    const balance = await credits.balance(account);
    expect(balance).toEqual({ balance: 50, held: 0, grants: [soon, forever] });
    const ledger = await credits.ledger(account, {});
    expect(ledger.items.map((entry) => [entry.kind, entry.amount, entry.grantId])).toEqual([
      ['grant', 20, soon.id],
      ['grant', 30, forever.id],
    ]);
    const { rows } = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ subject_id: string; metadata: Record<string, unknown> }>(
        `SELECT subject_id, metadata FROM audit_log WHERE event = 'credits.granted' AND account_id = $1 ORDER BY seq`,
        [account],
      ),
    );
    expect(rows.map((row) => row.subject_id)).toEqual([forever.id, soon.id]);
    expect(rows[0]?.metadata).toMatchObject({ amount: 30, source: 'purchase', reference: 'pi_123' });
  });

  it('refuses bad grants: amount, past expiry, unknown account', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    for (const amount of [0, -5, 1.5, Number.NaN, 1_000_001]) {
      await expect(credits.grant(account, { amount, source: 'admin' })).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(/^amount/) });
    }
    await expect(credits.grant(account, { amount: 5, source: 'admin', expiresAt: clock.now() })).rejects.toMatchObject({
      statusCode: 400,
      message: expect.stringMatching(/^expiresAt/),
    });
    await expect(credits.grant('acct_nobody', { amount: 5, source: 'admin' })).rejects.toMatchObject({ statusCode: 404 });
    expect((await snapshot(testApp.deps.database, account)).grants).toEqual([]);
  });

  it('reserves from the soonest-expiring grant, confirms into spend, and the ledger reconciles', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    const late = await credits.grant(account, { amount: 10, source: 'admin' });
    const soon = await credits.grant(account, { amount: 4, source: 'promotion', expiresAt: new Date('2026-04-02T00:00:00Z') });
    // 'book' is priced at 2 credits a page (migration 0006): 3 pages = 6 credits.
    const { reservation, replayed } = await credits.reserve(account, { jobId: 'job-1', jobType: 'book', units: 3, idempotencyKey: 'k1' });
    expect(replayed).toBe(false);
    expect(reservation).toEqual({
      id: expect.stringMatching(/^res_/),
      jobId: 'job-1',
      jobType: 'book',
      amount: 6,
      status: 'held',
      expiresAt: '2026-04-01T12:15:00.000Z',
    });
    expect(await credits.balance(account)).toMatchObject({ balance: 8, held: 6 });
    const grants = (await snapshot(testApp.deps.database, account)).grants;
    expect(grants.find((grant) => grant.id === soon.id)?.remaining).toBe(0);
    expect(grants.find((grant) => grant.id === late.id)?.remaining).toBe(8);

    expect(await credits.confirm(account, reservation.id)).toMatchObject({ id: reservation.id, status: 'confirmed', amount: 6 });
    expect(await credits.confirm(account, reservation.id)).toMatchObject({ status: 'confirmed' });
    await expect(credits.release(account, reservation.id)).rejects.toMatchObject({ code: 'CONFLICT', statusCode: 409 });
    expect(await credits.balance(account)).toMatchObject({ balance: 8, held: 0 });
    expect((await credits.ledger(account, {})).items.map((entry) => entry.kind)).toEqual(['spend', 'spend', 'hold', 'hold', 'grant', 'grant']);
    expect(await verifyCreditLedger(testApp.deps.database, { accountId: account })).toEqual({ valid: true, checked: 1, mismatches: [] });
  });

  it('releases a hold back to the grants it came from; releasing again answers the same; confirming then is 409', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    const first = await credits.grant(account, { amount: 3, source: 'admin', expiresAt: new Date('2026-05-01T00:00:00Z') });
    const second = await credits.grant(account, { amount: 10, source: 'admin' });
    const { reservation } = await credits.reserve(account, { jobId: 'j', jobType: 'render', amount: 5, idempotencyKey: 'k' });
    const before = await snapshot(testApp.deps.database, account);
    expect(before.grants.map((grant) => grant.remaining).sort()).toEqual([0, 8]);
    expect(await credits.release(account, reservation.id)).toMatchObject({ status: 'released', amount: 5 });
    expect(await credits.release(account, reservation.id)).toMatchObject({ status: 'released' });
    await expect(credits.confirm(account, reservation.id)).rejects.toMatchObject({ statusCode: 409 });
    const after = await snapshot(testApp.deps.database, account);
    expect(Object.fromEntries(after.grants.map((grant) => [grant.id, grant.remaining]))).toEqual({ [first.id]: 3, [second.id]: 10 });
    expect(await credits.balance(account)).toMatchObject({ balance: 13, held: 0 });
    expect((await verifyCreditLedger(testApp.deps.database, { accountId: account })).valid).toBe(true);
  });

  it('answers 402 "Insufficient credits" with no amounts, holds nothing, and frees the idempotency key for a retry after a top-up', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    await credits.grant(account, { amount: 4, source: 'admin' });
    const before = await snapshot(testApp.deps.database, account);
    const refusal = credits.reserve(account, { jobId: 'j', jobType: 'story', units: 1, idempotencyKey: 'retry-me' });
    await expect(refusal).rejects.toMatchObject({ code: 'INSUFFICIENT_CREDITS', statusCode: 402, message: 'Insufficient credits' });
    expect(await snapshot(testApp.deps.database, account)).toEqual(before);
    await credits.grant(account, { amount: 1, source: 'admin' });
    const retried = await credits.reserve(account, { jobId: 'j', jobType: 'story', units: 1, idempotencyKey: 'retry-me' });
    expect(retried).toMatchObject({ replayed: false, reservation: { amount: 5, status: 'held' } });
    expect(await credits.balance(account)).toMatchObject({ balance: 0, held: 5 });
  });

  it('a replay with the same key and body returns the first reservation and holds nothing more; another body is 422', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    await credits.grant(account, { amount: 100, source: 'admin' });
    const first = await credits.reserve(account, { jobId: 'job-9', jobType: 'story', units: 2, idempotencyKey: 'same' });
    const again = await credits.reserve(account, { jobId: 'job-9', jobType: 'story', units: 2, idempotencyKey: 'same' });
    expect(again).toEqual({ reservation: first.reservation, replayed: true });
    expect(await credits.balance(account)).toMatchObject({ balance: 90, held: 10 });
    await credits.confirm(account, first.reservation.id);
    expect((await credits.reserve(account, { jobId: 'job-9', jobType: 'story', units: 2, idempotencyKey: 'same' })).reservation.status).toBe('confirmed');
    for (const body of [
      { jobId: 'job-9', jobType: 'story', units: 3 },
      { jobId: 'job-10', jobType: 'story', units: 2 },
      { jobId: 'job-9', jobType: 'render', amount: 10 },
    ]) {
      await expect(credits.reserve(account, { ...body, idempotencyKey: 'same' })).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', statusCode: 422 });
    }
    expect(await credits.balance(account)).toMatchObject({ balance: 90, held: 0 });
    // Keys are per account: another account may use the same one.
    const other = await newAccount(testApp.deps.database, clock);
    await credits.grant(other, { amount: 10, source: 'admin' });
    expect((await credits.reserve(other, { jobId: 'job-9', jobType: 'story', units: 2, idempotencyKey: 'same' })).replayed).toBe(false);
  });

  it('validates units and amount (CRD-4): priced types take units only, unpriced types amount only, whole and bounded', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    await credits.grant(account, { amount: 1_000_000, source: 'admin' });
    const base = { jobId: 'j', idempotencyKey: 'v' };
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ jobType: 'book', units: 0 }, 'units'],
      [{ jobType: 'book', units: -1 }, 'units'],
      [{ jobType: 'book', units: 1.5 }, 'units'],
      [{ jobType: 'book', units: Number.NaN }, 'units'],
      [{ jobType: 'book', units: '3' }, 'units'],
      [{ jobType: 'book' }, 'units'],
      [{ jobType: 'book', units: 500_001 }, 'units'],
      [{ jobType: 'book', units: 3, amount: 6 }, 'amount'],
      [{ jobType: 'render' }, 'amount'],
      [{ jobType: 'render', amount: 0 }, 'amount'],
      [{ jobType: 'render', amount: 2.5 }, 'amount'],
      [{ jobType: 'render', amount: 1_000_001 }, 'amount'],
      [{ jobType: 'render', amount: 5, units: 1 }, 'units'],
      [{ jobType: 'Bad Type', amount: 5 }, 'jobType'],
      [{ jobType: 'render', amount: 5, jobId: 'a\u0000b' }, 'jobId'],
      [{ jobType: 'render', amount: 5, idempotencyKey: '' }, 'idempotencyKey'],
    ];
    for (const [input, field] of cases) {
      await expect(credits.reserve(account, { ...base, ...input } as never), JSON.stringify(input)).rejects.toMatchObject({
        statusCode: 400,
        details: [expect.objectContaining({ field })],
      });
    }
    expect(await credits.balance(account)).toMatchObject({ balance: 1_000_000, held: 0 });
    expect((await credits.reserve(account, { ...base, jobType: 'book', units: 500_000 })).reservation.amount).toBe(1_000_000);
  });

  it("another account's reservation is 404 and nothing changes (CRD-3); RLS hides it even from a query without a filter", async () => {
    const owner = await newAccount(testApp.deps.database, clock);
    const intruder = await newAccount(testApp.deps.database, clock);
    await credits.grant(owner, { amount: 10, source: 'admin' });
    const { reservation } = await credits.reserve(owner, { jobId: 'j', jobType: 'render', amount: 7, idempotencyKey: 'x' });
    const before = await snapshot(testApp.deps.database, owner);
    await expect(credits.confirm(intruder, reservation.id)).rejects.toMatchObject({ code: 'NOT_FOUND', statusCode: 404 });
    await expect(credits.release(intruder, reservation.id)).rejects.toMatchObject({ code: 'NOT_FOUND', statusCode: 404 });
    await expect(credits.confirm(owner, 'res_unknown')).rejects.toMatchObject({ statusCode: 404 });
    expect(await snapshot(testApp.deps.database, owner)).toEqual(before);
    const seen = await forAccount(testApp.deps.database, intruder, (tx) =>
      tx.query('SELECT 1 FROM credit_reservations UNION ALL SELECT 1 FROM credit_grants UNION ALL SELECT 1 FROM credit_ledger'),
    );
    expect(seen.rowCount).toBe(0);
  });

  it('grants the signup bonus once; 0 turns it off', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    expect(await credits.signupBonus(account, 0)).toBeNull();
    expect(await credits.signupBonus(account, 10)).toMatchObject({ source: 'signup_bonus', amount: 10 });
    expect(await credits.signupBonus(account, 10)).toBeNull();
    expect(await credits.balance(account)).toMatchObject({ balance: 10 });
    // Inside the caller's own transaction (the sign-up's): once as well, and rolled back with it.
    const other = await newAccount(testApp.deps.database, clock);
    await expect(
      asSystem(testApp.deps.database, async (tx) => {
        expect(await credits.signupBonusIn(tx, other, 7)).toMatchObject({ amount: 7 });
        throw new Error('sign-up failed later');
      }),
    ).rejects.toThrow('sign-up failed later');
    expect((await snapshot(testApp.deps.database, other)).grants).toEqual([]);
    await asSystem(testApp.deps.database, async (tx) => {
      expect(await credits.signupBonusIn(tx, other, 7)).toMatchObject({ amount: 7 });
      expect(await credits.signupBonusIn(tx, other, 7)).toBeNull();
    });
    expect(await credits.balance(other)).toMatchObject({ balance: 7 });
    await expect(credits.signupBonus(other, 1.5)).rejects.toThrow(RangeError);
  });

  it('expired grants stop counting and are not spent; a release into an expired grant lands there and stays unspendable', async () => {
    const localClock = new ManualClock('2026-09-01T00:00:00Z');
    const local = creditsOf(testApp, localClock);
    const account = await newAccount(testApp.deps.database, localClock);
    const expiring = await local.grant(account, { amount: 5, source: 'promotion', expiresAt: new Date('2026-09-01T01:00:00Z') });
    await local.grant(account, { amount: 5, source: 'admin' });
    const { reservation } = await local.reserve(account, { jobId: 'j', jobType: 'render', amount: 3, idempotencyKey: 'e' });
    localClock.set('2026-09-01T02:00:00Z');
    expect(await local.balance(account)).toMatchObject({ balance: 5, held: 3 });
    await local.release(account, reservation.id);
    expect(await local.balance(account)).toMatchObject({ balance: 5, held: 0 });
    expect((await snapshot(testApp.deps.database, account)).grants.find((grant) => grant.id === expiring.id)?.remaining).toBe(5);
    await expect(local.reserve(account, { jobId: 'j2', jobType: 'render', amount: 6, idempotencyKey: 'e2' })).rejects.toMatchObject({ statusCode: 402 });
    expect((await verifyCreditLedger(testApp.deps.database, { accountId: account })).valid).toBe(true);
  });

  it('the ledger pages newest first with the limit clamped to 1..100', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    for (let index = 0; index < 5; index += 1) await credits.grant(account, { amount: index + 1, source: 'admin' });
    const first = await credits.ledger(account, { limit: 2 });
    expect(first.items.map((entry) => entry.amount)).toEqual([5, 4]);
    const second = await credits.ledger(account, { limit: 2, cursor: first.nextCursor ?? '' });
    expect(second.items.map((entry) => entry.amount)).toEqual([3, 2]);
    const third = await credits.ledger(account, { limit: 2, cursor: second.nextCursor ?? '' });
    expect(third).toMatchObject({ nextCursor: null });
    expect(third.items.map((entry) => entry.amount)).toEqual([1]);
    expect((await credits.ledger(account, { limit: 0 })).items).toHaveLength(1);
    expect((await credits.ledger(account, { limit: 1000 })).items).toHaveLength(5);
    await expect(credits.ledger(account, { cursor: 'abc' })).rejects.toMatchObject({ statusCode: 400 });
  });

  it('the verifier and its command report an account whose ledger does not reconcile', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    await credits.grant(account, { amount: 10, source: 'admin' });
    // Tamper with a grant behind the service's back: credits appear from nowhere, with no ledger entry.
    await asSystem(testApp.deps.database, (tx) => tx.query('UPDATE credit_grants SET amount = amount + 1, remaining = remaining + 1 WHERE account_id = $1', [account]));
    const result = await verifyCreditLedger(testApp.deps.database);
    expect(result.valid).toBe(false);
    expect(result.mismatches.map((mismatch) => mismatch.accountId)).toEqual([account]);
    expect(result.mismatches[0]?.problems).toContain('ledger grants != grants');
    const output: string[] = [];
    expect(await runCreditsVerify(testApp.deps.database, { stdout: { write: (text: string) => output.push(text) } })).toBe(1);
    expect(output.join('')).toContain(account);
    // Put it back, and the whole database reconciles again.
    await asSystem(testApp.deps.database, (tx) => tx.query('UPDATE credit_grants SET remaining = remaining - 1, amount = amount - 1 WHERE account_id = $1', [account]));
    expect(await runCreditsVerify(testApp.deps.database, { stdout: { write: () => true }, json: true })).toBe(0);
  });

  it('the database refuses a negative remaining and ledger updates or deletes by the application role', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    await credits.grant(account, { amount: 1, source: 'admin' });
    await expect(
      forAccount(testApp.deps.database, account, (tx) => tx.query('UPDATE credit_grants SET remaining = -1 WHERE account_id = $1', [account])),
    ).rejects.toMatchObject({ code: '23514' });
    await expect(forAccount(testApp.deps.database, account, (tx) => tx.query('DELETE FROM credit_ledger WHERE account_id = $1', [account]))).rejects.toMatchObject({
      code: '42501',
    });
    await expect(forAccount(testApp.deps.database, account, (tx) => tx.query('UPDATE credit_ledger SET amount = 100 WHERE account_id = $1', [account]))).rejects.toMatchObject({
      code: '42501',
    });
  });
});
