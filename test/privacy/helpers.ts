import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import { hashPassword } from '../../src/modules/auth/passwords.js';
import { asSystem } from '../../src/platform/database/access.js';
import type { Database, Queryable } from '../../src/platform/database/database.js';
import type { SandboxHarness } from '../stripe/helpers.js';

export const PASSWORD = 'a sturdy passphrase 42';

/** Limits high enough that only the tests about limits meet one. */
export const GENEROUS_LIMITS = {
  'login.ip': { limit: 1_000, windowSeconds: 60 },
  'login.account': { limit: 1_000, windowSeconds: 3600 },
  'admin.ip': { limit: 1_000, windowSeconds: 3600 },
  'account_delete.user': { limit: 20, windowSeconds: 3600 },
  'usage_report.account': { limit: 1_000, windowSeconds: 3600 },
};

export interface Person {
  readonly email: string;
  readonly name: string;
  readonly ip: string;
  readonly accountId: string;
  readonly userId: string;
  readonly accessToken: string;
  readonly csrfToken: string;
  /** The session cookies as a Cookie header. */
  readonly cookie: string;
}

function cookieHeaderOf(setCookie: string | string[] | undefined): string {
  const list = Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : [];
  return list.map((line) => line.split(';', 1)[0]).join('; ');
}

export async function signUp(app: FastifyInstance, person: { email: string; name: string; ip: string }): Promise<Person> {
  const response = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    remoteAddress: person.ip,
    payload: { email: person.email, password: PASSWORD, name: person.name },
  });
  expect(response.statusCode, response.body).toBe(201);
  const body = response.json();
  return {
    ...person,
    accountId: body.account.id,
    userId: body.user.id,
    accessToken: body.accessToken,
    csrfToken: body.csrfToken,
    cookie: cookieHeaderOf(response.headers['set-cookie']),
  };
}

/**
 * An account the operator created (POST /api/admin/accounts with an Idempotency-Key, so the
 * answer naming the owner is kept), its owner's password set as the reset email would have
 * set it, logged in; and 10 credits granted by the operator, with a key too.
 */
export async function createdByOperator(
  app: FastifyInstance,
  database: Database,
  adminToken: string,
  person: { email: string; name: string; ip: string },
): Promise<Person> {
  const admin = { authorization: `Bearer ${adminToken}` };
  const created = await app.inject({
    method: 'POST',
    url: '/api/admin/accounts',
    headers: { ...admin, 'idempotency-key': `create-${person.email}` },
    payload: { email: person.email, name: person.name },
  });
  expect(created.statusCode, created.body).toBe(201);
  const { account, user } = created.json() as { account: { id: string }; user: { id: string } };
  const passwordHash = await hashPassword(PASSWORD);
  await asSystem(database, (tx) => tx.query('UPDATE users SET password_hash = $2 WHERE id = $1', [user.id, passwordHash]));
  const granted = await app.inject({
    method: 'POST',
    url: `/api/admin/accounts/${account.id}/credits`,
    headers: { ...admin, 'idempotency-key': `grant-${account.id}` },
    payload: { amount: 10, source: 'admin' },
  });
  expect(granted.statusCode, granted.body).toBe(201);
  const login = await logIn(app, person);
  expect(login.statusCode, login.body).toBe(200);
  return {
    ...person,
    accountId: account.id,
    userId: user.id,
    accessToken: login.json().accessToken,
    csrfToken: login.json().csrfToken,
    cookie: cookieHeaderOf(login.headers['set-cookie']),
  };
}

export function bearer(person: Person): Record<string, string> {
  return { authorization: `Bearer ${person.accessToken}` };
}

export function logIn(app: FastifyInstance, person: Pick<Person, 'email' | 'ip'>, password = PASSWORD) {
  return app.inject({ method: 'POST', url: '/auth/login', remoteAddress: person.ip, payload: { email: person.email, password } });
}

