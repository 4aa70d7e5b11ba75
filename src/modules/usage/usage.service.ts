import { randomBytes } from 'node:crypto';
import { clampPageLimit } from '../../platform/http/pagination.js';
import { AppError, validationError, type FieldProblem } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { asSystem, forAccount } from '../../platform/database/access.js';
import { SqlState, sqlStateOf, type Database, type Transaction } from '../../platform/database/database.js';
import { recordAudit } from '../audit/audit.service.js';
import {
  addDailyCount,
  dailyCounters,
  dailyReportTotals,
  deleteDailyCountsBefore,
  deleteReportsBefore,
  firstReusedKey,
  insertUsageEvents,
  listUsageReports,
  markAnomalyRecorded,
  trailingCounts,
  type MetadataValue,
  type NewUsageEvent,
  type UsageReportRow,
} from './usage.repository.js';

/** USE-4's allowlist when USAGE_METADATA_KEYS is not set. */
export const DEFAULT_USAGE_METADATA_KEYS: readonly string[] = ['model', 'region', 'source', 'tokens', 'pages', 'duration_ms'];

/** The longest window GET /api/usage/daily answers for (reports live 90 days, USE-5). */
export const MAX_DAILY_DAYS = 90;

export interface DailyUsage {
  readonly from: string;
  readonly to: string;
  readonly days: { day: string; reports: number; quantity: number; counters: Record<string, number> }[];
}

/** USE-5: reports older than this many days are deleted. */
export const DEFAULT_RETENTION_DAYS = 90;
export const MAX_RETENTION_DAYS = 3650;

/** USE-6 defaults: today above `factor` x the trailing daily average, and above `minEvents`. */
export const DEFAULT_ANOMALY_RULE: AnomalyRule = { factor: 10, trailingDays: 7, minEvents: 100 };

export interface AnomalyRule {
  /** Today's events must exceed this multiple of the trailing daily average. */
  readonly factor: number;
  /** Days before today that make up the trailing average. */
  readonly trailingDays: number;
  /** Today's events must also exceed this, so small or new accounts do not raise noise. */
  readonly minEvents: number;
}

/** One event of POST /api/usage as the route schema accepts it. */
export interface UsageEventInput {
  readonly idempotencyKey: string;
  readonly jobId?: string;
  readonly jobType: string;
  readonly quantity?: number;
  readonly description?: string;
  readonly metadata?: Readonly<Record<string, MetadataValue>>;
}

export interface UsageReportResult {
  /** Events stored by this call. */
  readonly accepted: number;
  /** Events already stored under their idempotency key (earlier, concurrently, or earlier in the batch). */
  readonly duplicates: number;
}

/** A report as the API shows it (USE-3): exactly these fields. */
export interface UsageReportView {
  readonly id: string;
  readonly jobId: string | null;
  readonly jobType: string;
  readonly creditsUsed: number;
  readonly status: string;
  readonly description: string | null;
  readonly createdAt: string;
}

export interface UsagePage {
  readonly items: UsageReportView[];
  readonly nextCursor: string | null;
}

export interface UsageActor {
  readonly actorType: string;
  readonly actorId: string | null;
  readonly ip: string | null;
}

export interface UsageServiceOptions {
  readonly database: Database;
  readonly clock: Clock;
  /** USE-4 allowlist (USAGE_METADATA_KEYS); DEFAULT_USAGE_METADATA_KEYS when absent. */
  readonly metadataKeys?: readonly string[];
  readonly anomaly?: Partial<AnomalyRule>;
  /** Rows per DELETE during retention (each batch its own transaction). */
  readonly cleanupBatchSize?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const MAX_ATTEMPTS = 3;


export function newUsageId(): string {
  return `use_${randomBytes(16).toString('base64url')}`;
}

/** The page cursor: base64url of `<created_at with microseconds>|<id>` of the last item shown. */
export function encodeCursor(at: string, id: string): string {
  return Buffer.from(`${at}|${id}`, 'utf8').toString('base64url');
}

const CURSOR_TEXT = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)\|(use_[A-Za-z0-9_-]{1,64})$/;

export function decodeCursor(cursor: string): { at: string; id: string } {
  const match = CURSOR_TEXT.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match?.[1] || !match[2] || Number.isNaN(Date.parse(match[1]))) {
    throw validationError([{ field: 'query.cursor', message: 'is not a valid cursor' }]);
  }
  return { at: match[1], id: match[2] };
}

function utcDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}

function sameEvent(a: UsageEventInput, b: UsageEventInput): boolean {
  return (
    a.jobType === b.jobType &&
    (a.jobId ?? null) === (b.jobId ?? null) &&
    (a.quantity ?? 1) === (b.quantity ?? 1) &&
    (a.description ?? null) === (b.description ?? null) &&
    sameMetadata(a.metadata ?? {}, b.metadata ?? {})
  );
}

