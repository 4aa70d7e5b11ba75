import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import { AppError, validationError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { asSystem } from '../../platform/database/access.js';
import type { Database, Queryable } from '../../platform/database/database.js';
import { clampPageLimit } from '../../platform/http/pagination.js';
import { newId } from '../../platform/ids.js';
import type { Mailer } from '../../platform/mail/mailer.js';
import { recordAudit } from '../audit/audit.service.js';
import type { ActorContext } from '../api-keys/audit-hook.js';
import { MAX_DELIVERY_ATTEMPTS, retryDelayMs } from './backoff.js';
import { EMAIL_TEMPLATES, type EmailTemplate, type NotificationData, type NotificationType } from './notifier.js';
import { newWebhookSecret, signWebhook } from './signing.js';
import { renderEmail } from './templates.js';
import { guardedLookup, webhookUrlProblem } from './url-policy.js';

export interface NotificationServiceOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly mailer: Mailer;
  readonly logger: Logger;
  /** Production: https only and no private addresses for webhook endpoints. */
  readonly strictUrls: boolean;
  readonly webhookTimeoutMs: number;
  readonly batchSize: number;
  /** Jitter source for the backoff (tests may fix it). */
  readonly random?: () => number;
}

export interface WebhookEndpointView {
  readonly id: string;
  readonly url: string;
  readonly description: string | null;
  readonly eventTypes: string[];
  readonly enabled: boolean;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface DeliveryView {
  readonly id: string;
  readonly notificationId: string;
  readonly type: string;
  readonly channel: 'email' | 'webhook';
  readonly status: 'pending' | 'delivered' | 'dead';
  readonly attempts: number;
  readonly lastResponseStatus: number | null;
  readonly lastError: string | null;
  readonly nextAttemptAt: string | null;
  readonly lastAttemptAt: string | null;
  readonly deliveredAt: string | null;
  readonly createdAt: string;
}

export interface DeliveryRunResult {
  readonly delivered: number;
  readonly retrying: number;
  readonly dead: number;
}

interface EndpointRow {
  id: string;
  url: string;
  description: string | null;
  event_types: string[];
  enabled: boolean;
  created_at: Date;
  updated_at: Date;
}

interface ClaimedRow {
  id: string;
  notification_id: string;
  channel: 'email' | 'webhook';
  template: string | null;
  user_id: string | null;
  recipient: string | null;
  endpoint_id: string | null;
  attempts: number;
  type: NotificationType;
  account_id: string | null;
  data: NotificationData;
  notification_created_at: Date;
  url: string | null;
  secret: string | null;
  endpoint_enabled: boolean | null;
}

type AttemptOutcome = { readonly ok: true; readonly status?: number } | { readonly ok: false; readonly error: string; readonly status?: number; readonly final?: boolean };

/** Data keys that are dropped once their email has been sent or given up (a one-time link). */
const ONE_TIME_KEYS: Readonly<Partial<Record<EmailTemplate, string>>> = { password_reset: 'resetLink' };

const ENDPOINT_COLUMNS = 'id, url, description, event_types, enabled, created_at, updated_at';

function endpointView(row: EndpointRow): WebhookEndpointView {
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    eventTypes: row.event_types,
    enabled: row.enabled,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

/** An error code or a short reason, never a message that could carry an address or a body. */
function failureCode(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,60}$/.test(code)) return code;
    const responseCode = (error as { responseCode?: unknown }).responseCode;
    if (typeof responseCode === 'number') return `SMTP_${responseCode}`;
    const name = (error as { name?: unknown }).name;
    if (typeof name === 'string' && /^[A-Za-z]{1,60}$/.test(name)) return name;
  }
  return 'UNKNOWN';
}