/** Some of everything: an API key (labelled with the person's name), usage, a confirmed credit reservation. */
export async function useTheAccount(app: FastifyInstance, person: Person): Promise<{ apiKey: string; keyId: string; prefix: string }> {
  const key = await app.inject({ method: 'POST', url: '/api/keys', remoteAddress: person.ip, headers: bearer(person), payload: { label: `${person.name}'s laptop` } });
  expect(key.statusCode, key.body).toBe(201);
  const usage = await app.inject({
    method: 'POST',
    url: '/api/usage',
    remoteAddress: person.ip,
    headers: bearer(person),
    payload: { events: [{ idempotencyKey: `u-${person.userId}`, jobType: 'story', description: `A story for ${person.name} <${person.email}>` }] },
  });
  expect(usage.statusCode, usage.body).toBe(202);
  const reserved = await app.inject({
    method: 'POST',
    url: '/api/credits/reservations',
    remoteAddress: person.ip,
    headers: bearer(person),
    payload: { jobId: `job-${person.userId}`, jobType: 'story', units: 1, idempotencyKey: `r-${person.userId}` },
  });
  expect(reserved.statusCode, reserved.body).toBe(201);
  const confirmed = await app.inject({
    method: 'POST',
    url: `/api/credits/reservations/${reserved.json().reservation.id}/confirm`,
    remoteAddress: person.ip,
    headers: bearer(person),
  });
  expect(confirmed.statusCode, confirmed.body).toBe(200);
  // Seen through the key once, so a cache may hold it.
  const throughKey = await app.inject({ method: 'GET', url: '/api/account', headers: { 'x-api-key': key.json().secret } });
  expect(throughKey.statusCode).toBe(200);
  return { apiKey: key.json().secret, keyId: key.json().key.id, prefix: key.json().key.prefix };
}

/**
 * The account's Stripe customer with a paid, active monthly subscription and a partly
 * refunded charge, stored on the account as the billing module will store it.
 */
export async function giveStripeCustomer(harness: SandboxHarness, database: Database, person: Person): Promise<{ customerId: string; subscriptionId: string; chargeId: string }> {
  const { gateway } = harness;
  const product = await gateway.ensureProduct({ id: 'bulwark_plan_STARTER', name: 'Starter' });
  const price = await gateway.ensurePrice({ lookupKey: 'plan_STARTER_month', productId: product.id, unitAmount: 1500, currency: 'usd', recurring: { interval: 'month' } });
  const customer = await gateway.createCustomer(person.accountId, { email: person.email, name: person.name, metadata: { accountId: person.accountId } });
  await asSystem(database, (tx) => tx.query('UPDATE accounts SET stripe_customer_id = $2 WHERE id = $1', [person.accountId, customer.id]));
  const session = await gateway.createCheckoutSession(`chk_${person.accountId}`, {
    mode: 'subscription',
    customer: customer.id,
    client_reference_id: person.accountId,
    line_items: [{ price: price.id, quantity: 1 }],
    subscription_data: { metadata: { accountId: person.accountId } },
    success_url: 'http://localhost:3000/billing/success',
  });
  const paid = await harness.control<{ status: string; subscription: string }>('POST', `/_sandbox/checkout/${session.id}/pay`, { card: '4242 4242 4242 4242', name: person.name });
  expect(paid.body.status).toBe('complete');
  const charges = await gateway.listCharges({ customer: customer.id });
  const chargeId = charges.data[0]?.id ?? '';
  await gateway.createRefund(`refund_${person.accountId}`, { charge: chargeId, amount: 500 });
  return { customerId: customer.id, subscriptionId: paid.body.subscription, chargeId };
}

/**
 * What the webhook intake and an operator's refund (PAY-7) would have recorded locally for
 * the account: a paid subscription invoice refunded in part (with its refund row, the
 * operator's reason naming the person) and a credit pack. The financial records a deletion must keep.
 */
