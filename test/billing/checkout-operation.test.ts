import { afterAll, beforeAll, expect, it } from 'vitest';
import { asSystem } from '../../src/platform/database/access.js';
import { addCreditPack } from '../webhooks/helpers.js';
import { call, newPerson, startBillingHarness, type BillingHarness } from './lifecycle-helpers.js';

/**
 * PAY-9 for checkout: the Stripe Idempotency-Key of a checkout session derives from the
 * request's own Idempotency-Key, so a retry whose first attempt created the session but
 * never kept its answer (this process died, or the answer was lost) gets the same session
 * from Stripe rather than a second one. Over real HTTP, through the sandbox.
 */

const PACK = { id: 'pack_op', credits: 50, priceCents: 500, currency: 'usd' };
let harness: BillingHarness;

beforeAll(async () => {
  harness = await startBillingHarness();
  await addCreditPack(harness.testApp, PACK);
});
afterAll(async () => {
  await harness?.close();
});

it('a retried checkout with the same Idempotency-Key gets the same session even after the kept answer is gone; other keys and no key make new ones', async () => {
  const person = await newPerson(harness, 'operation');
  const checkout = (key?: string) =>
    call(harness, 'POST', '/api/billing/checkout', { person, body: { creditPack: PACK.id }, headers: key ? { 'idempotency-key': key } : {} });
  const sessionsAtStripe = () => Object.values(harness.sandbox.core.store.data.rows).filter((row) => row.kind === 'checkout.session').length;

  const first = await checkout('buy-1');
  expect(first.status, JSON.stringify(first.body)).toBe(200);
  const before = sessionsAtStripe();

  // As if the process had died after Stripe answered and before the answer was kept: the claim is gone.
  const removed = await asSystem(harness.testApp.deps.database, (tx) => tx.query(`DELETE FROM idempotency_requests WHERE key = 'buy-1'`));
  expect(removed.rowCount).toBe(1);
  const retried = await checkout('buy-1');
  expect(retried.status, JSON.stringify(retried.body)).toBe(200);
  expect(retried.body.sessionId).toBe(first.body.sessionId);
  expect(sessionsAtStripe()).toBe(before);

  const other = await checkout('buy-2');
  const plain = await checkout();
  const plainAgain = await checkout();
  expect(new Set([first.body.sessionId, other.body.sessionId, plain.body.sessionId, plainAgain.body.sessionId]).size).toBe(4);
  expect(sessionsAtStripe()).toBe(before + 3);
});
