import { randomBytes } from 'node:crypto';

/** Every id prefix in one table, so ids say what they are in logs and support tickets. */
export const ID_PREFIX = {
  account: 'acct',
  user: 'usr',
  apiKey: 'key',
  reservation: 'res',
  grant: 'grant',
  event: 'evt',
  request: 'req',
  session: 'ses',
  refreshToken: 'rt',
  reset: 'pwr',
  audit: 'aud',
  lease: 'lse',
  license: 'lic',
  instance: 'inst',
  adminSession: 'adms',
  payment: 'pay',
  importRun: 'imp',
  notification: 'ntf',
  notificationDelivery: 'ndl',
  webhookEndpoint: 'whe',
  refund: 'rfd',
  reconciliationRun: 'rcn',
} as const;

export type IdKind = keyof typeof ID_PREFIX;

/** 128 random bits, base64url: unguessable and URL-safe. */
export function newId(kind: IdKind): string {
  return `${ID_PREFIX[kind]}_${randomBytes(16).toString('base64url')}`;
}
