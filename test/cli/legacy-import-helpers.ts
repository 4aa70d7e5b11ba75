import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import type { Queryable } from '../../src/platform/database/database.js';
import { everyRow } from './helpers.js';

/** The committed sample of a legacy system's export (docs/legacy-import.md). */
export const SAMPLE_FOLDER = path.resolve(import.meta.dirname, '../fixtures/legacy-import');
/** The password behind the sample's one argon2id hash that is as strong as ours (u_1001, Ada). */
export const ADA_PASSWORD = 'legacy password for Ada 1';

/** The sample set copied into `folder`, with `extra` lines appended to each named file. */
export function legacySet(folder: string, extra: Partial<Record<'users.jsonl' | 'subscriptions.jsonl' | 'payments.jsonl', readonly string[]>> = {}): string {
  mkdirSync(folder, { recursive: true });
  for (const file of readdirSync(SAMPLE_FOLDER)) copyFileSync(path.join(SAMPLE_FOLDER, file), path.join(folder, file));
  for (const [file, lines] of Object.entries(extra)) {
    const target = path.join(folder, file);
    writeFileSync(target, `${readFileSync(target, 'utf8')}${lines.join('\n')}\n`);
  }
  return folder;
}

const at = '2024-01-05T15:30:00Z';

/**
 * Bad records after the sample's own lines (users.jsonl has 6 lines, payments.jsonl 4,
 * subscriptions.jsonl 3), and the line and field each must be reported with. Some fail
 * their checks before anything is written; others only at the database, after the
 * record's first rows were written in its transaction (its account, its user).
 */
export const MALFORMED = {
  'users.jsonl': [
    '{"id":"u_2001","email":"not-an-email"}',
    '{"id":"u_2002","email":"ADA@example.com","name":"Partial Person"}',
    '{"id":"u_2003","email":"expired@example.com","name":"Partial Person","credits":10,"credits_expire_at":"2001-01-01T00:00:00Z"}',
    '{"id":"u_2004", "email": ',
    '{"id":"u_2005","email":"taken-customer@example.com","name":"Partial Person","stripe_customer_id":"cus_LegacyAda01"}',
    '{"id":"u_2006","email":"orphan@example.com","owner_id":"u_0000"}',
  ],
  'subscriptions.jsonl': [
    `{"id":"s_9","user_id":"u_1005","stripe_subscription_id":"sub_NoCustomer","status":"active","plan":"PRO","created_at":"${at}"}`,
    `{"id":"s_10","user_id":"u_1003","stripe_subscription_id":"sub_LegacyAda01","status":"active","plan":"PRO","created_at":"${at}"}`,
  ],
  'payments.jsonl': [
    `{"id":"p_9","user_id":"u_1001","amount_cents":12.5,"currency":"usd","status":"succeeded","created_at":"${at}"}`,
    `{"id":"p_10","user_id":"u_1001","amount_cents":100,"currency":"usd","status":"succeeded","stripe_charge_id":"ch_LegacyAda01","created_at":"${at}"}`,
    `{"id":"p_11","user_id":"u_9999","amount_cents":100,"currency":"usd","status":"succeeded","created_at":"${at}"}`,
  ],
} as const;

export const MALFORMED_PROBLEMS = [
  { file: 'users.jsonl', line: 7, id: 'u_2001', field: 'email', outcome: 'rejected' },
  { file: 'users.jsonl', line: 8, id: 'u_2002', field: 'email', outcome: 'rejected' },
  { file: 'users.jsonl', line: 9, id: 'u_2003', field: 'credits_expire_at', outcome: 'rejected' },
  { file: 'users.jsonl', line: 10, id: null, field: null, outcome: 'rejected' },
  { file: 'users.jsonl', line: 11, id: 'u_2005', field: 'stripe_customer_id', outcome: 'rejected' },
  { file: 'users.jsonl', line: 12, id: 'u_2006', field: 'owner_id', outcome: 'rejected' },
  { file: 'subscriptions.jsonl', line: 4, id: 's_9', field: 'user_id', outcome: 'rejected' },
  { file: 'subscriptions.jsonl', line: 5, id: 's_10', field: 'stripe_subscription_id', outcome: 'rejected' },
  { file: 'payments.jsonl', line: 5, id: 'p_9', field: 'amount_cents', outcome: 'rejected' },
  { file: 'payments.jsonl', line: 6, id: 'p_10', field: 'stripe_charge_id', outcome: 'rejected' },
  { file: 'payments.jsonl', line: 7, id: 'p_11', field: 'user_id', outcome: 'rejected' },
];

