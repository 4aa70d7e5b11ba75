import { describe, expect, it } from 'vitest';
import { ipBucket, keyKindOf, normaliseEmail } from '../../src/platform/rate-limit/keys.js';
import {
  DEFAULT_PLAN_REQUESTS_PER_MINUTE,
  DEFAULT_RATE_LIMIT_POLICIES,
  MACHINE_WINDOW_SECONDS,
  rateLimitOverridesJson,
  resolveRateLimitPolicies,
} from '../../src/platform/rate-limit/policies.js';

const MINUTE = 60;
const HOUR = 3600;

/** RL-1, transcribed by hand from ../shared/REQUIREMENTS.md: [limit, window, keyed by]. */
const RL_1: Record<string, [number, number, string]> = {
  'login.ip': [5, MINUTE, 'ip'],
  'login.account': [10, HOUR, 'email'],
  'password_reset.ip': [3, HOUR, 'ip'],
  'token_refresh.ip': [10, MINUTE, 'ip'],
  'general.ip': [100, 15 * MINUTE, 'ip'],
  'billing.user': [10, MINUTE, 'user'],
  'entitlements.user': [100, MINUTE, 'user'],
  'checkout.user': [5, MINUTE, 'user'],
  'cancel.user': [5, HOUR, 'user'],
  'account_delete.user': [1, HOUR, 'user'],
  'account_export.user': [10, HOUR, 'user'],
  'usage_report.account': [60, HOUR, 'account'],
  'jobs.story.user': [5, MINUTE, 'user'],
  'jobs.book.user': [3, MINUTE, 'user'],
  'balance_read.user': [30, MINUTE, 'user'],
  'webhooks.ip': [100, MINUTE, 'ip'],
  'admin.ip': [10, HOUR, 'ip'],
  // Beyond RL-1: the operator dashboard's session requests (signing in counts under admin.ip).
  'admin_session.ip': [1_200, HOUR, 'ip'],
};

describe('rate-limit policies (RL-1, RL-5)', () => {
  it('has exactly the RL-1 defaults, keyed as stated', () => {
    const table = Object.fromEntries(
      Object.entries(DEFAULT_RATE_LIMIT_POLICIES).map(([name, policy]) => [name, [policy.limit, policy.windowSeconds, policy.keyKind]]),
    );
    expect(table).toEqual(RL_1);
  });

  it('resolves to the defaults without overrides; nothing fails open', () => {
    const policies = resolveRateLimitPolicies();
    for (const [name, [limit, windowSeconds]] of Object.entries(RL_1)) {
      expect(policies[name as keyof typeof policies]).toMatchObject({ limit, windowSeconds, onStoreFailure: 'local' });
    }
    expect(Object.isFrozen(policies)).toBe(true);
  });

  it('has the RL-5 plan requests per minute (ENTERPRISE unlimited) over a one-minute window', () => {
    expect(DEFAULT_PLAN_REQUESTS_PER_MINUTE).toEqual({ FREE: 600, STARTER: 3_000, PRO: 30_000, ENTERPRISE: null });
    expect(MACHINE_WINDOW_SECONDS).toBe(60);
  });

  it('applies RATE_LIMITS overrides per policy, leaving the rest at their defaults', () => {
    const overrides = rateLimitOverridesJson.parse(
      '{"login.ip":{"limit":20,"windowSeconds":120},"general.ip":{"limit":500},"password_reset.ip":{"onStoreFailure":"closed"}}',
    );
    const policies = resolveRateLimitPolicies(overrides);
    expect(policies['login.ip']).toMatchObject({ limit: 20, windowSeconds: 120, keyKind: 'ip' });
    expect(policies['general.ip']).toMatchObject({ limit: 500, windowSeconds: 900 });
    expect(policies['password_reset.ip']).toMatchObject({ limit: 3, windowSeconds: 3600, onStoreFailure: 'closed' });
    expect(policies['checkout.user']).toMatchObject({ limit: 5, windowSeconds: 60, onStoreFailure: 'local' });
  });

  it.each([
    ['not JSON', '{login.ip: 5}', /JSON object/],
    ['an unknown policy', '{"login.everything":{"limit":5}}', /login.everything|key/i],
    ['a zero limit', '{"login.ip":{"limit":0}}', /limit/],
    ['a fractional window', '{"login.ip":{"windowSeconds":1.5}}', /windowSeconds/],
    ['an unknown field', '{"login.ip":{"limit":5,"burst":10}}', /burst|unrecognized/i],
    ['an empty override', '{"login.ip":{}}', /at least one/],
    ['fail open', '{"login.ip":{"onStoreFailure":"open"}}', /onStoreFailure/],
  ])('refuses RATE_LIMITS with %s', (_label, text, message) => {
    const parsed = rateLimitOverridesJson.safeParse(text);
    expect(parsed.success).toBe(false);
    const issues = parsed.error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('\n') ?? '';
    expect(issues).toMatch(message);
  });

  it('refuses a combination too fine-grained to count exactly', () => {
    const overrides = rateLimitOverridesJson.parse('{"login.ip":{"limit":1000000,"windowSeconds":1}}');
    expect(() => resolveRateLimitPolicies(overrides)).toThrow(/RATE_LIMITS.login.ip/);
  });
});

describe('rate-limit keys', () => {
  it.each([
    ['203.0.113.7', '203.0.113.7'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['::ffff:cb00:7107', '203.0.113.7'],
    ['2001:db8:abcd:12:1:2:3:4', '2001:db8:abcd:12::/64'],
    ['2001:db8:abcd:12::99', '2001:db8:abcd:12::/64'],
    ['2001:DB8:ABCD:0012:ffff::1', '2001:db8:abcd:12::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
  ])('buckets %s as %s', (address, bucket) => {
    expect(ipBucket(address)).toBe(bucket);
  });

  it('puts every address of one IPv6 /64 in one bucket and other /64s elsewhere', () => {
    expect(ipBucket('2001:db8:1:2:aaaa::1')).toBe(ipBucket('2001:db8:1:2:bbbb:cccc:dddd:eeee'));
    expect(ipBucket('2001:db8:1:2::1')).not.toBe(ipBucket('2001:db8:1:3::1'));
  });

  it('normalises emails so case, spaces and compatibility forms share a key', () => {
    expect(normaliseEmail('  Alice@Example.COM ')).toBe('alice@example.com');
    expect(normaliseEmail('ａlice@example.com')).toBe('alice@example.com'); // full-width a
  });

  it('names key kinds without ever returning the value', () => {
    expect(keyKindOf('ip:203.0.113.7')).toBe('ip');
    expect(keyKindOf('email:alice@example.com')).toBe('email');
    expect(keyKindOf('alice@example.com')).toBe('other');
    expect(keyKindOf('Weird Kind:x')).toBe('other');
  });
});
