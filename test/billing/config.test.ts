import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';

/** PAST_DUE_GRACE_DAYS and BILLING_TRIAL_DAYS (PAY-5, PAY-6): defaults and refusals naming the variable. */
describe('billing configuration', () => {
  it('defaults to a 7-day grace and a 14-day PRO trial, returning to the portal', () => {
    expect(loadConfig({ NODE_ENV: 'test' }).billing).toEqual({ pastDueGraceDays: 7, trialDays: { PRO: 14 }, successUrl: undefined, cancelUrl: undefined });
  });

  it('reads the grace days, trial days per plan and return URLs', () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      PAST_DUE_GRACE_DAYS: '0',
      BILLING_TRIAL_DAYS: 'PRO=30, STARTER=7,ENTERPRISE=0',
      BILLING_SUCCESS_URL: 'https://billing.example.com/ok?session_id={CHECKOUT_SESSION_ID}',
    });
    expect(config.billing).toMatchObject({ pastDueGraceDays: 0, trialDays: { PRO: 30, STARTER: 7, ENTERPRISE: 0 } });
    expect(config.billing.successUrl).toContain('{CHECKOUT_SESSION_ID}');
  });

  it.each([
    ['PAST_DUE_GRACE_DAYS', '91'],
    ['PAST_DUE_GRACE_DAYS', '-1'],
    ['PAST_DUE_GRACE_DAYS', '7.5'],
    ['PAST_DUE_GRACE_DAYS', 'seven'],
    ['BILLING_TRIAL_DAYS', 'PRO'],
    ['BILLING_TRIAL_DAYS', 'PRO=731'],
    ['BILLING_TRIAL_DAYS', 'pro=14'],
    ['BILLING_TRIAL_DAYS', 'PRO=-1'],
    ['BILLING_SUCCESS_URL', 'not a url'],
  ])('refuses %s=%s, naming it', (name, value) => {
    expect(() => loadConfig({ NODE_ENV: 'test', [name]: value })).toThrow(name);
  });
});
