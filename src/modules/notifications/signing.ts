import { createHmac, randomBytes } from 'node:crypto';

/**
 * Outgoing webhook signatures (OUT-1), the Standard Webhooks scheme
 * (https://www.standardwebhooks.com): the secret is `whsec_` + base64 of 32 random bytes;
 * each request carries
 *   webhook-id:        the notification id (the same on every retry, for deduplication)
 *   webhook-timestamp: seconds since the epoch at the time of the attempt
 *   webhook-signature: `v1,` + base64(HMAC-SHA256(secret bytes, `${id}.${timestamp}.${body}`))
 * A receiver verifies with sdk/src/webhooks.ts (quoted in docs/notifications.md).
 */
export const WEBHOOK_SECRET_PREFIX = 'whsec_';

export function newWebhookSecret(): string {
  return `${WEBHOOK_SECRET_PREFIX}${randomBytes(32).toString('base64')}`;
}

function secretBytes(secret: string): Buffer {
  if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) throw new TypeError('a webhook secret starts with whsec_');
  return Buffer.from(secret.slice(WEBHOOK_SECRET_PREFIX.length), 'base64');
}

export type SignedHeaders = Readonly<Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string>>;

/** The three Standard Webhooks headers for one attempt of `body` (the exact bytes sent). */
export function signWebhook(secret: string, id: string, at: Date, body: string): SignedHeaders {
  const timestamp = String(Math.floor(at.getTime() / 1000));
  const signature = createHmac('sha256', secretBytes(secret)).update(`${id}.${timestamp}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${signature}` };
}
