import { createHmac, randomBytes } from 'node:crypto';

/**
 * Customer API keys (KEY-1): `cust_<accountId>_<secret>`, where the secret is 32 random
 * bytes (256 bits) in base64url, exactly 43 characters. Only HMAC-SHA256(pepper, key) is
 * stored; a slow password hash would add nothing for a 256-bit random secret and would
 * cost every request.
 */
export const API_KEY_PREFIX = 'cust_';
export const API_KEY_SECRET_BYTES = 32;
/** base64url of 32 bytes without padding. */
export const API_KEY_SECRET_LENGTH = 43;
/** Account ids are at most 128 characters (API.md), so a key is never longer than this. */
export const MAX_ACCOUNT_ID_LENGTH = 128;
export const MAX_API_KEY_LENGTH = API_KEY_PREFIX.length + MAX_ACCOUNT_ID_LENGTH + 1 + API_KEY_SECRET_LENGTH;
/** Characters of the secret kept in the display prefix: enough to tell keys apart, far too few to matter. */
export const DISPLAY_SECRET_CHARACTERS = 4;

// The secret is the last 43 characters, so an account id may itself contain `_` or `-`.
const KEY_PATTERN = /^cust_([A-Za-z0-9_-]{1,128})_([A-Za-z0-9_-]{43})$/;
const ACCOUNT_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

export interface ParsedApiKey {
  readonly accountId: string;
  readonly secret: string;
}

/**
 * Parses a presented key strictly: bounded length first (cheap refusal of junk), then the
 * exact shape, then the secret must be the canonical encoding of exactly 32 bytes.
 * Anything else is undefined; this never throws on hostile input.
 */
export function parseApiKey(presented: unknown): ParsedApiKey | undefined {
  if (typeof presented !== 'string') return undefined;
  if (presented.length > MAX_API_KEY_LENGTH || presented.length < API_KEY_PREFIX.length + 2 + API_KEY_SECRET_LENGTH) return undefined;
  const match = KEY_PATTERN.exec(presented);
  if (!match) return undefined;
  const accountId = match[1] as string;
  const secret = match[2] as string;
  // 43 characters carry 258 bits; the last two must be zero in the canonical encoding.
  const bytes = Buffer.from(secret, 'base64url');
  if (bytes.length !== API_KEY_SECRET_BYTES || bytes.toString('base64url') !== secret) return undefined;
  return { accountId, secret };
}

export function isValidAccountIdForKey(accountId: string): boolean {
  return ACCOUNT_ID_PATTERN.test(accountId);
}

/** A new key for an account. The secret part exists only in the returned string. */
export function generateApiKey(accountId: string): { key: string; prefix: string } {
  if (!isValidAccountIdForKey(accountId)) throw new RangeError('account id cannot be embedded in an API key');
  const secret = randomBytes(API_KEY_SECRET_BYTES).toString('base64url');
  return { key: `${API_KEY_PREFIX}${accountId}_${secret}`, prefix: displayPrefix(accountId, secret) };
}

/** What lists show: `cust_<accountId>_` and the first four characters of the secret. */
export function displayPrefix(accountId: string, secret: string): string {
  return `${API_KEY_PREFIX}${accountId}_${secret.slice(0, DISPLAY_SECRET_CHARACTERS)}`;
}

/**
 * HMAC-SHA256 under the server-side pepper, over the whole key (so the account id is bound
 * into the hash). A database leak alone therefore reveals nothing usable.
 */
export function hashApiKey(pepper: string, key: string): Buffer {
  return createHmac('sha256', pepper).update(key, 'utf8').digest();
}

export function hashApiKeyHex(pepper: string, key: string): string {
  return hashApiKey(pepper, key).toString('hex');
}