/**
 * Delivers queued notifications (MAIL-1, OUT-1) and manages the operator's webhook
 * endpoints. A run claims due deliveries with FOR UPDATE SKIP LOCKED and moves their
 * next_attempt_at past the attempt's lease in the same short transaction, so two
 * instances never take the same delivery; the sending happens outside any transaction;
 * the outcome is written afterwards. An instance that dies mid-attempt leaves the
 * delivery to be tried again when the lease ends (at least once; webhook receivers
 * deduplicate on webhook-id, which is the notification id on every attempt).
 */
export class NotificationService {
  private readonly random: () => number;

  constructor(private readonly options: NotificationServiceOptions) {
    this.random = options.random ?? Math.random;
  }

  /** How long a claimed delivery is withheld from other runs: the attempt's timeout and a margin. */
  private get leaseMs(): number {
    return Math.max(this.options.webhookTimeoutMs, 30_000) + 60_000;
  }

  /** Delivers everything due now, batch after batch (the job's work; tests call it directly). */
  async deliverDue(options: { readonly signal?: AbortSignal; readonly maxBatches?: number } = {}): Promise<DeliveryRunResult> {
    const totals = { delivered: 0, retrying: 0, dead: 0 };
    const maxBatches = options.maxBatches ?? 20;
    for (let batch = 0; batch < maxBatches && !options.signal?.aborted; batch++) {
      const claimed = await this.claim();
      const outcomes = await Promise.all(claimed.map((row) => this.deliverOne(row)));
      for (const outcome of outcomes) totals[outcome] += 1;
      if (claimed.length < this.options.batchSize) break;
    }
    return totals;
  }

  private async claim(): Promise<ClaimedRow[]> {
    const now = this.options.clock.now();
    const leaseUntil = new Date(now.getTime() + this.leaseMs);
    return asSystem(this.options.database, async (tx) => {
      const { rows } = await tx.query<ClaimedRow>(
        `WITH due AS (
           SELECT id FROM notification_deliveries
            WHERE status = 'pending' AND next_attempt_at <= $1
            ORDER BY next_attempt_at, id
            LIMIT $3
            FOR UPDATE SKIP LOCKED
         ), claimed AS (
           UPDATE notification_deliveries d
              SET attempts = d.attempts + 1, next_attempt_at = $2, last_attempt_at = $1, updated_at = $1
             FROM due WHERE d.id = due.id
           RETURNING d.id, d.notification_id, d.channel, d.template, d.user_id, d.recipient, d.endpoint_id, d.attempts
         )
         SELECT c.*, n.type, n.account_id, n.data, n.created_at AS notification_created_at,
                e.url, e.secret, e.enabled AS endpoint_enabled
           FROM claimed c
           JOIN notifications n ON n.id = c.notification_id
           LEFT JOIN webhook_endpoints e ON e.id = c.endpoint_id`,
        [now, leaseUntil, this.options.batchSize],
      );
      return rows;
    });
  }

  private async deliverOne(row: ClaimedRow): Promise<'delivered' | 'retrying' | 'dead'> {
    let outcome: AttemptOutcome;
    try {
      outcome = row.channel === 'email' ? await this.sendEmail(row) : await this.postWebhook(row);
    } catch (error) {
      outcome = { ok: false, error: failureCode(error) };
    }
    const now = this.options.clock.now();
    const log = { deliveryId: row.id, notificationId: row.notification_id, channel: row.channel, template: row.template ?? undefined, endpointId: row.endpoint_id ?? undefined, attempt: row.attempts };
    if (outcome.ok) {
      await this.finish(row, 'delivered', now, null, outcome.status ?? null);
      this.options.logger.info({ ...log, status: outcome.status }, 'notification delivered');
      return 'delivered';
    }
    const delay = outcome.final ? undefined : retryDelayMs(row.attempts, this.random);
    if (delay === undefined || row.attempts >= MAX_DELIVERY_ATTEMPTS) {
      await this.finish(row, 'dead', now, outcome.error, outcome.status ?? null);
      this.options.logger.warn({ ...log, reason: outcome.error, status: outcome.status }, 'notification delivery given up');
      return 'dead';
    }
    const next = new Date(now.getTime() + delay);
    await asSystem(this.options.database, (tx) =>
      tx.query(
        `UPDATE notification_deliveries SET next_attempt_at = $2, last_error = $3, last_response_status = $4, updated_at = $5
          WHERE id = $1 AND status = 'pending'`,
        [row.id, next, outcome.error.slice(0, 200), outcome.status ?? null, now],
      ),
    );
    this.options.logger.warn({ ...log, reason: outcome.error, status: outcome.status, retryAt: next.toISOString() }, 'notification delivery failed; will retry');
    return 'retrying';
  }