export async function givePaymentsAndRefund(database: Database, person: Person, stripe: { customerId: string; subscriptionId: string; chargeId: string }): Promise<void> {
  const tag = person.accountId.replace(/[^A-Za-z0-9]/g, '');
  await asSystem(database, async (tx) => {
    await tx.query(
      `INSERT INTO payments (id, account_id, kind, stripe_payment_intent_id, stripe_charge_id, stripe_subscription_id, amount_cents, currency, status,
                             amount_refunded_cents, created_at, updated_at)
       VALUES ($1, $2, 'subscription_invoice', $3, $4, $5, 1500, 'usd', 'succeeded', 500, now(), now())`,
      [`pay_${tag}_invoice`, person.accountId, `pi_${tag}_invoice`, stripe.chargeId, stripe.subscriptionId],
    );
    await tx.query(
      `INSERT INTO payments (id, account_id, kind, stripe_payment_intent_id, credit_pack_id, amount_cents, currency, status, created_at, updated_at)
       VALUES ($1, $2, 'credit_pack', $3, 'pack_100', 1000, 'usd', 'succeeded', now(), now())`,
      [`pay_${tag}_pack`, person.accountId, `pi_${tag}_pack`],
    );
    await tx.query(
      `INSERT INTO refunds (id, account_id, payment_id, idempotency_key, request_hash, requested_amount_cents, amount_cents, currency, reason,
                            stripe_reason, status, stripe_refund_id, actor_type, actor_id, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, 500, 500, 'usd', $7, NULL, 'succeeded', $6, 'admin', 'operator', now(), now())`,
      [`rfd_${tag}`, person.accountId, `pay_${tag}_invoice`, `refund-${tag}`, 'c'.repeat(64), `re_${tag}`, `goodwill after an outage, asked by ${person.name}`],
    );
  });
}

/** The account's payments and refunds, amounts and all, with their totals. */
export async function financialRecordsOf(database: Database, accountId: string) {
  return asSystem(database, async (tx) => {
    const payments = await tx.query<{ id: string; kind: string; amount_cents: string; amount_refunded_cents: string; currency: string; status: string }>(
      'SELECT id, kind, amount_cents::text, amount_refunded_cents::text, currency, status FROM payments WHERE account_id = $1 ORDER BY id',
      [accountId],
    );
    const refunds = await tx.query<{ id: string; payment_id: string; amount_cents: string; currency: string; status: string }>(
      'SELECT id, payment_id, amount_cents::text, currency, status FROM refunds WHERE account_id = $1 ORDER BY id',
      [accountId],
    );
    const totals = await tx.query<{ paid: string; refunded: string; refunds: string }>(
      `SELECT (SELECT coalesce(sum(amount_cents), 0) FROM payments WHERE account_id = $1)::text AS paid,
              (SELECT coalesce(sum(amount_refunded_cents), 0) FROM payments WHERE account_id = $1)::text AS refunded,
              (SELECT coalesce(sum(amount_cents), 0) FROM refunds WHERE account_id = $1 AND status = 'succeeded')::text AS refunds`,
      [accountId],
    );
    return { payments: payments.rows, refunds: refunds.rows, totals: totals.rows[0] };
  });
}

export interface ColumnMatch {
  readonly table: string;
  readonly column: string;
  readonly needle: string;
  readonly rows: number;
}

/**
 * Every text, varchar, char, json and jsonb column (and arrays of them) of every table in
 * the public schema, searched for each needle (case-insensitive). Fails if some table of
 * the schema was not readable, so nothing is left out silently.
 */
export async function scanTextColumns(tx: Queryable, needles: readonly string[]): Promise<ColumnMatch[]> {
  const columns = await tx.query<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = 'public'
        AND (data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')
             OR (data_type = 'ARRAY' AND udt_name IN ('_text', '_varchar', '_bpchar', '_json', '_jsonb')))
      ORDER BY table_name, column_name`,
  );
  const tables = await tx.query<{ tablename: string }>(`SELECT tablename FROM pg_tables WHERE schemaname = 'public'`);
  const seen = await tx.query<{ table_name: string }>(`SELECT DISTINCT table_name FROM information_schema.columns WHERE table_schema = 'public'`);
  expect(seen.rows.map((row) => row.table_name).sort()).toEqual(tables.rows.map((row) => row.tablename).sort());
  expect(columns.rows.length).toBeGreaterThan(20);
  const matches: ColumnMatch[] = [];
  for (const { table_name: table, column_name: column } of columns.rows) {
    for (const needle of needles) {
      const { rows } = await tx.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${table}" WHERE strpos(lower("${column}"::text), lower($1)) > 0`,
        [needle],
      );
      const found = rows[0]?.n ?? 0;
      if (found > 0) matches.push({ table, column, needle, rows: found });
    }
  }
  return matches;
}

export { readOutbox, type OutboxMessage } from '../helpers/outbox.js';
