import { describe, expect, it } from 'vitest';
import { fingerprintOf, isKeepablePasswordHash, parseLegacyRecord, type LegacyUser } from './legacy-records.js';

const SALT = 'c29tZXNhbHRzb21lc2FsdA';
const DIGEST = 'j7P2VPo+JMBUPxfueS5IFezWko7RhRYgSM9cca3+BK8';

function refusal(kind: 'user' | 'subscription' | 'payment', value: unknown): { field: string | null; message: string } {
  const parsed = parseLegacyRecord(kind, value);
  if (parsed.ok) throw new Error(`expected ${JSON.stringify(value)} to be refused`);
  return { field: parsed.field, message: parsed.message };
}

const payment = { id: 'p_1', user_id: 'u_1', amount_cents: 2900, currency: 'usd', status: 'succeeded', created_at: '2024-05-01T10:00:00Z' };

describe('legacy records', () => {
  it('keeps only an argon2id hash at least as strong as ours (AUTH-1); never bcrypt, SHA or a weaker argon2id', () => {
    expect(isKeepablePasswordHash(`$argon2id$v=19$m=19456,t=2,p=1$${SALT}$${DIGEST}`)).toBe(true);
    expect(isKeepablePasswordHash(`$argon2id$v=19$m=65536,t=3,p=4$${SALT}$${DIGEST}`)).toBe(true);
    for (const weaker of [
      `$argon2id$v=19$m=4096,t=3,p=1$${SALT}$${DIGEST}`,
      `$argon2id$v=19$m=19456,t=1,p=1$${SALT}$${DIGEST}`,
      `$argon2i$v=19$m=19456,t=2,p=1$${SALT}$${DIGEST}`,
      `$argon2id$v=16$m=19456,t=2,p=1$${SALT}$${DIGEST}`,
      '$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy',
      '5f4dcc3b5aa765d61d8327deb882cf99',
    ]) {
      expect(isKeepablePasswordHash(weaker), weaker).toBe(false);
    }
    const parsed = parseLegacyRecord('user', { id: 'u_1', email: 'a@example.com', password_hash: '$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy' });
    expect(parsed.ok && (parsed.record as LegacyUser)).toMatchObject({ passwordHash: null, passwordDropped: true, email: 'a@example.com' });
  });

  it('normalises the email and treats null fields as absent, also for the fingerprint', () => {
    const a = parseLegacyRecord('user', { id: 'u_1', email: 'Ada@Example.COM', name: null, credits: null });
    const b = parseLegacyRecord('user', { credits: null, email: 'Ada@Example.COM', id: 'u_1' });
    expect(a.ok && a.record).toMatchObject({ email: 'ada@example.com', name: null, credits: 0, ownerId: null });
    expect(a.ok && b.ok && a.fingerprint === b.fingerprint).toBe(true);
    expect(fingerprintOf({ id: 'u_1', email: 'ada@example.com' })).not.toBe(fingerprintOf({ id: 'u_1', email: 'Ada@Example.COM' }));
  });

  it('refuses each bad field by name: email, unknown fields, coerced or fractional numbers, times without a zone, references', () => {
    expect(refusal('user', { id: 'u_1', email: 'not-an-email' })).toEqual({ field: 'email', message: 'must match format "email"' });
    expect(refusal('user', { id: 'u_1', email: 'a@example.com', emial: 'x' })).toEqual({ field: 'emial', message: 'is not an allowed property' });
    expect(refusal('user', { id: 'u 1', email: 'a@example.com' }).field).toBe('id');
    expect(refusal('user', { email: 'a@example.com' })).toEqual({ field: 'id', message: 'is required' });
    expect(refusal('user', { id: 'u_1', email: 'a@example.com', owner_id: 'u_0', credits: 5 }).field).toBe('credits');
    expect(refusal('user', { id: 'u_1', email: 'a@example.com', owner_id: 'u_1' }).field).toBe('owner_id');
    expect(refusal('user', { id: 'u_1', email: 'a@example.com', created_at: '2024-05-01 10:00' }).field).toBe('created_at');
    expect(refusal('payment', { ...payment, amount_cents: 12.5 })).toEqual({ field: 'amount_cents', message: 'must be integer' });
    expect(refusal('payment', { ...payment, amount_cents: '2900' }).field).toBe('amount_cents');
    expect(refusal('payment', { ...payment, amount_refunded_cents: 3000 }).field).toBe('amount_refunded_cents');
    expect(refusal('payment', { ...payment, currency: 'dollars' }).field).toBe('currency');
    expect(refusal('subscription', { id: 's_1', user_id: 'u_1', stripe_subscription_id: 'sub_1', status: 'ACTIVE', created_at: '2024-05-01T10:00:00Z' }).field).toBe('status');
    expect(refusal('subscription', { id: 's_1', user_id: 'u_1', stripe_subscription_id: 'sub_1', status: 'active', plan: 'GOLD', created_at: '2024-05-01T10:00:00Z' }).field).toBe('plan');
    expect(refusal('payment', [payment])).toEqual({ field: null, message: 'must be a JSON object' });
  });

  it('reads a payment with integer cents and a lower-cased currency, kind charge by default', () => {
    const parsed = parseLegacyRecord('payment', { ...payment, currency: 'EUR', amount_cents: 9007199254740991 });
    expect(parsed.ok && parsed.record).toMatchObject({ paymentKind: 'charge', currency: 'eur', amountCents: 9007199254740991, amountRefundedCents: 0 });
    expect(refusal('payment', { ...payment, amount_cents: Number.MAX_SAFE_INTEGER + 2 }).field).toBe('amount_cents');
  });
});