  /** A final state: the address is cleared (never kept once it is no longer needed), one-time links dropped. */
  private async finish(row: ClaimedRow, status: 'delivered' | 'dead', now: Date, error: string | null, responseStatus: number | null): Promise<void> {
    await asSystem(this.options.database, async (tx) => {
      await tx.query(
        `UPDATE notification_deliveries
            SET status = $2, recipient = NULL, last_error = $3, last_response_status = $4, delivered_at = $5, updated_at = $6
          WHERE id = $1`,
        [row.id, status, error?.slice(0, 200) ?? null, responseStatus, status === 'delivered' ? now : null, now],
      );
      const oneTimeKey = row.template === null ? undefined : ONE_TIME_KEYS[row.template as EmailTemplate];
      if (oneTimeKey !== undefined) await tx.query('UPDATE notifications SET data = data - $2::text WHERE id = $1', [row.notification_id, oneTimeKey]);
    });
  }

  private async sendEmail(row: ClaimedRow): Promise<AttemptOutcome> {
    const template = row.template as EmailTemplate;
    if (!EMAIL_TEMPLATES.includes(template)) return { ok: false, error: 'UNKNOWN_TEMPLATE', final: true };
    let to = row.recipient;
    if (to === null && row.user_id !== null) {
      const { rows } = await asSystem(this.options.database, (tx) =>
        tx.query<{ email: string | null }>(`SELECT email FROM users WHERE id = $1 AND status = 'active'`, [row.user_id]),
      );
      to = rows[0]?.email ?? null;
    }
    if (to === null) return { ok: false, error: 'NO_RECIPIENT', final: true };
    const { subject, text } = renderEmail(template, row.data);
    await this.options.mailer.send({ kind: template, to, subject, text });
    return { ok: true };
  }

  private async postWebhook(row: ClaimedRow): Promise<AttemptOutcome> {
    if (row.url === null || row.secret === null || row.endpoint_enabled !== true) return { ok: false, error: 'ENDPOINT_DISABLED', final: true };
    // Saved under another policy (say, before NODE_ENV=production): checked again before any connection.
    if (this.options.strictUrls && webhookUrlProblem(row.url, { strict: true }) !== undefined) return { ok: false, error: 'URL_NOT_ALLOWED', final: true };
    const body = JSON.stringify({
      id: row.notification_id,
      type: row.type,
      timestamp: row.notification_created_at.toISOString(),
      data: { accountId: row.account_id, ...row.data },
    });
    const headers = signWebhook(row.secret, row.notification_id, this.options.clock.now(), body);
    const status = await this.post(row.url, body, headers);
    return status >= 200 && status < 300 ? { ok: true, status } : { ok: false, error: `HTTP_${status}`, status };
  }

