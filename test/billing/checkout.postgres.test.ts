import { afterAll, beforeAll, expect, it } from 'vitest';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { auditEvents } from '../webhooks/helpers.js';
import { accountRow, call, newPerson, startBillingHarness, type BillingHarness } from './lifecycle-helpers.js';

/**
 * PAY-2 on real PostgreSQL: concurrent first checkouts of one account create one Stripe
 * customer (the account row is locked while it is created; its operation id is the account
 * id), counted in the sandbox.
 */
describeWithPostgres('concurrent first checkouts on PostgreSQL', () => {
  let scratch: ScratchDatabase;
  let harness: BillingHarness;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    harness = await startBillingHarness({ DATABASE_URL: scratch.url, DATABASE_POOL_MAX: '20' });
  });
  afterAll(async () => {
    await harness?.close();
    await scratch?.drop();
  });

  it('ten concurrent first checkouts of one account: ten sessions, one Stripe customer', async () => {
    const person = await newPerson(harness, 'race');
    const answers = await Promise.all(Array.from({ length: 10 }, () => call(harness, 'POST', '/api/billing/checkout', { person, body: { plan: 'PRO' } })));
    expect(answers.map((answer) => answer.status)).toEqual(Array.from({ length: 10 }, () => 200));
    expect(new Set(answers.map((answer) => answer.body.sessionId)).size).toBe(10);

    const rows = Object.values(harness.sandbox.core.store.data.rows) as Array<{ kind: string; value: { id: string; metadata?: Record<string, string> } }>;
    const customers = rows.filter((row) => row.kind === 'customer' && row.value.metadata?.bulwark_account === person.accountId);
    expect(customers).toHaveLength(1);
    const { stripe_customer_id: customerId } = await accountRow(harness.testApp.deps.database, person.accountId);
    expect(customerId).toBe(customers[0]?.value.id);
    for (const answer of answers) {
      expect((await harness.testApp.deps.stripe.retrieveCheckoutSession(answer.body.sessionId)).customer).toBe(customerId);
    }
    expect(harness.stripeRequests.filter((request) => request === 'POST /v1/customers')).toHaveLength(1);
    expect((await auditEvents(harness.testApp.deps.database, 'billing.customer_created')).filter((entry) => entry.account_id === person.accountId)).toHaveLength(1);
  });
});
