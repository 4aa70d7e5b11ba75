import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { openMigratedDatabase } from '../../src/dependencies.js';
import { insertAccount } from '../../src/modules/accounts/accounts.repository.js';
import { PlanCatalogue } from '../../src/modules/plans/plan-catalogue.js';
import { seedCatalogue } from '../../src/modules/plans/seed.js';
import { createStripeGateway, type StripeGateway } from '../../src/modules/stripe/gateway.js';
import { startStripeSandbox, type StripeSandbox } from '../../src/modules/stripe/sandbox/sandbox-server.js';
import { systemClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import type { Database } from '../../src/platform/database/database.js';
import { cli, runtimeSecrets } from '../cli/helpers.js';
import { packSession } from '../webhooks/helpers.js';
import { PACK } from './helpers.js';

/**
 * `bulwark reconcile` (CLI-1, PAY-8) on the embedded database, against a sandbox whose
 * webhooks reach no one: a credit pack paid at Stripe is missing locally until the
 * command repairs it (exit 3), after which a second run is clean (exit 0).
 */

let folder: string;
let env: Record<string, string>;
let sandbox: StripeSandbox;
let stripe: StripeGateway;
let accountId: string;
let sessionId: string;

async function withDatabase<T>(work: (database: Database) => Promise<T>): Promise<T> {
  const { database } = await openMigratedDatabase(loadConfig(env), undefined, () => undefined);
  try {
    return await work(database);
  } finally {
    await database.close();
  }
}

beforeAll(async () => {
  folder = mkdtempSync(path.join(tmpdir(), 'bulwark-reconcile-cli-'));
  sandbox = await startStripeSandbox({ webhookSecret: 'whsec_unused' });
  env = { NODE_ENV: 'test', DATA_DIR: path.join(folder, 'data'), STRIPE_API_URL: sandbox.url, STRIPE_MAX_NETWORK_RETRIES: '0', ...runtimeSecrets() };
  const config = loadConfig(env);
  if (config.database.kind !== 'pglite') throw new Error('expected the embedded database');
  stripe = createStripeGateway(config.stripe);
  const customer = await stripe.createCustomer(`cli_customer_${Date.now()}`, { email: 'cli@example.com' });
  accountId = `acct_clireconcile${Date.now()}`;
  await withDatabase(async (database) => {
    await seedCatalogue(database, systemClock, { planCatalogue: new PlanCatalogue(database, undefined) });
    await asSystem(database, async (tx) => {
      await insertAccount(tx, { id: accountId, name: null, plan: 'FREE', at: new Date() });
      await tx.query('UPDATE accounts SET stripe_customer_id = $2 WHERE id = $1', [accountId, customer.id]);
      await tx.query('INSERT INTO credit_packs (id, name, credits, price_cents, currency) VALUES ($1, $2, $3, $4, $5)', [PACK.id, '100 credits', PACK.credits, PACK.priceCents, PACK.currency]);
    });
  });
  const product = await stripe.ensureProduct({ id: 'bulwark_pack_pack_100', name: '100 credits' });
  const price = await stripe.ensurePrice({ lookupKey: 'pack_100_usd', productId: product.id, unitAmount: PACK.priceCents, currency: PACK.currency });
  const session = await packSession(stripe, { operationId: `cli_pack_${accountId}`, customerId: customer.id, priceId: price.id, packId: PACK.id, metadataAccount: accountId });
  sessionId = session.id;
  const paid = await fetch(`${sandbox.url}/_sandbox/checkout/${session.id}/pay`, { method: 'POST', body: JSON.stringify({ card: '4242424242424242' }) });
  expect(((await paid.json()) as { outcome: string }).outcome).toBe('succeeded');
});
afterAll(async () => {
  await sandbox?.close();
  rmSync(folder, { recursive: true, force: true });
});

describe('bulwark reconcile on the embedded database', () => {
  it('repairs the missing purchase (exit 3, the report printed), then finds nothing (exit 0); audited as the command line', async () => {
    const first = await cli(['reconcile', '--json'], env);
    expect(first.code).toBe(3);
    const { report } = first.json<{ report: { trigger: string; discrepancies: number; repaired: number; items: Array<{ kind: string; objectId: string; resolution: string }> } }>();
    expect(report).toMatchObject({ trigger: 'cli', discrepancies: 1, repaired: 1 });
    expect(report.items).toEqual([expect.objectContaining({ kind: 'payment_missing', objectId: sessionId, resolution: 'repaired' })]);
    // The alert went to stderr as a critical log line.
    expect(first.stderr).toContain('"alertKind":"reconciliation_discrepancy"');

    const state = await withDatabase((database) =>
      asSystem(database, async (tx) => ({
        grants: (await tx.query<{ amount: number }>(`SELECT amount FROM credit_grants WHERE account_id = $1 AND source = 'purchase'`, [accountId])).rows.map((row) => Number(row.amount)),
        repairs: (await tx.query<{ actor_type: string }>(`SELECT actor_type FROM audit_log WHERE event = 'reconciliation.repaired' AND account_id = $1`, [accountId])).rows,
      })),
    );
    expect(state.grants).toEqual([100]);
    expect(state.repairs).toEqual([{ actor_type: 'cli' }]);

    const second = await cli(['reconcile'], env);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/1 customers checked, 0 discrepancies, 0 repaired, 0 failed/);

    const verify = await cli(['credits', 'verify'], env);
    expect(verify.code).toBe(0);
  });

  it('documents its exit codes in its help', async () => {
    const help = await cli(['help', 'reconcile'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('exit 0 clean, 3 all repaired, 1 some not repaired');
  });
});