  /** One POST, no redirects followed, the answer's body read and discarded; resolves with the status code. */
  private post(target: string, body: string, signed: Readonly<Record<string, string>>): Promise<number> {
    const url = new URL(target);
    const client = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const request = client.request(
        url,
        {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            'user-agent': 'Bulwark-Webhooks/1',
            ...signed,
          },
          signal: AbortSignal.timeout(this.options.webhookTimeoutMs),
          ...(this.options.strictUrls ? { lookup: guardedLookup as unknown as typeof import('node:dns').lookup } : {}),
        },
        (response) => {
          response.on('error', reject);
          response.on('data', () => undefined);
          response.on('end', () => resolve(response.statusCode ?? 0));
        },
      );
      request.on('error', (error: Error & { code?: string }) => reject(error.name === 'AbortError' ? Object.assign(new Error('timeout'), { code: 'TIMEOUT' }) : error));
      request.end(body);
    });
  }

  // ---- Operator routes (system context, each change audited last in its transaction) ----

  async createEndpoint(input: { url: string; eventTypes?: string[]; description?: string }, actor: ActorContext): Promise<{ endpoint: WebhookEndpointView; secret: string }> {
    this.checkUrl(input.url);
    const now = this.options.clock.now();
    const secret = newWebhookSecret();
    const eventTypes = [...new Set(input.eventTypes ?? [])];
    return asSystem(this.options.database, async (tx) => {
      const { rows } = await tx.query<EndpointRow>(
        `INSERT INTO webhook_endpoints (id, url, description, event_types, secret, enabled, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, true, $6, $6) RETURNING ${ENDPOINT_COLUMNS}`,
        [newId('webhookEndpoint'), input.url, input.description ?? null, eventTypes, secret, now],
      );
      const endpoint = rows[0]!;
      await this.audit(tx, actor, 'webhook_endpoint.created', endpoint.id, { host: new URL(endpoint.url).host, eventTypes });
      return { endpoint: endpointView(endpoint), secret };
    });
  }

  async listEndpoints(): Promise<{ items: WebhookEndpointView[] }> {
    const { rows } = await asSystem(this.options.database, (tx) => tx.query<EndpointRow>(`SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id`));
    return { items: rows.map(endpointView) };
  }

  async updateEndpoint(
    id: string,
    input: { url?: string; eventTypes?: string[]; description?: string | null; enabled?: boolean },
    actor: ActorContext,
  ): Promise<{ endpoint: WebhookEndpointView }> {
    if (input.url !== undefined) this.checkUrl(input.url);
    const now = this.options.clock.now();
    return asSystem(this.options.database, async (tx) => {
      const { rows } = await tx.query<EndpointRow>(
        `UPDATE webhook_endpoints
            SET url = COALESCE($2, url),
                event_types = COALESCE($3, event_types),
                description = CASE WHEN $4::boolean THEN $5 ELSE description END,
                enabled = COALESCE($6, enabled),
                updated_at = $7
          WHERE id = $1
          RETURNING ${ENDPOINT_COLUMNS}`,
        [
          id,
          input.url ?? null,
          input.eventTypes === undefined ? null : [...new Set(input.eventTypes)],
          input.description !== undefined,
          input.description ?? null,
          input.enabled ?? null,
          now,
        ],
      );
      const endpoint = rows[0];
      if (!endpoint) throw new AppError('NOT_FOUND', 'No such webhook endpoint');
      const event = input.enabled === false && Object.keys(input).length === 1 ? 'webhook_endpoint.disabled' : 'webhook_endpoint.updated';
      await this.audit(tx, actor, event, endpoint.id, {
        changed: Object.keys(input).sort(),
        host: new URL(endpoint.url).host,
        eventTypes: endpoint.event_types,
        enabled: endpoint.enabled,
      });
      return { endpoint: endpointView(endpoint) };
    });
  }

  async endpointDeliveries(id: string, query: { limit?: number; cursor?: string }): Promise<{ items: DeliveryView[]; nextCursor: string | null }> {
    const limit = clampPageLimit(query.limit);
    return asSystem(this.options.database, async (tx) => {
      const exists = await tx.query('SELECT 1 FROM webhook_endpoints WHERE id = $1', [id]);
      if (exists.rowCount === 0) throw new AppError('NOT_FOUND', 'No such webhook endpoint');
      const { rows } = await tx.query<DeliveryRow>(
        `SELECT ${DELIVERY_COLUMNS}
           FROM notification_deliveries d JOIN notifications n ON n.id = d.notification_id
          WHERE d.endpoint_id = $1
            AND ($2::text IS NULL OR (d.created_at, d.id) < (SELECT created_at, id FROM notification_deliveries WHERE id = $2 AND endpoint_id = $1))
          ORDER BY d.created_at DESC, d.id DESC
          LIMIT $3`,
        [id, query.cursor ?? null, limit + 1],
      );
      const page = rows.slice(0, limit);
      return { items: page.map(deliveryView), nextCursor: rows.length > limit ? (page.at(-1)?.id ?? null) : null };
    });
  }

  /** Queues a new attempt now with a fresh retry window; 409 while one is already pending. Webhook deliveries only. */
  async redeliver(id: string, actor: ActorContext): Promise<{ delivery: DeliveryView }> {
    const now = this.options.clock.now();
    return asSystem(this.options.database, async (tx) => {
      const { rows: found } = await tx.query<{ status: string; channel: string; endpoint_id: string | null }>(
        'SELECT status, channel, endpoint_id FROM notification_deliveries WHERE id = $1 FOR UPDATE',
        [id],
      );
      const current = found[0];
      if (!current) throw new AppError('NOT_FOUND', 'No such notification delivery');
      if (current.channel !== 'webhook') throw new AppError('CONFLICT', 'Only webhook deliveries can be redelivered');
      if (current.status === 'pending') throw new AppError('CONFLICT', 'This delivery is already pending');
      await tx.query(
        `UPDATE notification_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $2, delivered_at = NULL, updated_at = $2 WHERE id = $1`,
        [id, now],
      );
      const { rows } = await tx.query<DeliveryRow>(
        `SELECT ${DELIVERY_COLUMNS} FROM notification_deliveries d JOIN notifications n ON n.id = d.notification_id WHERE d.id = $1`,
        [id],
      );
      await this.audit(tx, actor, 'notification_delivery.redelivered', id, { endpointId: current.endpoint_id, previousStatus: current.status });
      return { delivery: deliveryView(rows[0]!) };
    });
  }

  private checkUrl(url: string): void {
    const problem = webhookUrlProblem(url, { strict: this.options.strictUrls });
    if (problem !== undefined) throw validationError([{ field: 'url', message: problem }]);
  }

  private async audit(tx: Queryable, actor: ActorContext, event: string, subjectId: string, metadata: Record<string, unknown>): Promise<void> {
    await recordAudit(
      tx,
      {
        event,
        actorType: actor.actorType,
        actorId: actor.actorId,
        subjectType: event.startsWith('webhook_endpoint') ? 'webhook_endpoint' : 'notification_delivery',
        subjectId,
        accountId: null,
        ip: actor.ip,
        metadata,
      },
      this.options.clock,
    );
  }
}

interface DeliveryRow {
  id: string;
  notification_id: string;
  type: string;
  channel: 'email' | 'webhook';
  status: 'pending' | 'delivered' | 'dead';
  attempts: number;
  last_response_status: number | null;
  last_error: string | null;
  next_attempt_at: Date;
  last_attempt_at: Date | null;
  delivered_at: Date | null;
  created_at: Date;
}

const DELIVERY_COLUMNS = `d.id, d.notification_id, n.type, d.channel, d.status, d.attempts, d.last_response_status, d.last_error,
  d.next_attempt_at, d.last_attempt_at, d.delivered_at, d.created_at`;

function deliveryView(row: DeliveryRow): DeliveryView {
  return {
    id: row.id,
    notificationId: row.notification_id,
    type: row.type,
    channel: row.channel,
    status: row.status,
    attempts: row.attempts,
    lastResponseStatus: row.last_response_status,
    lastError: row.last_error,
    nextAttemptAt: row.status === 'pending' ? row.next_attempt_at.toISOString() : null,
    lastAttemptAt: row.last_attempt_at?.toISOString() ?? null,
    deliveredAt: row.delivered_at?.toISOString() ?? null,
    createdAt: row.created_at.toISOString(),
  };
}