function sameMetadata(a: Readonly<Record<string, MetadataValue>>, b: Readonly<Record<string, MetadataValue>>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && a[key] === b[key]);
}

function view(row: UsageReportRow): UsageReportView {
  return {
    id: row.id,
    jobId: row.job_id,
    jobType: row.job_type,
    creditsUsed: row.credits_used,
    status: row.status,
    description: row.description,
    createdAt: new Date(row.created_at).toISOString(),
  };
}

function keyReused(index: number): AppError {
  return new AppError('IDEMPOTENCY_KEY_REUSED', 'Idempotency key reused with a different event', [
    { field: `events[${index}].idempotencyKey`, message: 'was already used for a different event' },
  ]);
}

/**
 * Usage reporting (USE-1..6). Reports are stored per account with an idempotency key per
 * event; reads are clamped pages of the USE-3 fields; retention deletes old reports; a
 * day far above the account's trailing average is audited once.
 */
export class UsageService {
  private readonly allowedKeys: ReadonlySet<string>;
  private readonly anomaly: AnomalyRule;
  private readonly cleanupBatchSize: number;

  constructor(private readonly options: UsageServiceOptions) {
    this.allowedKeys = new Set(options.metadataKeys ?? DEFAULT_USAGE_METADATA_KEYS);
    this.anomaly = { ...DEFAULT_ANOMALY_RULE, ...options.anomaly };
    this.cleanupBatchSize = options.cleanupBatchSize ?? 10_000;
  }

  get metadataKeys(): readonly string[] {
    return [...this.allowedKeys];
  }

  /**
   * Stores a batch for the account: all of it or nothing. A metadata key outside the
   * allowlist is a 400 naming `events[i].metadata.<key>`; an idempotency key reused (in
   * the batch or before) for a different event is a 422; a faithful replay is a duplicate.
   */
  async report(accountId: string, events: readonly UsageEventInput[]): Promise<UsageReportResult> {
    const problems: FieldProblem[] = [];
    events.forEach((event, index) => {
      for (const key of Object.keys(event.metadata ?? {})) {
        if (!this.allowedKeys.has(key)) problems.push({ field: `events[${index}].metadata.${key}`, message: 'is not an allowed metadata key' });
      }
    });
    if (problems.length > 0) throw validationError(problems);

    // Duplicates within the batch: the first occurrence stands for the rest.
    const firstByKey = new Map<string, number>();
    const unique: NewUsageEvent[] = [];
    events.forEach((event, index) => {
      const first = firstByKey.get(event.idempotencyKey);
      if (first !== undefined) {
        if (!sameEvent(events[first] as UsageEventInput, event)) throw keyReused(index);
        return;
      }
      firstByKey.set(event.idempotencyKey, index);
      unique.push({
        index,
        id: newUsageId(),
        idempotencyKey: event.idempotencyKey,
        jobId: event.jobId ?? null,
        jobType: event.jobType,
        quantity: event.quantity ?? 1,
        description: event.description ?? null,
        metadata: event.metadata ?? {},
      });
    });

    const accepted = await this.withRetry(() =>
      forAccount(this.options.database, accountId, async (tx) => {
        const now = this.options.clock.now();
        const stored = await insertUsageEvents(tx, accountId, unique, now);
        if (stored.size < unique.length) {
          const reused = await firstReusedKey(
            tx,
            accountId,
            unique.filter((event) => !stored.has(event.idempotencyKey)),
          );
          if (reused !== undefined) throw keyReused(reused);
        }
        if (stored.size > 0) await this.checkAnomaly(tx, accountId, stored.size, now);
        return stored.size;
      }),
    );
    return { accepted, duplicates: events.length - accepted };
  }

  /** The account's reports, newest first; `limit` clamped to 1..100 (USE-2). */
  async list(accountId: string, query: { readonly limit?: number; readonly cursor?: string }): Promise<UsagePage> {
    const limit = clampPageLimit(query.limit);
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const rows = await forAccount(this.options.database, accountId, (tx) =>
      listUsageReports(tx, accountId, { limit: limit + 1, ...(after ? { after } : {}) }),
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map(view),
      nextCursor: rows.length > limit && last ? encodeCursor(last.cursor_at, last.id) : null,
    };
  }

