import type { Clock } from '../../platform/clock.js';
import type { Queryable } from '../../platform/database/database.js';
import { newId } from '../../platform/ids.js';

/**
 * Notifications (MAIL-1, OUT-1). A change that should tell someone about itself calls
 * `notifier.emit(tx, ...)` inside its own transaction: the notification and one delivery
 * per target (the email, each subscribed webhook endpoint) are inserted there, so they
 * commit or roll back with the change. Delivery happens afterwards, outside any request,
 * with retries (see the delivery worker); emit never sends anything itself and never
 * waits on SMTP or on the operator's endpoint.
 */

/** Outgoing webhook event types (the `type` of a notification). */
export const NOTIFICATION_TYPES = [
  'subscription.activated',
  'subscription.updated',
  'subscription.cancel_scheduled',
  'subscription.resumed',
  'subscription.canceled',
  'subscription.past_due',
  'payment.succeeded',
  'payment.failed',
  'payment.action_required',
  'payment.refunded',
  'payment.disputed',
  'credits.purchased',
  'credits.low',
  'account.deleted',
  'auth.password_reset',
] as const;
export type NotificationType = (typeof NOTIFICATION_TYPES)[number];

/**
 * Types that are only ever emailed, never sent to webhook endpoints: a password reset
 * carries a sign-in link, which is for its user alone.
 */
export const EMAIL_ONLY_TYPES: readonly NotificationType[] = ['auth.password_reset'];

/** What an operator may subscribe a webhook endpoint to. */
export const WEBHOOK_EVENT_TYPES: readonly NotificationType[] = NOTIFICATION_TYPES.filter((type) => !EMAIL_ONLY_TYPES.includes(type));

/** Email templates (MAIL-1). */
export const EMAIL_TEMPLATES = ['subscription_canceled', 'payment_failed', 'payment_action_required', 'password_reset', 'account_deleted'] as const;
export type EmailTemplate = (typeof EMAIL_TEMPLATES)[number];

/** JSON values only: ids, integers of the smallest unit, ISO dates, links. No names, no email addresses. */
export type NotificationData = Readonly<Record<string, string | number | boolean | null>>;

export interface EmailRequest {
  readonly template: EmailTemplate;
  /**
   * Who gets it: a user id (resolved to the address at delivery), or an explicit address
   * for a user who will be erased before delivery (account deletion); default: the
   * account's owner users.
   */
  readonly userId?: string;
  readonly to?: string;
}

export interface NotificationRequest {
  readonly type: NotificationType;
  /** The account it is about; null for notifications about no account. */
  readonly accountId: string | null;
  readonly data: NotificationData;
  /** Send an email too; without it only the webhook endpoints hear of it. */
  readonly email?: EmailRequest;
  /** false: no webhook deliveries (a second email about the same event). Default true. */
  readonly webhooks?: boolean;
}

export interface Notifier {
  /** Queues the notification inside `tx` (acting for the account, or as the system). Answers the notification id. */
  emit(tx: Queryable, request: NotificationRequest): Promise<string>;
}

/** The queue half of the notifier: rows in notifications and notification_deliveries (migration 0018). */
export class NotificationQueue implements Notifier {
  constructor(private readonly clock: Clock) {}

  async emit(tx: Queryable, request: NotificationRequest): Promise<string> {
    const now = this.clock.now();
    const id = newId('notification');
    await tx.query('INSERT INTO notifications (id, account_id, type, data, created_at) VALUES ($1, $2, $3, $4, $5)', [
      id,
      request.accountId,
      request.type,
      JSON.stringify(request.data),
      now,
    ]);
    if (request.email) {
      const users =
        request.email.userId !== undefined || request.email.to !== undefined
          ? [{ id: request.email.userId ?? null }]
          : request.accountId === null
            ? []
            : (
                await tx.query<{ id: string }>(
                  `SELECT id FROM users WHERE account_id = $1 AND role = 'owner' AND status = 'active' ORDER BY created_at, id`,
                  [request.accountId],
                )
              ).rows;
      for (const user of users) {
        await tx.query(
          `INSERT INTO notification_deliveries (id, notification_id, account_id, channel, template, user_id, recipient, status, next_attempt_at, created_at, updated_at)
           VALUES ($1, $2, $3, 'email', $4, $5, $6, 'pending', $7, $7, $7)`,
          [newId('notificationDelivery'), id, request.accountId, request.email.template, user.id, request.email.to ?? null, now],
        );
      }
    }
    const { rows: endpoints } =
      request.webhooks === false || EMAIL_ONLY_TYPES.includes(request.type)
        ? { rows: [] }
        : await tx.query<{ id: string }>(
            `SELECT id FROM webhook_endpoints WHERE enabled AND (cardinality(event_types) = 0 OR $1 = ANY(event_types)) ORDER BY id`,
            [request.type],
          );
    for (const endpoint of endpoints) {
      await tx.query(
        `INSERT INTO notification_deliveries (id, notification_id, account_id, channel, endpoint_id, status, next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, $3, 'webhook', $4, 'pending', $5, $5, $5)`,
        [newId('notificationDelivery'), id, request.accountId, endpoint.id, now],
      );
    }
    return id;
  }
}
