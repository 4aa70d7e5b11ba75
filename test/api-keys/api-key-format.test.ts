import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  MAX_API_KEY_LENGTH,
  displayPrefix,
  generateApiKey,
  hashApiKey,
  hashApiKeyHex,
  parseApiKey,
} from '../../src/modules/api-keys/api-key-format.js';

const ACCOUNT = 'acct_Ab-c_0123456789abcdefgh';

describe('API key format (KEY-1)', () => {
  it('is cust_<accountId>_<43 base64url characters carrying 32 random bytes>', () => {
    const { key, prefix } = generateApiKey(ACCOUNT);
    expect(key.startsWith(`cust_${ACCOUNT}_`)).toBe(true);
    const secret = key.slice(`cust_${ACCOUNT}_`.length);
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(secret, 'base64url')).toHaveLength(32);
    expect(prefix).toBe(`cust_${ACCOUNT}_${secret.slice(0, 4)}`);
    expect(parseApiKey(key)).toEqual({ accountId: ACCOUNT, secret });
  });

  it('never repeats a secret', () => {
    const keys = new Set(Array.from({ length: 200 }, () => generateApiKey(ACCOUNT).key));
    expect(keys.size).toBe(200);
  });

  it('keeps account ids containing underscores and hyphens intact', () => {
    for (const accountId of ['a', 'acct_x', 'acct__-_', 'A'.repeat(128)]) {
      const { key } = generateApiKey(accountId);
      expect(parseApiKey(key)?.accountId).toBe(accountId);
    }
  });

  it('refuses account ids that cannot be embedded', () => {
    expect(() => generateApiKey('acct x')).toThrow(RangeError);
    expect(() => generateApiKey('')).toThrow(RangeError);
    expect(() => generateApiKey('a'.repeat(129))).toThrow(RangeError);
  });

  it('refuses every malformed presentation without throwing', () => {
    const { key } = generateApiKey(ACCOUNT);
    const secret = key.slice(-43);
    const malformed: unknown[] = [
      undefined,
      null,
      42,
      ['x'],
      '',
      'cust_',
      key.slice(0, -1), // 42-character secret
      `${key}A`, // 44-character secret
      key.replace('cust_', 'CUST_'),
      key.replace('cust_', 'sk_'),
      ` ${key}`,
      `${key} `,
      `${key}\n`,
      `cust__${secret}`, // empty account id
      `cust_acct x_${secret}`,
      `cust_acct.x_${secret}`,
      `cust_${ACCOUNT}_${secret.slice(0, 42)}=`, // padding is not base64url
      `cust_${ACCOUNT}_${secret.slice(0, 42)}+`,
      `cust_${'a'.repeat(129)}_${secret}`, // account id over 128
      'x'.repeat(MAX_API_KEY_LENGTH + 1),
      'cust_'.repeat(10_000),
    ];
    for (const value of malformed) expect(parseApiKey(value), String(value).slice(0, 80)).toBeUndefined();
  });

  it('refuses a non-canonical last character (258 bits where 256 are meant)', () => {
    const { key } = generateApiKey(ACCOUNT);
    const body = key.slice(0, -1);
    const canonical = key.slice(-1);
    // Of the 64 last characters only 16 are canonical for 32 bytes; the others decode to the same bytes or fail.
    const others = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split('').filter((c) => c !== canonical);
    const accepted = others.filter((c) => parseApiKey(body + c) !== undefined);
    expect(accepted.length).toBe(15);
    for (const c of accepted) expect('AEIMQUYcgkosw048').toContain(c);
  });

  it('hashes with HMAC-SHA256 under the pepper, over the whole key', () => {
    const { key } = generateApiKey(ACCOUNT);
    const pepper = 'p'.repeat(64);
    const expected = createHmac('sha256', pepper).update(key).digest('hex');
    expect(hashApiKeyHex(pepper, key)).toBe(expected);
    expect(hashApiKey(pepper, key)).toHaveLength(32);
    expect(hashApiKeyHex('q'.repeat(64), key)).not.toBe(expected);
    // The account id is part of what is hashed.
    const moved = key.replace(ACCOUNT, 'acct_other');
    expect(hashApiKeyHex(pepper, moved)).not.toBe(expected);
    expect(expected).not.toContain(key.slice(-43));
  });

  it('shows only the first four characters of the secret in the display prefix', () => {
    expect(displayPrefix('acct_1', 'abcdefghij')).toBe('cust_acct_1_abcd');
  });
});