export interface Totals {
  imported: number;
  unchanged: number;
  changed: number;
  rejected: number;
}

export interface ImportJson {
  ok: boolean;
  runId: string;
  totals: Totals;
  passwordsDropped: number;
  creditsGranted: number;
  problems: { file: string; line: number; id: string | null; field: string | null; outcome: string; message: string }[];
}

/** Every row of every table, with the audit trail apart: each run appends its own entry, and nothing else may change. */
export async function snapshot(database: Queryable): Promise<{ data: Record<string, string[]>; audit: string[] }> {
  const { audit_log: audit = [], audit_chain_head: _head, ...data } = await everyRow(database);
  return { data, audit };
}

/** What the sample set becomes, checked row by row (the same on PGlite and PostgreSQL). */
export async function expectSampleImported(database: Queryable): Promise<void> {
  const { rows: accounts } = await database.query<{ owner: string; plan: string; stripe_customer_id: string | null; credits: number; members: string[] }>(
    `SELECT owner.email AS owner, a.plan, a.stripe_customer_id,
            coalesce((SELECT sum(g.remaining) FROM credit_grants g WHERE g.account_id = a.id), 0)::int AS credits,
            (SELECT array_agg(u.email ORDER BY u.email) FROM users u WHERE u.account_id = a.id AND u.role = 'member') AS members
       FROM accounts a JOIN users owner ON owner.account_id = a.id AND owner.role = 'owner'
      ORDER BY owner.email`,
  );
  expect(accounts).toEqual([
    { owner: 'ada@example.com', plan: 'PRO', stripe_customer_id: 'cus_LegacyAda01', credits: 120, members: ['grace@example.com'] },
    { owner: 'linus@example.com', plan: 'STARTER', stripe_customer_id: 'cus_LegacyLinus02', credits: 0, members: null },
    { owner: 'margaret@example.com', plan: 'FREE', stripe_customer_id: null, credits: 50, members: ['mary@example.com'] },
  ]);
  const { rows: passwords } = await database.query<{ email: string; kept: boolean }>(
    'SELECT email, password_hash IS NOT NULL AS kept FROM users ORDER BY email',
  );
  // Only Ada's hash is argon2id as strong as ours; bcrypt (Grace) and a weak argon2id (Margaret) are dropped.
  expect(passwords.filter((row) => row.kept).map((row) => row.email)).toEqual(['ada@example.com']);
  const { rows: subscriptions } = await database.query<{ id: string; status: string; plan_id: string; owner: string }>(
    `SELECT s.id, s.status, s.plan_id, u.email AS owner FROM subscriptions s JOIN users u ON u.account_id = s.account_id AND u.role = 'owner' ORDER BY s.id`,
  );
  expect(subscriptions).toEqual([
    { id: 'sub_LegacyAda01', status: 'active', plan_id: 'PRO', owner: 'ada@example.com' },
    { id: 'sub_LegacyLinus01', status: 'canceled', plan_id: 'PRO', owner: 'linus@example.com' },
    { id: 'sub_LegacyLinus02', status: 'active', plan_id: 'STARTER', owner: 'linus@example.com' },
  ]);
  const { rows: payments } = await database.query<{ owner: string; kind: string; amount_cents: number; currency: string; status: string; amount_refunded_cents: number }>(
    `SELECT u.email AS owner, p.kind, p.amount_cents, p.currency, p.status, p.amount_refunded_cents
       FROM payments p JOIN users u ON u.account_id = p.account_id AND u.role = 'owner' ORDER BY p.created_at`,
  );
  expect(payments).toEqual([
    { owner: 'linus@example.com', kind: 'charge', amount_cents: 1500, currency: 'eur', status: 'failed', amount_refunded_cents: 0 },
    { owner: 'ada@example.com', kind: 'charge', amount_cents: 4200, currency: 'usd', status: 'succeeded', amount_refunded_cents: 0 },
    { owner: 'ada@example.com', kind: 'credit_pack', amount_cents: 1000, currency: 'usd', status: 'succeeded', amount_refunded_cents: 500 },
    { owner: 'ada@example.com', kind: 'subscription_invoice', amount_cents: 2900, currency: 'usd', status: 'succeeded', amount_refunded_cents: 0 },
  ]);
}
