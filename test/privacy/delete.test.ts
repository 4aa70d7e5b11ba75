import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../../src/modules/audit/audit.verify.js';
import { verifyCreditLedger } from '../../src/modules/credits/credits.verify.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { startSandboxHarness, type SandboxHarness } from '../stripe/helpers.js';
import {
  bearer,
  createdByOperator,
  financialRecordsOf,
  GENEROUS_LIMITS,
  givePaymentsAndRefund,
  giveStripeCustomer,
  logIn,
  PASSWORD,
  readOutbox,
  scanTextColumns,
  signUp,
  useTheAccount,
  type Person,
} from './helpers.js';

const SERVICE_SECRET = 'service-shared-secret-for-privacy-tests-0123456789';
const PROVIDER_SECRET = 'provider-jwt-secret-for-privacy-tests-0123456789';

/** GDPR-2 (and GDPR-3 for the logs) on the embedded database, with a Stripe sandbox. */
describe('account deletion (GDPR-2)', () => {
  let harness: SandboxHarness;
  let testApp: TestApp;
  const clock = new ManualClock(new Date());

  beforeAll(async () => {
    harness = await startSandboxHarness();
    testApp = await createTestApp({
      clock,
      env: {
        STRIPE_API_URL: harness.sandbox.url,
        STRIPE_MAX_NETWORK_RETRIES: '0',
        RATE_LIMITS: JSON.stringify({ ...GENEROUS_LIMITS, 'account_delete.user': { limit: 3, windowSeconds: 3600 } }),
        API_SHARED_SECRET: SERVICE_SECRET,
        EXTERNAL_JWT_SECRET: PROVIDER_SECRET,
      },
    });
  });
  afterAll(async () => {
    await testApp?.close();
    await harness?.close();
  });

  const deleteAccount = (person: Person, payload: Record<string, unknown>, headers: Record<string, string> = bearer(person)) =>
    testApp.app.inject({ method: 'POST', url: '/api/account/delete', remoteAddress: person.ip, headers, payload });

  const count = async (sql: string, params: unknown[]) =>
    (await asSystem(testApp.deps.database, (tx) => tx.query<{ n: number }>(sql, params))).rows[0]?.n ?? -1;

  it('refuses a missing password (400 naming the field) and a wrong one (403), and changes nothing', async () => {
    const eve = await signUp(testApp.app, { email: 'eve@example.com', name: 'Eve Wrong', ip: '203.0.113.30' });
    const { apiKey } = await useTheAccount(testApp.app, eve);
    const stripe = await giveStripeCustomer(harness, testApp.deps.database, eve);

    const missing = await deleteAccount(eve, {});
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error.details).toEqual([{ field: 'password', message: 'is required' }]);
    const wrong = await deleteAccount(eve, { password: `${PASSWORD}!` });
    expect(wrong.statusCode).toBe(403);
    expect(wrong.json().error.details).toEqual([{ field: 'password', message: 'is not correct' }]);
    const unknownField = await deleteAccount(eve, { password: PASSWORD, confirm: true });
    expect(unknownField.statusCode).toBe(400);

    expect((await logIn(testApp.app, eve)).statusCode).toBe(200);
    expect((await testApp.app.inject({ method: 'GET', url: '/auth/me', headers: bearer(eve) })).statusCode).toBe(200);
    expect((await testApp.app.inject({ method: 'GET', url: '/api/account', headers: { 'x-api-key': apiKey } })).statusCode).toBe(200);
    expect(await harness.gateway.retrieveCustomer(stripe.customerId)).toMatchObject({ id: stripe.customerId, email: eve.email });
    expect((await harness.gateway.retrieveSubscription(stripe.subscriptionId)).status).toBe('active');
    expect(await count('SELECT count(*)::int AS n FROM account_deletions WHERE account_id = $1', [eve.accountId])).toBe(0);
    expect(await count(`SELECT count(*)::int AS n FROM users WHERE id = $1 AND email = $2 AND status = 'active'`, [eve.userId, eve.email])).toBe(1);
    expect(await count(`SELECT count(*)::int AS n FROM audit_log WHERE event = 'account.deletion_refused' AND account_id = $1`, [eve.accountId])).toBe(1);
  });

  it('allows a few attempts per user an hour (account_delete.user), then answers 429', async () => {
    const mallory = await signUp(testApp.app, { email: 'mallory@example.com', name: 'Mallory Guess', ip: '203.0.113.31' });
    for (let attempt = 1; attempt <= 3; attempt += 1) expect((await deleteAccount(mallory, { password: `guess ${attempt} of many` })).statusCode).toBe(403);
    const limited = await deleteAccount(mallory, { password: PASSWORD });
    expect(limited.statusCode).toBe(429);
    expect(await count(`SELECT count(*)::int AS n FROM accounts WHERE id = $1 AND status = 'active'`, [mallory.accountId])).toBe(1);
  });

  it('follows the login lockout: once the email is locked, even the right password is refused (429) and nothing changes', async () => {
    const lou = await signUp(testApp.app, { email: 'lou@example.com', name: 'Lou Locked', ip: '203.0.113.32' });
    for (let attempt = 1; attempt <= 5; attempt += 1) expect((await logIn(testApp.app, lou, `wrong password ${attempt}!`)).statusCode).toBe(401);
    const locked = await deleteAccount(lou, { password: PASSWORD });
    expect(locked.statusCode).toBe(429);
    expect(locked.headers['retry-after']).toBeDefined();
    expect(await count(`SELECT count(*)::int AS n FROM accounts WHERE id = $1 AND status = 'active'`, [lou.accountId])).toBe(1);
    expect(await count('SELECT count(*)::int AS n FROM account_deletions WHERE account_id = $1', [lou.accountId])).toBe(0);
  });

  it('after delete: login, token, refresh and key are refused, the Stripe customer is gone, no email or name is left, the chain and the ledger verify, payments and refunds are kept', async () => {
    // Typed at a failed login before the account existed: an audit entry naming no account.
    expect((await logIn(testApp.app, { email: 'grace@example.com', ip: '198.51.100.40' })).statusCode).toBe(401);
    // Created by the operator, whose stored idempotent answers name her (and hold her email and name).
    const grace = await createdByOperator(testApp.app, testApp.deps.database, testApp.config.secrets.adminApiToken ?? '', {
      email: 'grace@example.com',
      name: 'Grace Hopper',
      ip: '203.0.113.40',
    });
    const { apiKey } = await useTheAccount(testApp.app, grace);
    // A request of her own with an Idempotency-Key: its answer is kept under her account's scope.
    const reported = await testApp.app.inject({
      method: 'POST',
      url: '/api/usage',
      remoteAddress: grace.ip,
      headers: { ...bearer(grace), 'idempotency-key': 'grace-usage-2' },
      payload: { events: [{ idempotencyKey: `u2-${grace.userId}`, jobType: 'story', description: `Another story for ${grace.name}` }] },
    });
    expect(reported.statusCode, reported.body).toBe(202);
    const stripe = await giveStripeCustomer(harness, testApp.deps.database, grace);
    await givePaymentsAndRefund(testApp.deps.database, grace, stripe);
    const idempotentAnswers = (accountId: string) =>
      count(
        `SELECT count(*)::int AS n FROM idempotency_requests WHERE scope = 'account:' || $1::text OR strpos(response_body, '"' || $1::text || '"') > 0`,
        [accountId],
      );
    // Hers, and the operator's creation (the grant's answer names neither her nor her account).
    expect(await idempotentAnswers(grace.accountId)).toBe(2);
    const moneyBefore = await financialRecordsOf(testApp.deps.database, grace.accountId);
    expect(moneyBefore.payments).toHaveLength(2);
    expect(moneyBefore.refunds).toEqual([expect.objectContaining({ amount_cents: '500', status: 'succeeded' })]);
    expect(moneyBefore.totals).toEqual({ paid: '2500', refunded: '500', refunds: '500' });
    const exported = await testApp.app.inject({ method: 'GET', url: '/api/account/export', remoteAddress: grace.ip, headers: bearer(grace) });
    expect(exported.statusCode).toBe(200);
    const needles = [grace.email, grace.name];
    // The scan can find them: before the deletion they are in several tables.
    const before = await asSystem(testApp.deps.database, (tx) => scanTextColumns(tx, needles));
    expect(before.map((match) => `${match.table}.${match.column}`)).toEqual(
      expect.arrayContaining([
        'users.email',
        'users.name',
        'accounts.name',
        'api_keys.label',
        'usage_reports.description',
        'audit_log.personal',
        'refunds.reason',
        'idempotency_requests.response_body',
      ]),
    );
    const financial = 'SELECT (SELECT count(*) FROM credit_ledger WHERE account_id = $1) + (SELECT count(*) FROM credit_grants WHERE account_id = $1) + (SELECT count(*) FROM usage_reports WHERE account_id = $1) AS n';
    const financialRowsBefore = await count(financial, [grace.accountId]);

    // Cookie-authenticated, as a browser would: with the CSRF token.
    const response = await deleteAccount(grace, { password: PASSWORD }, { cookie: grace.cookie, 'x-csrf-token': grace.csrfToken });
    expect(response.statusCode, response.body).toBe(202);
    expect(response.json()).toEqual({ accountId: grace.accountId, status: 'deleted' });
    const cleared = ([] as string[]).concat(response.headers['set-cookie'] ?? []);
    expect(cleared.filter((line) => /^(access_token|refresh_token|csrf_token)=;/.test(line))).toHaveLength(3);

    // Until the deletion email is sent (MAIL-1, queued in the erasure's transaction), its
    // address is only in that email's delivery; once sent, the delivery forgets it.
    expect(await asSystem(testApp.deps.database, (tx) => scanTextColumns(tx, [grace.email]))).toEqual([
      expect.objectContaining({ table: 'notification_deliveries', column: 'recipient', rows: 1 }),
    ]);
    await testApp.deps.notifications.deliverDue();
    // No email or name left in any text column of any table.
    expect(await asSystem(testApp.deps.database, (tx) => scanTextColumns(tx, needles))).toEqual([]);

    expect(await idempotentAnswers(grace.accountId)).toBe(0);
    expect(await count(`SELECT count(*)::int AS n FROM refunds WHERE account_id = $1 AND reason = 'erased'`, [grace.accountId])).toBe(1);

    // Nothing of the account authenticates any more.
    const deletedAt = clock.now();
    clock.advance(1_000);
    expect((await logIn(testApp.app, grace)).statusCode).toBe(401);
    expect((await testApp.app.inject({ method: 'GET', url: '/auth/me', headers: bearer(grace) })).statusCode).toBe(401);
    const refresh = await testApp.app.inject({ method: 'POST', url: '/auth/refresh', headers: { cookie: grace.cookie, 'x-csrf-token': grace.csrfToken } });
    expect(refresh.statusCode).toBe(401);
    expect((await testApp.app.inject({ method: 'GET', url: '/api/account', headers: { 'x-api-key': apiKey } })).statusCode).toBe(401);
    expect((await testApp.app.inject({ method: 'GET', url: '/api/account/export', headers: bearer(grace) })).statusCode).toBe(401);

    // That failed login typed the email anew, and the audit trail records typed emails of
    // failed logins (AUD-1) as it does for any stranger's: that entry, made after the
    // deletion and naming no account, is the only place the address now appears.
    const typedAgain = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ event: string; account_id: string | null; at: Date }>(`SELECT event, account_id, at FROM audit_log WHERE personal ->> 'email' = $1`, [grace.email]),
    );
    expect(typedAgain.rows).toEqual([{ event: 'auth.login_failed', account_id: null, at: expect.any(Date) }]);
    expect(typedAgain.rows[0]!.at.getTime()).toBeGreaterThan(deletedAt.getTime());
    expect(await asSystem(testApp.deps.database, (tx) => scanTextColumns(tx, [grace.name]))).toEqual([]);

    // Stripe: the subscription canceled, the customer deleted.
    expect((await harness.gateway.retrieveSubscription(stripe.subscriptionId)).status).toBe('canceled');
    await expect(harness.gateway.retrieveCustomer(stripe.customerId)).rejects.toMatchObject({ code: 'resource_missing' });

    // The chain and the ledger still verify.
    expect(await verifyAuditChain(testApp.deps.database)).toMatchObject({ valid: true });
    const ledger = await verifyCreditLedger(testApp.deps.database, { accountId: grace.accountId });
    expect(ledger).toMatchObject({ valid: true, checked: 1 });
    expect(await count(financial, [grace.accountId])).toBe(financialRowsBefore);
    // Her payments and the refund are kept with their amounts (2500 paid, 500 of it refunded), about nobody now.
    expect(await financialRecordsOf(testApp.deps.database, grace.accountId)).toEqual(moneyBefore);

    // IPs recorded before are keyed pseudonyms; the deletion itself is audited without one.
    const entries = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ event: string; ip: string | null; erased: boolean }>(
        `SELECT event, ip, erased_at IS NOT NULL AS erased FROM audit_log WHERE account_id = $1 ORDER BY seq`,
        [grace.accountId],
      ),
    );
    const events = entries.rows.map((row) => row.event);
    expect(events).toEqual(expect.arrayContaining(['account.created', 'account.export', 'account.deletion_requested', 'account.deleted']));
    const upToDeletion = entries.rows.slice(0, events.indexOf('account.deleted'));
    expect(upToDeletion.every((row) => row.erased && (row.ip === null || /^pse_[0-9a-f]{32}$/.test(row.ip)))).toBe(true);
    expect(entries.rows.find((row) => row.event === 'account.deleted')).toMatchObject({ ip: null, erased: false });

    // The export of the old id finds nothing personal.
    const old = await testApp.deps.privacy.buildExport(grace.accountId, grace.userId);
    expect(old?.user).toMatchObject({ email: null, name: null, status: 'deleted', hasPassword: false });
    expect(old?.billing.customers).toEqual([]);
    const oldText = JSON.stringify(old);
    for (const personal of [grace.email, grace.name, grace.ip, '198.51.100.40']) expect(oldText).not.toContain(personal);

    // The deletion email: plain text, to the address that was erased, nothing to click.
    const mail = readOutbox(testApp.config.mail.outboxDir).filter((message) => message.kind === 'account_deleted');
    expect(mail).toEqual([expect.objectContaining({ to: grace.email, subject: 'Your Bulwark account has been deleted' })]);
    expect(mail[0]?.text).not.toMatch(/https?:|token/i);

    // The address is free again: a new sign-up gets a new, empty account.
    const again = await signUp(testApp.app, { email: grace.email, name: 'Grace Again', ip: '203.0.113.41' });
    expect(again.accountId).not.toBe(grace.accountId);
  });

  it('when Stripe cannot be reached: answers pending, refuses every credential at once, erases nothing; the job finishes once Stripe answers', async () => {
    const ivy = await signUp(testApp.app, { email: 'ivy@example.com', name: 'Ivy Later', ip: '203.0.113.50' });
    const { apiKey } = await useTheAccount(testApp.app, ivy);
    const stripe = await giveStripeCustomer(harness, testApp.deps.database, ivy);
    // Two dropped connections: the client retries a closed connection once even without retries.
    await harness.control('POST', '/_sandbox/faults', { when: 'before', method: 'GET', pathPrefix: '/v1/customers/', count: 2 });

    const response = await deleteAccount(ivy, { password: PASSWORD });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({ accountId: ivy.accountId, status: 'pending' });
    expect((await logIn(testApp.app, ivy)).statusCode).toBe(401);
    expect((await testApp.app.inject({ method: 'GET', url: '/auth/me', headers: bearer(ivy) })).statusCode).toBe(401);
    expect((await testApp.app.inject({ method: 'GET', url: '/api/account', headers: { 'x-api-key': apiKey } })).statusCode).toBe(401);
    // Nothing erased while the subscription may still bill.
    expect((await harness.gateway.retrieveSubscription(stripe.subscriptionId)).status).toBe('active');
    expect(await count('SELECT count(*)::int AS n FROM users WHERE id = $1 AND email = $2', [ivy.userId, ivy.email])).toBe(1);
    const pending = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ status: string; attempts: number; last_error: string }>('SELECT status, attempts, last_error FROM account_deletions WHERE account_id = $1', [ivy.accountId]),
    );
    expect(pending.rows[0]).toMatchObject({ status: 'pending', attempts: 1, last_error: expect.stringMatching(/^StripeConnectionError/) });
    expect(readOutbox(testApp.config.mail.outboxDir).some((message) => message.to === ivy.email && message.kind === 'account_deleted')).toBe(false);

    // Not due yet: the job leaves it alone.
    expect(await testApp.deps.privacy.processDueDeletions()).toEqual({ completed: 0, pending: 0 });
    clock.advance(61_000);
    expect(await testApp.deps.privacy.processDueDeletions()).toEqual({ completed: 1, pending: 0 });
    await testApp.deps.notifications.deliverDue();
    expect((await harness.gateway.retrieveSubscription(stripe.subscriptionId)).status).toBe('canceled');
    await expect(harness.gateway.retrieveCustomer(stripe.customerId)).rejects.toMatchObject({ code: 'resource_missing' });
    expect(await asSystem(testApp.deps.database, (tx) => scanTextColumns(tx, [ivy.email, ivy.name]))).toEqual([]);
    expect(readOutbox(testApp.config.mail.outboxDir).filter((message) => message.to === ivy.email && message.kind === 'account_deleted')).toHaveLength(1);
    // Done is done: running again changes nothing and sends nothing.
    expect(await testApp.deps.privacy.completeDeletion(ivy.accountId)).toBe('already-completed');
  });

  it("lets a trusted service delete its user's account without a password, and forgets the external identity", async () => {
    const token = await new SignJWT({ sub: 'idp-user-77' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuedAt(Math.floor(clock.now().getTime() / 1000))
      .setExpirationTime(Math.floor(clock.now().getTime() / 1000) + 600)
      .sign(new TextEncoder().encode(PROVIDER_SECRET));
    const service = { 'x-service-secret': SERVICE_SECRET, authorization: `Bearer ${token}` };
    const first = await testApp.app.inject({ method: 'GET', url: '/api/account', headers: service });
    expect(first.statusCode, first.body).toBe(200);
    const accountId = first.json().account.id as string;

    const withPassword = await testApp.app.inject({ method: 'POST', url: '/api/account/delete', headers: service, payload: { password: PASSWORD } });
    expect(withPassword.statusCode).toBe(400);
    const deleted = await testApp.app.inject({ method: 'POST', url: '/api/account/delete', headers: service });
    expect(deleted.statusCode, deleted.body).toBe(202);
    expect(deleted.json()).toEqual({ accountId, status: 'deleted' });
    expect(await count('SELECT count(*)::int AS n FROM external_identities WHERE subject = $1', ['idp-user-77'])).toBe(0);
    expect(await count(`SELECT count(*)::int AS n FROM accounts WHERE id = $1 AND status = 'deleted'`, [accountId])).toBe(1);
    // The same person coming back through the service starts afresh.
    const later = await testApp.app.inject({ method: 'GET', url: '/api/account', headers: service });
    expect(later.statusCode).toBe(200);
    expect(later.json().account.id).not.toBe(accountId);
  });

  it('refuses API keys (403): a machine credential cannot delete an account', async () => {
    const kim = await signUp(testApp.app, { email: 'kim@example.com', name: 'Kim Key', ip: '203.0.113.60' });
    const { apiKey } = await useTheAccount(testApp.app, kim);
    const response = await deleteAccount(kim, { password: PASSWORD }, { 'x-api-key': apiKey });
    expect(response.statusCode).toBe(403);
    expect(await count(`SELECT count(*)::int AS n FROM accounts WHERE id = $1 AND status = 'active'`, [kim.accountId])).toBe(1);
  });

  it('writes no email, name or IP to the logs through sign-up, login, usage, credits, export and delete (GDPR-3)', async () => {
    const from = testApp.logs.lines.length;
    const lee = await signUp(testApp.app, { email: 'lee.logs@example.com', name: 'Lee Logline', ip: '203.0.113.77' });
    expect((await logIn(testApp.app, lee)).statusCode).toBe(200);
    expect((await logIn(testApp.app, lee, 'not the password at all')).statusCode).toBe(401);
    await useTheAccount(testApp.app, lee);
    await giveStripeCustomer(harness, testApp.deps.database, lee);
    expect((await testApp.app.inject({ method: 'GET', url: '/api/account/export', remoteAddress: lee.ip, headers: bearer(lee) })).statusCode).toBe(200);
    expect((await deleteAccount(lee, { password: PASSWORD })).statusCode).toBe(202);
    expect((await testApp.app.inject({ method: 'GET', url: '/auth/me', remoteAddress: lee.ip, headers: bearer(lee) })).statusCode).toBe(401);

    const lines = testApp.logs.lines.slice(from);
    // The flow was logged (one line per request and more), so the search below had something to search.
    expect(lines.filter((line) => line.includes('request completed')).length).toBeGreaterThanOrEqual(10);
    expect(lines.some((line) => line.includes('/api/account/delete'))).toBe(true);
    expect(lines.some((line) => line.includes(lee.accountId))).toBe(true);
    const text = lines.join('\n').toLowerCase();
    for (const personal of [lee.email, 'lee.logs', lee.name, 'logline', lee.ip]) expect(text).not.toContain(personal.toLowerCase());
  });
});