  /**
   * The last `days` UTC days up to today, oldest first, every day present: reports and
   * their quantity, and the entitlement counters that start that day (the portal's chart).
   */
  async daily(accountId: string, days: number): Promise<DailyUsage> {
    if (!Number.isInteger(days) || days < 1 || days > MAX_DAILY_DAYS) {
      throw validationError([{ field: 'days', message: `must be an integer from 1 to ${MAX_DAILY_DAYS}` }]);
    }
    const today = this.options.clock.now();
    const dayOf = (offset: number) => new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - offset)).toISOString().slice(0, 10);
    const from = dayOf(days - 1);
    const to = dayOf(0);
    const [totals, counters] = await forAccount(this.options.database, accountId, async (tx) => [
      await dailyReportTotals(tx, accountId, from, to),
      await dailyCounters(tx, accountId, from, to),
    ] as const);
    const byDay = new Map<string, DailyUsage['days'][number]>();
    for (let offset = days - 1; offset >= 0; offset -= 1) {
      const day = dayOf(offset);
      byDay.set(day, { day, reports: 0, quantity: 0, counters: {} });
    }
    for (const total of totals) {
      const entry = byDay.get(total.day);
      if (entry) Object.assign(entry, { reports: total.reports, quantity: total.quantity });
    }
    for (const counter of counters) {
      const entry = byDay.get(counter.day);
      if (entry) entry.counters[counter.feature] = counter.used;
    }
    return { from, to, days: [...byDay.values()] };
  }

  /**
   * USE-5: deletes reports (every account) older than `olderThanDays`, in batches, and
   * audits `usage.cleanup` when `actor` is given or anything was deleted.
   */
  async cleanup(
    olderThanDays: number = DEFAULT_RETENTION_DAYS,
    actor: UsageActor | undefined = undefined,
    signal?: AbortSignal,
  ): Promise<{ deleted: number; cutoff: string }> {
    if (!Number.isInteger(olderThanDays) || olderThanDays < 1 || olderThanDays > MAX_RETENTION_DAYS) {
      throw validationError([{ field: 'olderThanDays', message: `must be an integer from 1 to ${MAX_RETENTION_DAYS}` }]);
    }
    const { database, clock } = this.options;
    const now = clock.now();
    const cutoff = new Date(now.getTime() - olderThanDays * DAY_MS);
    let deleted = 0;
    for (;;) {
      if (signal?.aborted) break;
      const batch = await asSystem(database, (tx) => deleteReportsBefore(tx, cutoff, this.cleanupBatchSize));
      deleted += batch;
      if (batch < this.cleanupBatchSize) break;
    }
    // Daily counts feed the anomaly rule's trailing average: keep at least a month of them.
    const countsCutoff = new Date(now.getTime() - Math.max(olderThanDays, this.anomaly.trailingDays + 1, 31) * DAY_MS);
    await asSystem(database, async (tx) => {
      await deleteDailyCountsBefore(tx, utcDay(countsCutoff));
      if (actor || deleted > 0) {
        const who = actor ?? { actorType: 'system', actorId: null, ip: null };
        await recordAudit(
          tx,
          {
            event: 'usage.cleanup',
            actorType: who.actorType,
            actorId: who.actorId,
            ip: who.ip,
            metadata: { olderThanDays, cutoff: cutoff.toISOString(), deleted },
          },
          clock,
        );
      }
    });
    return { deleted, cutoff: cutoff.toISOString() };
  }

  /**
   * USE-6: after a batch, compares the day's events (a counter row, locked to commit, so
   * concurrent batches of one account take turns here) with the trailing daily average;
   * the first batch that crosses the line records `usage.anomaly`, once per account and day.
   */
  private async checkAnomaly(tx: Transaction, accountId: string, accepted: number, now: Date): Promise<void> {
    const day = utcDay(now);
    const today = await addDailyCount(tx, accountId, day, accepted);
    const { factor, trailingDays, minEvents } = this.anomaly;
    if (today.anomalyRecorded || today.events <= minEvents) return;
    const trailing = await trailingCounts(tx, accountId, day, trailingDays);
    // Average over the days the account has been reporting within the window (at least one),
    // so a young account is compared with its real rate, not diluted by days before it existed.
    const daysSinceFirst = trailing.firstDay === null ? trailingDays : Math.round((Date.parse(day) - Date.parse(trailing.firstDay)) / DAY_MS);
    const days = Math.max(1, Math.min(trailingDays, daysSinceFirst));
    const average = trailing.total / days;
    if (today.events <= factor * average) return;
    if (!(await markAnomalyRecorded(tx, accountId, day, now))) return;
    // Recorded last: the audit chain's lock is held until commit.
    await recordAudit(
      tx,
      {
        event: 'usage.anomaly',
        actorType: 'system',
        actorId: null,
        subjectType: 'account',
        subjectId: accountId,
        accountId,
        metadata: {
          day,
          today: today.events,
          trailingDailyAverage: Math.round(average * 100) / 100,
          trailingDays,
          factor: average > 0 ? Math.round((today.events / average) * 100) / 100 : null,
          threshold: factor,
        },
      },
      this.options.clock,
    );
  }

  /** A deadlock or serialization failure is retried (the whole transaction, a few times). */
  private async withRetry<T>(work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await work();
      } catch (error) {
        const state = sqlStateOf(error);
        const retryable = state === SqlState.deadlockDetected || state === SqlState.serializationFailure;
        if (!retryable || attempt >= MAX_ATTEMPTS) throw error;
      }
    }
  }
}
